"""`POST /api/v1/events`: the one way events enter (besides the server's own ticks)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from tocsin.api.auth import EVENT_ROLES, Principal, authenticate
from tocsin.errors import FieldError, ValidationError
from tocsin.service import Service
from tocsin.trust import Caller, check_roles, check_sources, load_json

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ingest"])

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "time", "source"],
    "properties": {
        "id": {"type": "string"}, "type": {"type": "string", "enum": sorted(EVENT_ROLES)},
        "time": {"type": "string", "format": "date-time"}, "source": {"type": "string"},
    },
    "additionalProperties": True,
}


@router.post(
    "/events",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]}}},
        }
    },
    responses={202: {"description": "Durably logged"}, 422: {"description": "Invalid"},
               403: {"description": "The key may not send this (source, type, track, siren)"},
               409: {"description": "An id already logged with another body"}},
)
async def post_events(request: Request, principal: Principal = Depends(authenticate)) -> Any:
    """Log one event or a batch; `202` only once durable. Idempotent on (source, id) and body;
    see the trust model in docs/api.md for who may send what."""
    started = time.perf_counter()
    service: Service = request.app.state.service
    metrics = request.app.state.metrics
    if principal.key is None:
        raise HTTPException(
            401, "sending events needs a key", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        body = load_json(await request.body())
    except ValidationError:
        service.rejected(1)
        raise
    raws = body if isinstance(body, list) else [body]
    if not raws:
        raise ValidationError(FieldError("(body)", "an empty batch"))
    for i, raw in enumerate(raws):
        etype = raw.get("type") if isinstance(raw, dict) else None
        if etype == "tick":
            prefix = f"[{i}]." if len(raws) > 1 else ""
            raise ValidationError(FieldError(prefix + "type", "tick events are the server's own"))
    key = principal.key
    caller = Caller(key.name, key.role, key.sources)
    check_roles(caller, raws)  # 403: event types the key's role may not send
    check_sources(caller, raws)  # 403: sources the key may not use
    result = await service.submit(raws, key_name=principal.name, caller=caller)
    accepted = [{"id": r.id, "seq": r.seq, "duplicate": r.duplicate,
                 "transitions": len(r.transitions), "notes": r.notes} for r in result.accepted]
    for item, r in zip(accepted, result.accepted, strict=True):
        if r.stream_seq is not None:  # a cluster node: stored in JetStream, the leader decides
            item.update(seq=None, transitions=None, stream_seq=r.stream_seq, status="queued")
    metrics.accepted.inc(sum(1 for r in result.accepted if not r.duplicate))
    metrics.duplicates.inc(sum(1 for r in result.accepted if r.duplicate))
    metrics.decision.observe(time.perf_counter() - started)
    return JSONResponse({"accepted": accepted}, status_code=202)
