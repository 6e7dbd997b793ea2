"""`GET /api/v1/stream`: Server-Sent Events to many thousands of clients, as bare ASGI.

The endpoint checks the request (filters, resume point, who is asking, how many streams they
hold) and hands the connection to the process's `StreamHub` (`tocsin.api.hub`, which explains
how streams are fed; `tocsin.api.wire` has the bytes). `StreamingApp` serves it bare: no
middleware and no send wrapper stands between the hub and the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from tocsin.api.feed import Feed
from tocsin.api.hub import PAGE, Stream, StreamHub
from tocsin.api.limits import ClientCounter
from tocsin.api.tickets import stream_principal
from tocsin.api.wire import SEND_LIMIT, Frame, Ring, format_sse
from tocsin.errors import FieldError, ValidationError
from tocsin.geo import RegionSet

if TYPE_CHECKING:
    from tocsin.api.metrics import StreamMetrics

__all__ = [
    "PAGE", "SEND_LIMIT", "STREAM_PATH", "Frame", "QuietDrops", "Ring", "Stream",
    "StreamEndpoint", "StreamHub", "StreamingApp", "format_sse", "install_stream",
]

STREAM_PATH = "/api/v1/stream"


class StreamEndpoint:
    """The ASGI app of `GET /api/v1/stream`: checks, limits, then the hub's `serve`."""

    def __init__(self, hub: StreamHub, regions: RegionSet, counter: ClientCounter) -> None:
        self.hub = hub
        self.regions = regions
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.hub.metrics
        if scope["method"] not in ("GET", "HEAD"):
            await _json(send, 405, {"detail": "Method Not Allowed"}, [(b"allow", b"GET")],
                        metrics)
            return
        request = Request(scope)
        try:
            after, leaves, who = self._check(request)
        except HTTPException as exc:
            headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
            await _json(send, exc.status_code, {"detail": exc.detail}, headers, metrics)
            return
        except ValidationError as exc:
            body = {"detail": "invalid input",
                    "errors": [{"field": e.field, "reason": e.reason} for e in exc.errors]}
            await _json(send, 422, body, [], metrics)
            return
        if not self.counter.acquire(who):
            await _json(send, 429, {"detail": f"at most {self.counter.limit} open streams "
                                              "per client"}, [(b"retry-after", b"5")], metrics)
            return
        try:
            await self._run(scope, receive, send, after, leaves)
        finally:
            self.counter.release(who)

    def _check(self, request: Request) -> tuple[int | None, set[str] | None, str]:
        query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
        # a browser's EventSource cannot send a key: it brings a single-use stream ticket
        principal = stream_principal(request, (query.get("ticket") or [None])[-1])

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        errors: list[FieldError] = []
        region = one("region")
        lat = _number(one("lat"), "lat", -90, 90, errors)
        lon = _number(one("lon"), "lon", -180, 180, errors)
        after: int | None = None
        since = one("since")
        if since is not None:
            if since.strip().isdigit():
                after = int(since)
            else:
                errors.append(FieldError("since", "must be a log seq (an integer >= 0)"))
        last_id = request.headers.get("last-event-id")
        if last_id is not None:
            if last_id.strip().isdigit():
                after = int(last_id)
            else:
                errors.append(FieldError("Last-Event-ID", "must be a log seq (an integer)"))
        if not errors and (lat is None) != (lon is None):
            errors.append(FieldError("lat" if lat is None else "lon", "lat and lon go together"))
        if errors:
            raise ValidationError(errors)
        leaves: set[str] | None = None
        if region is not None:
            if region not in self.regions:
                raise HTTPException(404, f"unknown region {region!r}")
            leaves = set(self.regions.leaves_under(region))
        elif lat is not None and lon is not None:
            leaf = self.regions.locate(lat, lon)
            leaves = {leaf} if leaf else set()
        who = (f"key:{principal.key.id}" if principal.key is not None
               else f"ip:{request.app.state.proxies.client(request.scope)}")
        return after, leaves, who

    async def _run(self, scope: Scope, receive: Receive, send: Send, after: int | None,
                   leaves: set[str] | None) -> None:
        hub = self.hub
        metrics = hub.metrics
        stream = Stream(send, after, leaves, scope)
        stream.task = asyncio.current_task()
        stream.wire.no_write_buffer()
        await receive()  # the (empty) request body; what comes next can only be a disconnect
        gone = asyncio.ensure_future(receive())

        def left(_: object) -> None:
            stream.gone = True
            stream.wake()

        gone.add_done_callback(left)
        hub.streams.add(stream)
        metrics.open.inc()
        metrics.responses.labels("200").inc()
        try:
            try:
                last = await hub.serve(stream)
            except asyncio.CancelledError:
                if stream.drop is None:
                    raise
                _uncancel()
                last = hub.reason(stream.drop)
            if last is None or stream.gone:
                return
            try:
                await hub.write(stream, f": {last}\n\n".encode(), more=False)
            except asyncio.CancelledError:
                if stream.drop is None:
                    raise
                _uncancel()
                # It could not take its last words either. Reset the connection rather than
                # close it: a close waits for the client to read what is queued, so the bytes
                # in the kernel's send buffer would stay there for as long as the client holds
                # its end open, and those buffers are the machine's, not this process's: enough
                # stalled clients push every TCP socket of the host into memory pressure.
                stream.wire.abort()
                hub.unfinished += 1
        finally:
            hub.streams.discard(stream)
            metrics.open.dec()
            gone.remove_done_callback(left)
            gone.cancel()


class QuietDrops(logging.Filter):
    """Keeps the server's log readable when thousands of stalled clients are dropped at once.

    A stream that cannot take even its last comment is closed by returning without finishing
    the response, which uvicorn logs as an error each time; the hub counts those (and the
    drops are on `/metrics` by reason), so exactly that many of these lines are left out.
    """

    MESSAGE = "ASGI callable returned without completing response."

    def __init__(self, hub: StreamHub) -> None:
        super().__init__()
        self.hub = hub

    def filter(self, record: logging.LogRecord) -> bool:
        if self.hub.unfinished > 0 and record.getMessage() == self.MESSAGE:
            self.hub.unfinished -= 1
            return False
        return True


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _number(text: str | None, name: str, low: float, high: float,
            errors: list[FieldError]) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        errors.append(FieldError(name, "must be a number"))
        return None
    if not low <= value <= high:
        errors.append(FieldError(name, f"must be between {low:g} and {high:g}"))
        return None
    return value


async def _json(send: Send, status: int, body: dict[str, Any],
                headers: Iterable[tuple[bytes, bytes]], metrics: StreamMetrics) -> None:
    data = json.dumps(body).encode()
    metrics.responses.labels(str(status)).inc()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data})


class StreamingApp(FastAPI):
    """FastAPI with the stream endpoint served bare (no middleware, no send wrappers).

    Every other request goes through FastAPI as usual; its response status is counted.
    """

    stream_endpoint: StreamEndpoint | None = None
    stream_metrics: StreamMetrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == STREAM_PATH and self.stream_endpoint is not None:
                scope["app"] = self
                await self.stream_endpoint(scope, receive, send)
                return
            metrics = self.stream_metrics
            if metrics is not None:
                responses = metrics.responses

                async def counted(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        responses.labels(str(message["status"])).inc()
                    await send(message)

                await super().__call__(scope, receive, counted)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, plus the bare stream endpoint."""
        if self.openapi_schema is not None:
            return self.openapi_schema
        schema = super().openapi()
        if self.stream_endpoint is not None:
            schema.setdefault("paths", {})[STREAM_PATH] = _STREAM_DOC
        return schema


def install_stream(app: StreamingApp, feed: Feed, regions: RegionSet,
                   metrics: StreamMetrics) -> StreamHub:
    """Serve `GET /api/v1/stream` on `app` from `feed`; start `app.state.hub` in the lifespan."""
    settings = app.state.settings
    hub = StreamHub(feed, metrics, heartbeat_s=settings.heartbeat_s,
                    buffer_bytes=settings.stream_buffer_bytes,
                    write_timeout_s=settings.stream_write_timeout_s)
    app.state.hub = hub
    app.stream_endpoint = StreamEndpoint(hub, regions, app.state.stream_counter)
    app.stream_metrics = metrics
    return hub


def _param(name: str, where: str, kind: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": False, "schema": {"type": kind},
            "description": description}


_STREAM_DOC: dict[str, Any] = {"get": {
    "tags": ["stream"],
    "summary": "Stream",
    "description": "Live transitions as SSE; `Last-Event-ID` (or `?since=`) resumes with no "
                   "gap, no repeat. Clients more than `stream_buffer_bytes` behind, or whose "
                   "write blocks over `stream_write_timeout_s`, are closed with a comment "
                   "saying why.",
    "operationId": "stream_api_v1_stream_get",
    "parameters": [
        _param("region", "query", "string", "only this region (any level)"),
        _param("lat", "query", "number", "latitude of a point (with lon)"),
        _param("lon", "query", "number", "longitude of a point (with lat)"),
        _param("since", "query", "integer", "resume after this seq (as Last-Event-ID)"),
        _param("ticket", "query", "string", "a single-use ticket from POST /api/v1/stream/ticket, "
               "for clients that cannot send an Authorization header"),
        _param("last-event-id", "header", "string", "resume after this seq"),
    ],
    "responses": {
        "200": {"description": "an endless stream of transitions",
                "content": {"text/event-stream": {}}},
        "401": {"description": "no key where one is needed; ticket unknown, expired or used"},
        "404": {"description": "unknown region"},
        "422": {"description": "invalid input"},
        "429": {"description": "too many open streams from this client, or rate limited"},
    },
}}
