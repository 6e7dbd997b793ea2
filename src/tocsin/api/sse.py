"""`GET /api/v1/stream`: Server-Sent Events to many thousands of clients, as bare ASGI.

Theory of operation. One `StreamHub` per process reads the live feed (`tocsin.api.feed`). Each
committed batch is encoded once into SSE frames and appended to a ring shared by every stream;
a stream is a cursor into that ring, so a stream's send buffer is a view, not a copy, and its
bound is the ring's size in bytes (`stream_buffer_bytes`). A stream whose cursor falls off the
ring is more than the bound behind: it gets a last comment saying so and is closed, and resumes
with `Last-Event-ID`.

There is one wake-up for all streams: after a batch, the hub resolves the futures of the streams
that wait (no queue per stream, no `asyncio.wait` per wake). There is one clock for all streams:
every tick it counts; every `heartbeat_s` it wakes the streams so idle ones send a heartbeat;
and it closes streams whose write has been blocked (the client reads nothing, the transport's
buffer is full) for `stream_write_timeout_s`. No stream owns a timer.

Resume: a stream with a resume point reads the log in pages of `PAGE` entries (one page in
memory at a time; a client that does not read blocks the next page, not the server) until it
reaches the hub's floor, above which every committed transition is in the ring or still to be
appended; then it continues from the ring, skipping what it has sent. No gap, no repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from tocsin.api.feed import Feed
from tocsin.api.limits import ClientCounter
from tocsin.api.tickets import stream_principal
from tocsin.errors import FieldError, ValidationError
from tocsin.geo import RegionSet

if TYPE_CHECKING:
    from tocsin.api.metrics import StreamMetrics

__all__ = [
    "PAGE", "STREAM_PATH", "QuietDrops", "StreamEndpoint", "StreamHub", "StreamingApp",
    "format_sse", "install_stream",
]

STREAM_PATH = "/api/v1/stream"
PAGE = 200  # log entries per backlog page
SEND_LIMIT = 65_536  # most bytes handed to one send (what a stalled client pins past the ring)
HELLO = b"retry: 2000\n: connected\n\n"
HEARTBEAT = b": heartbeat\n\n"
SHUTDOWN = "server shutting down; reconnect with Last-Event-ID"
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
           (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


def format_sse(env: Mapping[str, Any]) -> bytes:
    """One SSE message: id is the log seq, event the transition type."""
    obj = env if type(env) is dict else dict(env)  # an `Envelope` is sent as its wire form
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return f"id: {env['seq']}\nevent: {env['type']}\ndata: {data}\n\n".encode()


class Frame:
    """One batch, encoded once: each transition with its region, and the whole batch cut into
    slices of at most about `SEND_LIMIT` bytes (between transitions) that every unfiltered
    stream sends as they are."""

    __slots__ = ("first", "last", "parts", "size", "slices")

    def __init__(self, envs: Sequence[dict[str, Any]]) -> None:
        self.parts = tuple((env["seq"], env["region"], format_sse(env)) for env in envs)
        self.first: int = self.parts[0][0]
        self.last: int = self.parts[-1][0]
        slices: list[tuple[int, int, bytes, int, int]] = []
        lo, size = 0, 0
        for i, part in enumerate(self.parts):
            size += len(part[2])
            if size >= SEND_LIMIT or i == len(self.parts) - 1:
                chunk = self.parts[lo:i + 1]
                slices.append((chunk[0][0], chunk[-1][0], b"".join(p[2] for p in chunk),
                               lo, i + 1))
                lo, size = i + 1, 0
        self.slices = tuple(slices)
        self.size = sum(len(s[2]) for s in slices)


class Ring:
    """The last `limit` bytes of frames, shared by every stream of a hub.

    Indexes are absolute (they keep counting as frames are evicted); `floor` is the last seq
    evicted, or where the feed started: above it, every committed transition is here or to come.
    """

    def __init__(self, limit: int, floor: int = 0) -> None:
        self.limit = limit
        self.frames: deque[Frame] = deque()
        self.base = 0
        self.bytes = 0
        self.floor = floor

    @property
    def end(self) -> int:
        """The index the next frame will get."""
        return self.base + len(self.frames)

    def push(self, envs: Sequence[dict[str, Any]]) -> None:
        """Encode a batch and append it, evicting the oldest frames past the limit."""
        if not envs:
            return
        frame = Frame(envs)
        self.frames.append(frame)
        self.bytes += frame.size
        while self.bytes > self.limit and len(self.frames) > 1:
            old = self.frames.popleft()
            self.bytes -= old.size
            self.base += 1
            self.floor = max(self.floor, old.last)

    def __getitem__(self, index: int) -> Frame:
        return self.frames[index - self.base]

    def first_after(self, seq: int) -> int:
        """The index of the first frame holding a seq above `seq` (`end` if none)."""
        lo, hi = self.base, self.end
        while lo < hi:  # frames are in seq order
            mid = (lo + hi) // 2
            if self[mid].last <= seq:
                lo = mid + 1
            else:
                hi = mid
        return lo


class Stream:
    """One client's place in the hub: what it has sent, where it is, whether it is stuck."""

    __slots__ = ("after", "beat", "blocked_at", "cursor", "drop", "gone", "leaves", "pos",
                 "send", "task", "waiter", "wrote")

    def __init__(self, send: Send, after: int | None, leaves: set[str] | None) -> None:
        self.send = send
        self.after = after
        self.leaves = leaves
        self.pos = after or 0  # every seq up to here is sent or filtered out
        self.cursor = -1  # ring index; -1 while reading the backlog from the log
        self.beat = 0
        self.wrote = False
        self.blocked_at = 0  # the hub tick a write started on, 0 when not writing
        self.drop: str | None = None
        self.gone = False
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[Any] | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class StreamHub:
    """The live feed of one process, fanned out to every open stream (see module docstring)."""

    def __init__(self, feed: Feed, metrics: StreamMetrics, *, heartbeat_s: float,
                 buffer_bytes: int, write_timeout_s: float) -> None:
        self.feed = feed
        self.metrics = metrics
        self.buffer_bytes = buffer_bytes
        self.write_timeout_s = write_timeout_s
        self.heartbeat_s = heartbeat_s
        self.ring = Ring(buffer_bytes)
        self.streams: set[Stream] = set()
        self.waiting: list[Stream] = []
        self.ticks = 1
        self.beat = 0
        self.closing = False
        self.tick_s = min(1.0, heartbeat_s, write_timeout_s / 2)
        self._timeout_ticks = max(1, math.ceil(write_timeout_s / self.tick_s))
        self._beat_ticks = max(1, round(heartbeat_s / self.tick_s))
        self._tasks: list[asyncio.Task[None]] = []
        self._live = asyncio.Event()
        self.unfinished = 0  # responses left incomplete on purpose (see `QuietDrops`)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Start following the feed (returns once it is subscribed) and the clock."""
        self.loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._pump(), name="sse-feed"),
                       asyncio.create_task(self._clock(), name="sse-clock"),
                       asyncio.create_task(self._close_on(self.feed.closing), name="sse-close")]
        live = asyncio.ensure_future(self._live.wait())
        await asyncio.wait({live, self._tasks[0]}, return_when=asyncio.FIRST_COMPLETED)
        if not live.done():
            live.cancel()
            await self.stop()
            self._tasks[0].result()  # why the feed could not be opened

    async def stop(self) -> None:
        """End every stream (with a comment saying why) and stop."""
        self.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        """Tell every stream to end now."""
        self.closing = True
        self.wake_all()

    async def _close_on(self, event: asyncio.Event) -> None:
        await event.wait()
        self.close()

    async def _pump(self) -> None:
        self.ring.floor = await self.feed.open()
        self._live.set()
        try:
            while True:
                batch = await self.feed.next_batch()
                self.ring.push(batch)
                self.wake_all()
        finally:
            self.feed.close()

    def wake_all(self) -> None:
        """The one wake-up: every waiting stream is resumed once."""
        waiting, self.waiting = self.waiting, []
        for stream in waiting:
            stream.wake()

    async def wait(self, stream: Stream) -> None:
        """Park `stream` until the next batch, heartbeat or close."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream.waiter = waiter
        self.waiting.append(stream)
        try:
            await waiter
        finally:
            stream.waiter = None

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.ticks += 1
            base = self.ring.base
            for stream in tuple(self.streams):
                if not stream.blocked_at:
                    continue
                if stream.drop is not None:  # blocked again on its last words: give up
                    self._kill(stream, stream.drop)
                elif self.ticks - stream.blocked_at >= self._timeout_ticks:
                    self._kill(stream, "write-timeout")
                elif 0 <= stream.cursor < base:
                    self._kill(stream, "lagging")
            if self.ticks % self._beat_ticks == 0:
                self.beat += 1
                self.wake_all()

    def _kill(self, stream: Stream, reason: str) -> None:
        if stream.drop is None:
            stream.drop = reason
            self.metrics.dropped.labels(reason).inc()
        if stream.task is not None:
            stream.task.cancel()

    def reason(self, drop: str) -> str:
        """The last comment of a dropped stream."""
        if drop == "lagging":
            return (f"dropped: more than {self.buffer_bytes} bytes behind; "
                    "reconnect with Last-Event-ID")
        return (f"dropped: a write blocked over {self.write_timeout_s:g} s; "
                "reconnect with Last-Event-ID")

    # --- one stream ----------------------------------------------------------------------------

    async def write(self, stream: Stream, data: bytes, more: bool = True) -> None:
        stream.blocked_at = self.ticks
        try:
            await stream.send({"type": "http.response.body", "body": data, "more_body": more})
        finally:
            stream.blocked_at = 0
        stream.wrote = True

    async def serve(self, stream: Stream) -> str | None:
        """Send the stream until it ends; the reason to tell the client, or None if it left."""
        await stream.send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await self.write(stream, HELLO)
        if stream.after is not None:
            left = await self._backlog(stream)
            if left is not None:
                return left
            stream.cursor = self.ring.first_after(stream.pos)
        else:
            stream.cursor = self.ring.end
        ring = self.ring
        while True:
            if stream.gone:
                return None
            if self.closing:
                return SHUTDOWN
            if stream.cursor < ring.base:
                self._kill_self(stream, "lagging")
                return self.reason("lagging")
            if stream.cursor < ring.end:
                chunk = self._collect(stream)
                if chunk:
                    await self.write(stream, chunk)
                continue
            if stream.beat != self.beat:
                if not stream.wrote:
                    await self.write(stream, HEARTBEAT)
                stream.beat, stream.wrote = self.beat, False
                continue
            await self.wait(stream)

    def _kill_self(self, stream: Stream, reason: str) -> None:
        stream.drop = reason
        self.metrics.dropped.labels(reason).inc()

    def _collect(self, stream: Stream) -> bytes:
        """Frames from the stream's cursor on, about `SEND_LIMIT` bytes at most, as one chunk.

        An unfiltered stream sends the frames' shared slices as they are. When the limit falls
        inside a frame the cursor stays on it and `pos` says how far it was sent, so a stalled
        client pins at most about one chunk.
        """
        ring, leaves, pos = self.ring, stream.leaves, stream.pos
        parts: list[bytes] = []
        size = 0
        while stream.cursor < ring.end and size < SEND_LIMIT:
            frame = ring[stream.cursor]
            if frame.last > pos:
                for first, last, data, lo, hi in frame.slices:
                    if last <= pos:
                        continue
                    if size >= SEND_LIMIT:
                        break
                    if leaves is None and first > pos:
                        parts.append(data)  # the shared bytes, not a copy
                        size += len(data)
                        pos = last
                        continue
                    for seq, region, one in frame.parts[lo:hi]:
                        if seq <= pos:
                            continue
                        if leaves is None or region in leaves:
                            parts.append(one)
                            size += len(one)
                        pos = seq
            if pos < frame.last:
                break
            stream.cursor += 1
        stream.pos = pos
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _backlog(self, stream: Stream) -> str | None:
        """Read the log from the resume point up to the ring's floor, a page at a time."""
        idle = 0
        while True:
            if stream.gone:
                return None
            if self.closing:
                return SHUTDOWN
            if stream.pos >= self.ring.floor:
                return None
            envs, last = await asyncio.to_thread(self.feed.page, stream.pos, PAGE)
            if last == stream.pos:
                # below the floor means committed: a reader that cannot see it yet retries
                idle += 1
                if idle > 200:
                    return "the log cannot be read; reconnect with Last-Event-ID"
                await asyncio.sleep(0.01)
                continue
            idle = 0
            leaves = stream.leaves
            frames = [format_sse(env) for env in envs if leaves is None or env["region"] in leaves]
            del envs
            stream.pos = last
            start = 0
            while start < len(frames):  # at most about SEND_LIMIT bytes per write
                size, end = 0, start
                while end < len(frames) and size < SEND_LIMIT:
                    size += len(frames[end])
                    end += 1
                await self.write(stream, b"".join(frames[start:end]))
                start = end


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
        stream = Stream(send, after, leaves)
        stream.task = asyncio.current_task()
        _no_write_buffer(send)
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
                _uncancel()  # it could not take its last words either: the server closes it
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


def _no_write_buffer(send: Send) -> None:
    """Let the server's transport buffer nothing beyond the write in progress.

    asyncio buffers whatever the kernel does not take, and by default lets a protocol go on
    writing until 64 KB are waiting; a client that reads nothing then pins that much plus one
    more send in this process (about 128 KB each: 1,000 stalled clients were +116-130 MB). With
    a high-water mark of 0 the server (uvicorn waits for the transport to drain before each
    send) stops writing as soon as a byte is left over, so a stalled stream pins at most the
    rest of one send, and its next send blocks until the hub's clock drops it. Only a server
    that exposes its transport on the send callable (uvicorn does) is tuned; others are left
    as they are.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.WriteTransport):
        with contextlib.suppress(Exception):  # a transport that cannot be tuned keeps its own
            transport.set_write_buffer_limits(high=0, low=0)


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
