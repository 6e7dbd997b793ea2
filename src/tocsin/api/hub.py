"""The stream hub: every open SSE stream of a process, fed from one place.

Theory of operation. One `StreamHub` per process reads the live feed (`tocsin.api.feed`). Each
committed batch is encoded once into SSE frames and appended to a ring shared by every stream;
a stream is a cursor into that ring, so a stream's send buffer is a view, not a copy, and its
bound is the ring's size in bytes (`stream_buffer_bytes`). A stream whose cursor falls off the
ring is more than the bound behind: it gets a last comment saying so and is closed, and resumes
with `Last-Event-ID`.

There is one wake-up for all streams, and it does the writing: after a batch, the hub writes the
frame's shared chunks straight to the connection of every stream that waits caught up (see
`tocsin.api.wire`), a few milliseconds at a time, and resumes only the streams that must send for
themselves (filtered, behind, a client not reading). No queue per stream, no `asyncio.wait` per
wake, and for a caught-up stream no task at all. There is one clock for all streams:
every tick it counts; every `heartbeat_s` it writes a heartbeat to the idle streams;
and it closes streams whose write has been blocked (the client reads nothing, the transport's
buffer is full) for `stream_write_timeout_s`. No stream owns a timer.

Resume: a stream with a resume point reads the log in pages of `PAGE` entries (one page in
memory at a time; a client that does not read blocks the next page, not the server) until it
reaches the hub's floor, above which every committed transition is in the ring or still to be
appended; then it continues from the ring, skipping what it has sent. No gap, no repeat.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.types import Scope, Send

from tocsin.api.feed import Feed
from tocsin.api.wire import SEND_LIMIT, Ring, Wire, chunk, format_sse

if TYPE_CHECKING:
    from tocsin.api.metrics import StreamMetrics

__all__ = ["HEADERS", "PAGE", "SHUTDOWN", "STEP_S", "Stream", "StreamHub"]

PAGE = 200  # log entries per backlog page
STEP_S = 0.005  # longest the hub writes to streams before letting the event loop run others
HELLO = b"retry: 2000\n: connected\n\n"
HEARTBEAT = b": heartbeat\n\n"
HEARTBEAT_CHUNK = chunk(HEARTBEAT)
SHUTDOWN = "server shutting down; reconnect with Last-Event-ID"
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
           (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


class Stream:
    """One client's place in the hub: what it has sent, where it is, whether it is stuck."""

    __slots__ = ("after", "beat", "blocked_at", "cursor", "drop", "gone", "leaves", "pos",
                 "send", "task", "waiter", "wire", "wrote")

    def __init__(self, send: Send, after: int | None, leaves: set[str] | None,
                 scope: Scope | None = None) -> None:
        self.send = send
        self.wire = Wire(send, scope or {})
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
        # woken by a batch, not written to yet (with the waiter they were woken from)
        self.pending: deque[tuple[Stream, asyncio.Future[None] | None]] = deque()
        self._stepping = False
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
                if self.ring.push(batch) is not None:
                    self.deliver()
        finally:
            self.feed.close()

    def wake_all(self) -> None:
        """Every waiting stream is resumed once (to close, or to send for itself)."""
        waiting, self.waiting = [*(s for s, _ in self.pending), *self.waiting], []
        self.pending.clear()
        for stream in waiting:
            stream.wake()

    def deliver(self) -> None:
        """The one wake-up after a batch, which also does the writing.

        A waiting stream that is caught up, unfiltered and whose connection takes direct writes
        gets the new frames' chunks written from here, and keeps waiting: no task is resumed
        for it. Only the others (filtered, behind, a transport still holding unsent bytes,
        another server) are woken to send for themselves, as is a stream whose transport paused
        in the middle of a frame: its task waits for the drain, under the clock's write timeout.

        The writes are made `STEP_S` at a time, each step a callback of its own: between two
        steps the event loop serves everything else (a `/healthz`, the next POST), so a fan-out
        to ten thousand streams never holds the loop for longer than one step.
        """
        self.pending.extend((stream, stream.waiter) for stream in self.waiting)
        self.waiting = []
        if not self._stepping:
            self._stepping = True
            self._step()

    def _step(self) -> None:
        pending, keep, ring = self.pending, self.waiting, self.ring
        deadline = time.perf_counter() + STEP_S
        while pending:
            stream, waiter = pending.popleft()
            if waiter is None or waiter.done() or stream.waiter is not waiter:
                continue  # woken meanwhile (gone, dropped): its task is on its way
            wire = stream.wire
            if self.closing or stream.leaves is not None or not wire.ready:
                waiter.set_result(None)
                continue
            while ring.base <= stream.cursor < ring.end:
                frame = ring[stream.cursor]
                if stream.pos >= frame.first:  # part of it sent already: the task's own path
                    break
                pos = stream.pos
                for last, framed in frame.chunks:
                    wire.put(framed)
                    pos = last
                    if wire.paused:
                        break
                stream.pos = pos
                stream.wrote = True
                if pos < frame.last or wire.paused:
                    break
                stream.cursor += 1
            if stream.cursor == ring.end:
                keep.append(stream)
            else:
                waiter.set_result(None)  # the rest, from its own task
            if time.perf_counter() > deadline:
                break
        if pending and self.loop is not None:
            self.loop.call_soon(self._step)
        else:
            self._stepping = False

    def beat_all(self) -> None:
        """The heartbeat: idle streams that take direct writes get it here; the rest are woken."""
        self.beat += 1
        waiting, self.waiting = self.waiting, []
        keep = self.waiting
        beat = self.beat
        for stream in waiting:
            waiter = stream.waiter
            if waiter is None or waiter.done():
                continue
            if self.closing or not stream.wire.ready or stream.cursor < 0:
                waiter.set_result(None)
                continue
            if not stream.wrote:
                stream.wire.put(HEARTBEAT_CHUNK)
            stream.beat, stream.wrote = beat, False
            keep.append(stream)

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
                self.beat_all()

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

    async def drain(self, stream: Stream) -> None:
        """Wait, under the write timeout, until the last direct write is all taken."""
        stream.blocked_at = self.ticks
        try:
            await stream.wire.flow.drain()
        finally:
            stream.blocked_at = 0

    async def write(self, stream: Stream, data: bytes, more: bool = True) -> None:
        wire = stream.wire
        if more and wire.direct:
            if wire.paused:
                await self.drain(stream)
            if wire.ready:  # else the client has gone, which its `receive` says too
                wire.put(chunk(data))
            stream.wrote = True
            return
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
                if stream.wire.direct and stream.wire.paused:
                    # before collecting: a stalled stream holds no chunk of its own meanwhile
                    await self.drain(stream)
                    continue
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
