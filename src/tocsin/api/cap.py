"""CAP 1.2 over HTTP: the Atom feed and messages out, `POST /api/v1/cap` in."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from tocsin.api.auth import Principal, authenticate, require
from tocsin.api.read import reader
from tocsin.outputs.cap import CapError, cap_time
from tocsin.outputs.capfeed import CapFeed, load_signing_key, seq_of
from tocsin.outputs.capin import RegionMatcher, import_cap
from tocsin.service import Service

__all__ = ["install", "router"]

router = APIRouter(tags=["cap"])

CAP_XML = "application/cap+xml"
ATOM_XML = "application/atom+xml"


def install(app: FastAPI, service: Service) -> None:
    """Add the CAP routes; keep a CAP feed of `service`'s alerts, rebuilt from the log."""
    settings = app.state.settings
    feed = CapFeed(
        service.regions,
        service.log,
        sender=settings.cap_sender,
        mode=settings.mode,
        signing_key=load_signing_key(settings.data_dir),
    )
    service.add_read_model("cap", feed, feed.apply)
    service.on_publish.append(feed.apply_many)
    app.state.capfeed = feed
    app.state.cap_matcher = None
    app.include_router(router)


def _signed(request: Request, body: bytes, media_type: str) -> Response:
    feed: CapFeed = request.app.state.capfeed
    headers = {"Cache-Control": "no-cache"}
    signature = feed.signature(body)
    if signature is not None:
        headers["X-CAP-Signature"] = signature
    return Response(body, media_type=media_type, headers=headers)


@router.get("/cap/feed.atom", response_class=Response,
            responses={200: {"content": {ATOM_XML: {}}}})
async def cap_feed(
    request: Request,
    limit: int = Query(1000, ge=1, le=1000, description="at most this many newest messages"),
    service: Service = Depends(reader),
) -> Response:
    """Atom feed of the latest CAP messages, newest first, each linking to its CAP XML."""
    feed: CapFeed = request.app.state.capfeed
    body = feed.feed(str(request.base_url), limit=limit, updated=cap_time(service.clock()))
    return _signed(request, body, ATOM_XML)


@router.get("/cap/signing-key.pem", response_class=Response)
async def cap_signing_key(request: Request, _service: Service = Depends(reader)) -> Response:
    """The Ed25519 public key that checks `X-CAP-Signature` (404 when messages are unsigned)."""
    pem = request.app.state.capfeed.public_key_pem()
    if pem is None:
        raise HTTPException(404, "CAP messages are not signed on this server")
    return Response(pem, media_type="application/x-pem-file")


@router.get("/cap/{identifier}.xml", response_class=Response,
            responses={200: {"content": {CAP_XML: {}}}, 404: {"description": "No such message"}})
async def cap_message(
    identifier: str, request: Request, _service: Service = Depends(reader)
) -> Response:
    """One CAP 1.2 message (`application/cap+xml`), signed when a signing key is configured."""
    seq = seq_of(identifier)
    feed: CapFeed = request.app.state.capfeed
    body = None if seq is None else await asyncio.to_thread(feed.xml, seq)
    if body is None:
        raise HTTPException(404, f"no CAP message {identifier!r}")
    return _signed(request, body, CAP_XML)


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
