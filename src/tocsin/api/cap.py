"""CAP 1.2 over HTTP: the Atom feed and messages out, `POST /api/v1/cap` in."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from tocsin.api.auth import Principal, authenticate, require
from tocsin.api.read import reader
from tocsin.outputs.cap import CapError, cap_time
from tocsin.outputs.capfeed import CapFeed, seq_of
from tocsin.outputs.capin import RegionMatcher, import_cap
from tocsin.service import Service

__all__ = ["install", "router"]

router = APIRouter(tags=["cap"])

CAP_XML = "application/cap+xml"
ATOM_XML = "application/atom+xml"


def install(app: FastAPI, service: Service) -> None:
    """Add the CAP routes, serving the `cap` output's feed (`tocsin.bootstrap`)."""
    app.state.capfeed = service.outputs["cap"].model
    app.state.cap_matcher = None
    app.include_router(router)


def _signed(request: Request, body: bytes, media_type: str, modified: str) -> Response:
    """The body with its signature, `ETag` and `Last-Modified`; 304 for a current copy."""
    feed: CapFeed = request.app.state.capfeed
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    changed = datetime.fromisoformat(modified)
    headers = {"Cache-Control": "no-cache", "ETag": etag,
               "Last-Modified": format_datetime(changed, usegmt=True)}
    signature = feed.signature(body)
    if signature is not None:
        headers["X-CAP-Signature"] = signature
    match = request.headers.get("if-none-match")
    if match is not None:
        if etag in {t.strip().removeprefix("W/") for t in match.split(",")}:
            return Response(status_code=304, headers=headers)
    elif _not_older(request.headers.get("if-modified-since"), changed):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _not_older(value: str | None, changed: datetime) -> bool:
    if not value:
        return False
    try:
        held = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return held.tzinfo is not None and held >= changed.replace(microsecond=0)


@router.head("/cap/feed.atom", response_class=Response, operation_id="cap_feed_head")
@router.get("/cap/feed.atom", response_class=Response,
            responses={200: {"content": {ATOM_XML: {}}}, 304: {"description": "Current"}})
async def cap_feed(
    request: Request,
    limit: int = Query(1000, ge=1, le=1000, description="at most this many newest messages"),
    service: Service = Depends(reader),
) -> Response:
    """Atom feed of the latest CAP messages, newest first, each linking to its CAP XML."""
    feed: CapFeed = request.app.state.capfeed
    newest = feed.newest_sent() or cap_time(service.clock())
    if feed.embed:
        body = await asyncio.to_thread(feed.feed, limit=limit, updated=newest)
    else:
        body = feed.feed(limit=limit, updated=newest)
    return _signed(request, body, ATOM_XML, newest)


@router.get("/cap/signing-key.pem", response_class=Response,
            responses={200: {"content": {"application/x-pem-file": {}}}})
async def cap_signing_key(request: Request, _service: Service = Depends(reader)) -> Response:
    """The Ed25519 public key that checks `X-CAP-Signature` (404 when messages are unsigned)."""
    pem = request.app.state.capfeed.public_key_pem()
    if pem is None:
        raise HTTPException(404, "CAP messages are not signed on this server")
    return Response(pem, media_type="application/x-pem-file")


@router.head("/cap/{identifier}.xml", response_class=Response,
             operation_id="cap_message_head")
@router.get("/cap/{identifier}.xml", response_class=Response,
            responses={200: {"content": {CAP_XML: {}}}, 304: {"description": "Current"},
                       404: {"description": "No such message"}})
async def cap_message(
    identifier: str, request: Request, _service: Service = Depends(reader)
) -> Response:
    """One CAP 1.2 message (`application/cap+xml`), signed when a signing key is configured."""
    seq = seq_of(identifier)
    feed: CapFeed = request.app.state.capfeed
    body = None if seq is None else await asyncio.to_thread(feed.xml, seq)
    entry = None if seq is None else feed.latest.get(seq)
    if body is None or seq is None:
        raise HTTPException(404, f"no CAP message {identifier!r}")
    sent = entry.sent if entry is not None else feed.sent_of(body)
    return _signed(request, body, CAP_XML, sent)


@router.post(
    "/api/v1/cap",
    status_code=202,
    tags=["ingest"],
    openapi_extra={"requestBody": {"required": True,
                                   "content": {CAP_XML: {}, "application/xml": {}}}},
    responses={202: {"description": "Accepted; `regions` lists what it raised"},
               422: {"description": "Not a valid CAP 1.2 document"}},
)
async def post_cap(request: Request, principal: Principal = Depends(authenticate)) -> Any:
    """Take a CAP 1.2 alert from another authority as an operator alert (operator key)."""
    require(principal, "operator")
    service: Service = request.app.state.service
    if request.app.state.cap_matcher is None:
        request.app.state.cap_matcher = await asyncio.to_thread(RegionMatcher, service.regions)
    body = await request.body()
    try:
        result = await import_cap(
            service, body, key_name=principal.name, matcher=request.app.state.cap_matcher
        )
    except CapError as exc:
        return JSONResponse(
            {"detail": str(exc), "errors": list(exc.problems)}, status_code=422
        )
    return JSONResponse(result, status_code=202)
