"""The public, verifiable record: signed tree heads, log entries and Merkle proofs (RFC 9162).

Byte strings (hashes, signatures, keys, leaf inputs) are standard padded base64. Proofs are
answered only for tree sizes a signed head already covers, so every proof can be checked
against a signature. See `docs/transparency.md`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from tocsin.api.read import reader
from tocsin.audit import (
    TreeHead,
    canonical_json,
    format_timestamp,
    key_id,
    public_key_raw,
    to_json,
)
from tocsin.audit.witness import cosignature_from_json, cosignature_to_json, verify_cosignature
from tocsin.errors import FieldError, ValidationError
from tocsin.model import parse_time
from tocsin.service import Service
from tocsin.store.merkle import leaf_object

__all__ = ["MAX_ENTRIES", "HeadSigner", "router"]

router = APIRouter(tags=["log"])
log = logging.getLogger("tocsin")

MAX_ENTRIES = 1000


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class HeadSigner:
    """Signs a tree head on start, every `sth_interval_s` while entries arrive, and on stop."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sign the head of the log as it is now, then keep signing in the background."""
        # Signed before the server takes requests, so /log/sth never answers "none yet".
        await self._sign()
        self._task = asyncio.create_task(self._run(), name="tocsin-sth")

    async def stop(self) -> None:
        """Stop; sign a last head over whatever is not covered yet."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._sign()

    async def _sign(self) -> None:
        try:
            await self.service.sign_head()
        except Exception:  # a failed head is retried at the next interval; never stop the loop
            log.exception("signing a tree head failed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.service.settings.sth_interval_s)
            await self._sign()


def _latest(service: Service) -> TreeHead:
    head = service.merkle.latest
    if head is None:  # only before the first head is signed, moments after start
        raise ValidationError(FieldError("tree_size", "no tree head has been signed yet"))
    return head


def _size(name: str, value: int, head: TreeHead) -> None:
    if value > head.tree_size:
        raise ValidationError(FieldError(
            name, f"{value} is larger than the latest signed tree head ({head.tree_size})"))


@router.get("/api/v1/log/key")
async def log_key(service: Service = Depends(reader)) -> dict[str, str]:
    """The Ed25519 public key that signs the tree heads."""
    raw = public_key_raw(service.log_key)
    return {"algorithm": "Ed25519", "public_key": _b64(raw), "key_id": key_id(raw)}


async def _cosignatures(service: Service, head: TreeHead) -> list[dict[str, Any]]:
    found = await asyncio.to_thread(service.log.cosignatures, head.tree_size, head.root_hash)
    return [cosignature_to_json(c) for c in found]


@router.get("/api/v1/log/sth")
async def latest_sth(service: Service = Depends(reader)) -> dict[str, Any]:
    """The latest signed tree head, with the witnesses' cosignatures of its tree."""
    head = _latest(service)
    out: dict[str, Any] = dict(to_json(head))
    out["cosignatures"] = await _cosignatures(service, head)
    return out


@router.get("/api/v1/log/cosignatures")
async def cosignatures(
    tree_size: int = Query(..., ge=0, description="a tree size a signed head covers"),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """The witnesses' cosignatures of the log's tree of `tree_size` leaves."""
    head = _latest(service)
    _size("tree_size", tree_size, head)
    root = service.merkle.root_at(tree_size)
    found = await asyncio.to_thread(service.log.cosignatures, tree_size, root)
    return {"tree_size": tree_size, "root_hash": _b64(root),
            "cosignatures": [cosignature_to_json(c) for c in found]}


_COSIGNED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tree_size", "root_hash", "cosignature"],
    "properties": {
        "tree_size": {"type": "integer", "minimum": 0},
        "root_hash": {"type": "string", "format": "byte"},
        "cosignature": {
            "type": "object", "required": ["key_id", "time", "signature"],
            "properties": {"key_id": {"type": "string"}, "time": {"type": "integer"},
                           "signature": {"type": "string", "format": "byte"}},
        },
    },
}


@router.post("/api/v1/log/cosignatures", status_code=201,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": _COSIGNED_SCHEMA}}}},
             responses={200: {"description": "Already kept"}, 201: {"description": "Kept"},
                        403: {"description": "Not a witness this server trusts"},
                        422: {"description": "Invalid"}})
async def add_cosignature(request: Request, service: Service = Depends(reader)) -> Any:
    """Keep a witness's cosignature of a tree this log signed.

    `{"tree_size": n, "root_hash": <base64>, "cosignature": {"key_id", "time", "signature"}}`.
    The request authenticates itself: it is kept only when signed by a witness key listed in
    the server's `witnesses` file, over this log's root at `tree_size`.
    """
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(FieldError("(body)", f"not JSON: {exc}")) from exc
    if not isinstance(body, dict):
        raise ValidationError(FieldError("(body)", "expected a JSON object"))
    tree_size, encoded = body.get("tree_size"), body.get("root_hash")
    if type(tree_size) is not int or tree_size < 0:
        raise ValidationError(FieldError("tree_size", "expected a non-negative integer"))
    try:
        root = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != 32:
        raise ValidationError(FieldError("root_hash", "expected 32 bytes in standard base64"))
    try:
        cosig = cosignature_from_json(body.get("cosignature"))
    except ValueError as exc:
        name, _, reason = str(exc).partition(": ")
        raise ValidationError(FieldError(name, reason or str(exc))) from None
    witness = service.witnesses.get(cosig.key_id)
    if witness is None:
        raise HTTPException(403, f"cosignature.key_id: {cosig.key_id} is not a witness this "
                                 "server trusts (setting witnesses)")
    head = _latest(service)
    _size("tree_size", tree_size, head)
    if service.merkle.root_at(tree_size) != root:
        raise ValidationError(FieldError(
            "root_hash", f"not this log's root at tree_size {tree_size}: the witness's view "
                         "and the log's differ"))
    log_kid = key_id(public_key_raw(service.log_key))
    if not verify_cosignature(witness.raw, log_kid, tree_size, root, cosig):
        raise ValidationError(FieldError(
            "cosignature.signature", f"not {witness.name}'s signature of this log's tree of "
                                     f"{tree_size} leaves"))
    outcome = await asyncio.to_thread(service.log.add_cosignature, tree_size, root, cosig)
    if outcome == "full":
        raise ValidationError(FieldError("tree_size", "this tree has as many cosignatures as "
                                                      "the server keeps"))
    if outcome == "known":
        return JSONResponse({"kept": False, "witness": witness.name}, status_code=200)
    log.info("cosignature of tree_size %d by witness %s", tree_size, witness.name)
    return {"kept": True, "witness": witness.name}


@router.get("/api/v1/log/sths")
async def sths(
    since: str | None = Query(None, description="RFC 3339; heads signed after it"),
    limit: int = Query(1000, ge=1, le=1000),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """Every signed tree head (after `since`), oldest first."""
    stamp = None
    if since is not None:
        try:
            moment = parse_time(since)
        except ValueError as exc:
            raise ValidationError(FieldError("since", str(exc))) from exc
        stamp = format_timestamp(moment)
    heads = await asyncio.to_thread(service.merkle.heads, stamp, limit)
    return {"sths": [to_json(h) for h in heads]}


@router.get("/api/v1/log/entries")
async def entries(
    start: int = Query(..., ge=0, description="first leaf index"),
    end: int = Query(..., ge=0, description="last leaf index (inclusive)"),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """Log entries by leaf index (RFC 9162 get-entries); at most 1000, possibly fewer."""
    size = service.merkle.size
    if end < start:
        raise ValidationError(FieldError("end", f"must not be below start ({start})"))
    if start >= size:
        raise ValidationError(FieldError("start", f"{start} is beyond the log ({size} entries)"))
    last = min(end, size - 1, start + MAX_ENTRIES - 1)

    def fetch() -> list[dict[str, Any]]:
        out = []
        for e in service.merkle.entries(start, last):
            obj = leaf_object(e, service.merkle.times_from)
            out.append({"index": e.seq - 1, "seq": e.seq, "entry": obj,
                        "leaf_input": _b64(canonical_json(obj))})
        return out

    return {"entries": await asyncio.to_thread(fetch)}


@router.get("/api/v1/log/proof/inclusion")
async def inclusion(
    index: int = Query(..., ge=0, description="leaf index (seq - 1)"),
    tree_size: int | None = Query(None, ge=1, description="default: the latest signed head's"),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """RFC 9162 inclusion proof of a leaf in the tree of `tree_size` leaves."""
    head = _latest(service)
    size = head.tree_size if tree_size is None else tree_size
    _size("tree_size", size, head)
    if index >= size:
        raise ValidationError(FieldError("index", f"{index} is not below tree_size ({size})"))
    path = service.merkle.inclusion_proof(index, size)
    return {"index": index, "tree_size": size, "audit_path": [_b64(p) for p in path]}


@router.get("/api/v1/log/proof/consistency")
async def consistency(
    first: int = Query(..., ge=0, description="the older tree size"),
    second: int | None = Query(None, ge=0, description="default: the latest signed head's"),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """RFC 9162 consistency proof that the tree of `second` leaves extends that of `first`."""
    head = _latest(service)
    size = head.tree_size if second is None else second
    _size("second", size, head)
    if first > size:
        raise ValidationError(FieldError("first", f"{first} is larger than second ({size})"))
    path = service.merkle.consistency_proof(first, size)
    return {"first": first, "second": size, "consistency_path": [_b64(p) for p in path]}
