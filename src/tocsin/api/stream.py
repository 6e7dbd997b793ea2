"""`GET /api/v1/stream`: Server-Sent Events, one per transition, resumable without gaps.

A client subscribes to the bus *before* the backlog is read from the log, and skips anything
at or below the last seq it sent; since the writer publishes only after the log commit, every
transition is either in the backlog or still in the subscription queue — never in neither.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tocsin.api.read import Lat, Lon, _filter, reader
from tocsin.errors import FieldError, ValidationError
from tocsin.service import Service

__all__ = ["format_sse", "router"]

router = APIRouter(tags=["stream"])


def format_sse(env: dict[str, Any]) -> str:
    """One SSE message: id is the log seq, event the transition type."""
    data = json.dumps(env, ensure_ascii=False, separators=(",", ":"))
    return f"id: {env['seq']}\nevent: {env['type']}\ndata: {data}\n\n"


@router.get(
    "/api/v1/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "an endless stream of transitions"}},
)
async def stream(
    request: Request,
    region: str | None = Query(None, description="only this region (any level)"),
    lat: float | None = Lat, lon: float | None = Lon,
    last_event_id: str | None = Header(None),
    since: int | None = Query(None, ge=0, description="resume after this seq (as Last-Event-ID)"),
    service: Service = Depends(reader),
) -> StreamingResponse:
    """Live transitions as SSE; `Last-Event-ID` (or `?since=`) resumes with no gap, no repeat."""
    leaves = _filter(service, region, lat, lon)
    after = since
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise ValidationError(FieldError("Last-Event-ID", "must be a log seq (an integer)"))
        after = int(last_event_id)
    metrics = request.app.state.metrics
    heartbeat = request.app.state.settings.heartbeat_s
    sub = service.bus.subscribe()

    async def events() -> AsyncIterator[str]:
        metrics.stream_clients.inc()
        try:
            sent = after if after is not None else service.ledger.next_seq - 1
            yield "retry: 2000\n: connected\n\n"
            if after is not None:
                for env in await run_in_threadpool(service.backlog, after, leaves):
                    sent = env["seq"]
                    yield format_sse(env)
            closing: asyncio.Future[Any] = asyncio.ensure_future(service.closing.wait())
            getter: asyncio.Future[Any] | None = None
            try:
                while not service.closing.is_set():
                    if getter is None:
                        getter = asyncio.ensure_future(sub.get())
                    done, _ = await asyncio.wait({getter, closing}, timeout=heartbeat,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        if not done:
                            yield ": heartbeat\n\n"
                        continue
                    env, getter = getter.result(), None
                    if env["seq"] <= sent:
                        continue
                    sent = env["seq"]
                    if leaves is None or env["region"] in leaves:
                        yield format_sse(env)
            finally:
                closing.cancel()
                if getter is not None:
                    getter.cancel()
        finally:
            sub.close()
            metrics.stream_clients.dec()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
