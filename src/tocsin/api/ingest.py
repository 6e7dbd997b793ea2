"""`POST /api/v1/events`: the one way events enter (besides the server's own ticks)."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from tocsin.api.auth import EVENT_ROLES, Principal, authenticate, require
from tocsin.errors import FieldError, ValidationError
from tocsin.service import Service

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
    responses={202: {"description": "Durably logged"}, 422: {"description": "Invalid"}},
)
async def post_events(request: Request, principal: Principal = Depends(authenticate)) -> Any:
    """Log one event or a batch; `202` only once durable. Idempotent on (source, id)."""
    started = time.perf_counter()
    service: Service = request.app.state.service
    metrics = request.app.state.metrics
    if principal.key is None:
        raise HTTPException(
            401, "sending events needs a key", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        metrics.rejected.inc()
        raise ValidationError(FieldError("(body)", f"not JSON: {exc}")) from exc
    raws = body if isinstance(body, list) else [body]
    if not raws:
        raise ValidationError(FieldError("(body)", "an empty batch"))
    for i, raw in enumerate(raws):
        etype = raw.get("type") if isinstance(raw, dict) else None
        if etype == "tick":
            prefix = f"[{i}]." if len(raws) > 1 else ""
            raise ValidationError(FieldError(prefix + "type", "tick events are the server's own"))
        require(principal, EVENT_ROLES.get(str(etype), "sensor"))
    result = await service.submit(raws, key_name=principal.name)
    accepted = [{"id": r.id, "seq": r.seq, "duplicate": r.duplicate,
                 "transitions": len(r.transitions), "notes": r.notes} for r in result.accepted]
    for item, r in zip(accepted, result.accepted, strict=True):
        if r.stream_seq is not None:  # a cluster node: stored in JetStream, the leader decides
            item.update(seq=None, transitions=None, stream_seq=r.stream_seq, status="queued")
    metrics.accepted.inc(sum(1 for r in result.accepted if not r.duplicate))
    metrics.duplicates.inc(sum(1 for r in result.accepted if r.duplicate))
    metrics.decision.observe(time.perf_counter() - started)
    return JSONResponse({"accepted": accepted}, status_code=202)
