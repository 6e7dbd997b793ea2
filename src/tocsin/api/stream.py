"""`GET /api/v1/stream`: Server-Sent Events, one per transition, resumable without gaps.

A client subscribes to the bus *before* the backlog is read from the log, and skips anything
at or below the last seq it sent; since the writer publishes only after the log commit, every
transition is either in the backlog or still in the subscription queue — never in neither.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
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


class _Encoded:
    """Each published envelope (and whole batch) encoded once, however many streams send it.

    Keyed by identity: every subscription of the in-process bus receives the same objects.
    Each entry holds what it encodes, so an id cannot be reused while it is cached.
    """

    def __init__(self, size: int = 8192, batches: int = 64) -> None:
        self.size = size
        self.batches = batches
        self._envs: dict[int, tuple[dict[str, Any], bytes]] = {}
        self._batches: dict[int, tuple[Sequence[dict[str, Any]], bytes]] = {}

    def __call__(self, env: dict[str, Any]) -> bytes:
        hit = self._envs.get(id(env))
        if hit is not None and hit[0] is env:
            return hit[1]
        data = format_sse(env).encode()
        if len(self._envs) >= self.size:
            self._envs.clear()
        self._envs[id(env)] = (env, data)
        return data

    def batch(self, batch: Sequence[dict[str, Any]]) -> bytes:
        """A whole batch as one chunk."""
        hit = self._batches.get(id(batch))
        if hit is not None and hit[0] is batch:
            return hit[1]
        data = b"".join(self(env) for env in batch)
        if len(self._batches) >= self.batches:
            self._batches.clear()
        self._batches[id(batch)] = (batch, data)
        return data


def _encoder(request: Request) -> _Encoded:
    state = request.app.state
    encoder: _Encoded | None = getattr(state, "sse_encoded", None)
    if encoder is None:
        encoder = state.sse_encoded = _Encoded()
    return encoder


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
    encoded = _encoder(request)
    sub = service.bus.subscribe()

    async def events() -> AsyncIterator[bytes]:
        metrics.stream_clients.inc()
        try:
            # Without a resume point everything queued is new: it was published after `sub`
            # was opened. (The log's end is no bound: a batch may be durable and not yet
            # published, and must not be skipped when it is.)
            sent = after if after is not None else 0
            yield b"retry: 2000\n: connected\n\n"
            if after is not None:
                backlog = await run_in_threadpool(service.backlog, after, leaves)
                for start in range(0, len(backlog), 500):
                    part = backlog[start:start + 500]
                    sent = part[-1]["seq"]
                    yield "".join(format_sse(env) for env in part).encode()
            closing: asyncio.Future[Any] = asyncio.ensure_future(service.closing.wait())
            getter: asyncio.Future[Sequence[dict[str, Any]]] | None = None
            try:
                while not service.closing.is_set():
                    if getter is None:
                        getter = asyncio.ensure_future(sub.get_batch())
                    done, _ = await asyncio.wait({getter, closing}, timeout=heartbeat,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        if not done:
                            yield b": heartbeat\n\n"
                        continue
                    batch, getter = getter.result(), None
                    # one write per batch: a detection's transitions go out together
                    if leaves is None and batch and batch[0]["seq"] > sent:
                        sent = batch[-1]["seq"]
                        yield encoded.batch(batch)
                        continue
                    chunk: list[bytes] = []
                    for env in batch:
                        if env["seq"] <= sent:
                            continue
                        sent = env["seq"]
                        if leaves is None or env["region"] in leaves:
                            chunk.append(encoded(env))
                    if chunk:
                        yield b"".join(chunk)
            finally:
                closing.cancel()
                if getter is not None:
                    getter.cancel()
        finally:
            sub.close()
            metrics.stream_clients.dec()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
