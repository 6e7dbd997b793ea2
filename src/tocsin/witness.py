"""A witness of a tocsin log, and the server's list of witnesses it trusts.

`tocsin witness --url U --state F --key K` polls the server's latest signed tree head. On first
contact it pins the log's key (or checks the one given). Each newer head must extend the last
one it verified (an RFC 9162 consistency proof fetched from the server); the witness then
co-signs it (`tocsin.audit.witness`), records it in its state file, and posts the cosignature
to `POST /api/v1/log/cosignatures`. A smaller tree, another root for a size it saw, or a
failed proof is a split view: the witness stops with exit code 1 and names the largest tree it
remembers that the server's new view still extends, i.e. where the views split.

The state file is JSON, written atomically: the log's key, the last verified head (with this
witness's cosignature: `tocsin verify --head F` takes it as is), and the last `HISTORY` trees
seen, which bound where a split can be located.

Every request has a timeout, every answer a size limit, and the loop a fixed interval.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tocsin.audit import (
    TreeHead,
    from_json,
    key_id,
    to_json,
    verify_consistency,
    verify_tree_head,
)
from tocsin.audit.sth import PUBLIC_KEY_SIZE
from tocsin.audit.witness import cosign, cosignature_to_json
from tocsin.errors import OperationalError, TocsinError

__all__ = [
    "HISTORY",
    "MAX_RESPONSE_BYTES",
    "MAX_WITNESSES",
    "SplitView",
    "Witness",
    "WitnessKey",
    "load_witness_keys",
]

HISTORY: Final = 64
MAX_RESPONSE_BYTES: Final = 1 << 20
MAX_WITNESSES: Final = 32

log = logging.getLogger("tocsin.witness")


# --- the server's side: which witnesses it trusts --------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessKey:
    """A witness the server accepts cosignatures from."""

    raw: bytes
    name: str


def load_witness_keys(path: Path | None) -> dict[str, WitnessKey]:
    """Witness keys by key id, from a file of `<base64 raw key> [name]` lines (`#` comments)."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TocsinError(f"{path}: cannot read the witness list ({exc})") from None
    keys: dict[str, WitnessKey] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        encoded, _, name = line.partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != PUBLIC_KEY_SIZE:
            raise TocsinError(f"{path}:{number}: expected a base64 Ed25519 public key "
                              "(32 bytes), then an optional name")
        keys[key_id(raw)] = WitnessKey(raw, name.strip() or key_id(raw))
        if len(keys) > MAX_WITNESSES:
            raise TocsinError(f"{path}:{number}: more than {MAX_WITNESSES} witnesses")
    return keys


# --- the witness -----------------------------------------------------------------------------


class SplitView(Exception):  # noqa: N818 - what it reports, not an error of the witness
    """The server's view no longer extends what the witness saw."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: Any, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise OperationalError(f"{what}: not base64") from None
    if len(raw) != size:
        raise OperationalError(f"{what}: expected {size} bytes")
    return raw


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class Witness:
    """Polls one log, checks each new head against the last it verified, co-signs it."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        state_path: Path,
        key: Ed25519PrivateKey,
        *,
        log_public_key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.url = url
        self.state_path = state_path
        self.key = key
        self.clock = clock
        self.state = self._load()
        pinned = self.state.get("log", {}).get("public_key")
        if log_public_key is not None and pinned is not None and pinned != _b64(log_public_key):
            raise TocsinError(f"{state_path} pins log key {self.state['log']['key_id']}, not "
                              f"the one given ({key_id(log_public_key)})")
        self._given = log_public_key

    # --- state ---------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"url": self.url, "seen": []}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TocsinError(f"{self.state_path}: unreadable witness state ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("seen"), list):
            raise TocsinError(f"{self.state_path}: not a tocsin witness state file")
        return data

    @property
    def last(self) -> TreeHead | None:
        """The last head this witness verified."""
        sth = self.state.get("sth")
        return None if sth is None else from_json(sth)

    # --- HTTP ----------------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        """GET a JSON answer of at most MAX_RESPONSE_BYTES."""
        try:
            with self.client.stream("GET", path, params=params) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise OperationalError(f"{path}: answer larger than "
                                               f"{MAX_RESPONSE_BYTES} bytes")
                status = response.status_code
        except httpx.HTTPError as exc:
            raise OperationalError(f"{path}: {exc}") from exc
        if status != 200:
            raise OperationalError(f"{path}: HTTP {status}: {bytes(body[:200])!r}")
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OperationalError(f"{path}: not JSON ({exc})") from None

    def _log_key(self) -> bytes:
        doc = self._get("/api/v1/log/key")
        if not isinstance(doc, dict):
            raise OperationalError("/api/v1/log/key: not a JSON object")
        raw = _unb64(doc.get("public_key"), PUBLIC_KEY_SIZE, "/api/v1/log/key public_key")
        pinned = self.state.get("log", {}).get("public_key")
        expected = pinned if pinned is not None else (
            None if self._given is None else _b64(self._given))
        if expected is not None and _b64(raw) != expected:
            known = key_id(base64.b64decode(expected))
            raise SplitView(f"the log key changed: the witness knows {known}, the server now "
                            f"signs with {key_id(raw)}")
        return raw

    def _consistent(self, first: int, first_root: bytes, head: TreeHead) -> bool:
        """Whether `head` extends the tree of `first` leaves with `first_root`."""
        if first > head.tree_size:
            return False
        if first == head.tree_size:
            return first_root == head.root_hash
        if first == 0:
            return True
        doc = self._get("/api/v1/log/proof/consistency", first=first, second=head.tree_size)
        try:
            path = [_unb64(p, 32, "consistency_path") for p in doc["consistency_path"]]
        except (KeyError, TypeError) as exc:
            raise OperationalError(f"malformed consistency proof ({exc})") from None
        return verify_consistency(first, head.tree_size, first_root, head.root_hash, path)

    def _split(self, head: TreeHead, last: TreeHead) -> str:
        """Where the server's new view and the witness's split, as precisely as remembered."""
        seen = sorted(({"tree_size": int(s["tree_size"]), "root_hash": s["root_hash"],
                        "timestamp": s.get("timestamp", "?")} for s in self.state["seen"]),
                      key=lambda s: s["tree_size"], reverse=True)
        agreed: dict[str, Any] | None = None
        for item in seen:
            if item["tree_size"] >= last.tree_size or item["tree_size"] > head.tree_size:
                continue
            try:
                if self._consistent(item["tree_size"], base64.b64decode(item["root_hash"]), head):
                    agreed = item
                    break
            except OperationalError:
                continue
        where = ("no tree the witness remembers" if agreed is None else
                 f"tree_size {agreed['tree_size']} (head of {agreed['timestamp']})")
        low = 0 if agreed is None else agreed["tree_size"]
        return (f"split view: the witness verified tree_size {last.tree_size} (root "
                f"{_b64(last.root_hash)}, head of {last.timestamp}); the server now serves "
                f"tree_size {head.tree_size} (root {_b64(head.root_hash)}, head of "
                f"{head.timestamp}). The views agree up to {where}; they split at a leaf index "
                f"from {low} to {min(last.tree_size, head.tree_size + 1) - 1}"
                + (" (the log was rewound)" if head.tree_size < last.tree_size else ""))

    # --- one step ------------------------------------------------------------------------------

    def step(self) -> TreeHead | None:
        """Check the server's latest head; co-sign and post it if new. None: nothing new.

        Raises `SplitView` when the server's view does not extend the witness's, and
        `OperationalError` when the server cannot be asked (try again later).
        """
        raw = self._log_key()
        doc = self._get("/api/v1/log/sth")
        try:
            head = from_json(doc)
        except ValueError as exc:
            raise OperationalError(f"/api/v1/log/sth: malformed head ({exc})") from None
        if not verify_tree_head(raw, head):
            raise OperationalError("/api/v1/log/sth: bad signature (not kept, not co-signed)")
        last = self.last
        if last is not None:
            if head.tree_size == last.tree_size and head.root_hash == last.root_hash:
                served = doc.get("cosignatures") if isinstance(doc, dict) else None
                self._post_if_missing(head, served if isinstance(served, list) else [])
                return None
            if head.tree_size <= last.tree_size or not self._consistent(
                    last.tree_size, last.root_hash, head):
                raise SplitView(self._split(head, last))
        log_kid = key_id(raw)
        cosig = cosign(self.key, log_kid, head.tree_size, head.root_hash, int(self.clock()))
        mine = cosignature_to_json(cosig)
        sth: dict[str, Any] = {**to_json(head), "cosignatures": [mine]}
        seen = [*self.state["seen"], {"tree_size": head.tree_size,
                                      "root_hash": _b64(head.root_hash),
                                      "timestamp": head.timestamp}][-HISTORY:]
        self.state = {"url": self.url, "log": {"public_key": _b64(raw), "key_id": log_kid},
                      "sth": sth, "seen": seen}
        _atomic_write(self.state_path, self.state)  # the witness's view first, then the post
        self._post(head, mine)
        return head

    def _post(self, head: TreeHead, cosig: dict[str, Any]) -> None:
        body = {"tree_size": head.tree_size, "root_hash": _b64(head.root_hash),
                "cosignature": cosig}
        try:
            response = self.client.post("/api/v1/log/cosignatures", json=body)
        except httpx.HTTPError as exc:
            log.warning("posting the cosignature of tree_size %d failed: %s", head.tree_size, exc)
            return
        if response.status_code >= 300:
            log.warning("the server refused the cosignature of tree_size %d: HTTP %d %s",
                        head.tree_size, response.status_code, response.text[:300])

    def _post_if_missing(self, head: TreeHead, served: list[Any]) -> None:
        """Post again the cosignature of the current head if the server does not serve it."""
        sth = self.state.get("sth") or {}
        mine = (sth.get("cosignatures") or [None])[0]
        if mine is None:
            return
        if not any(isinstance(c, dict) and c.get("key_id") == mine.get("key_id")
                   for c in served):
            self._post(head, mine)

    def run(self, interval: float, stop: threading.Event,
            on_head: Callable[[TreeHead], None] | None = None) -> None:
        """Poll every `interval` s until `stop` is set; `SplitView` ends it."""
        while not stop.is_set():
            try:
                head = self.step()
            except OperationalError as exc:
                log.warning("%s: %s (trying again in %.0f s)", self.url, exc, interval)
            else:
                if head is not None and on_head is not None:
                    on_head(head)
            stop.wait(interval)
