"""The bytes of the stream hub: frames encoded once, the ring every stream reads, and the way
from a frame to a client's socket.

A batch is encoded once (`Frame`), cut into slices of at most about `SEND_LIMIT` bytes, and each
slice is also kept framed as an HTTP/1.1 chunk. On uvicorn (h11 or httptools), a stream's body
after the first write goes straight to the connection's transport (`Wire`): the pre-framed chunk
is written as it is, with no ASGI message, no h11 event and no coroutine per stream, which is
what lets the hub deliver a batch to every caught-up stream from one loop over them. The
response's start and end still go through the server's `send`, so the server's own state
(keep-alive, the terminating chunk) stays its own. Anything else (another server, HTTP/1.0,
HEAD) is sent through `send` as ASGI says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.types import Scope, Send

__all__ = ["SEND_LIMIT", "Frame", "Ring", "Wire", "chunk", "format_sse"]

SEND_LIMIT = 32_768  # most bytes handed to one send (what a stalled client pins past the ring)


def format_sse(env: Mapping[str, Any]) -> bytes:
    """One SSE message: id is the log seq, event the transition type."""
    obj = env if type(env) is dict else dict(env)  # an `Envelope` is sent as its wire form
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return f"id: {env['seq']}\nevent: {env['type']}\ndata: {data}\n\n".encode()


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP/1.1 body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class Frame:
    """One batch, encoded once: each transition with its region, and the whole batch cut into
    slices of at most about `SEND_LIMIT` bytes (between transitions) that every unfiltered
    stream sends as they are (`chunks`: the same slices framed as HTTP/1.1 chunks)."""

    __slots__ = ("chunks", "first", "last", "parts", "size", "slices")

    def __init__(self, envs: Sequence[dict[str, Any]]) -> None:
        self.parts = tuple((env["seq"], env["region"], format_sse(env)) for env in envs)
        self.first: int = self.parts[0][0]
        self.last: int = self.parts[-1][0]
        slices: list[tuple[int, int, bytes, int, int]] = []
        lo, size = 0, 0
        for i, part in enumerate(self.parts):
            size += len(part[2])
            if size >= SEND_LIMIT or i == len(self.parts) - 1:
                piece = self.parts[lo:i + 1]
                slices.append((piece[0][0], piece[-1][0], b"".join(p[2] for p in piece),
                               lo, i + 1))
                lo, size = i + 1, 0
        self.slices = tuple(slices)
        self.chunks = tuple((s[1], chunk(s[2])) for s in slices)  # (last seq, framed bytes)
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

    def push(self, envs: Sequence[dict[str, Any]]) -> Frame | None:
        """Encode a batch and append it, evicting the oldest frames past the limit."""
        if not envs:
            return None
        frame = Frame(envs)
        self.frames.append(frame)
        self.bytes += frame.size
        while self.bytes > self.limit and len(self.frames) > 1:
            old = self.frames.popleft()
            self.bytes -= old.size
            self.base += 1
            self.floor = max(self.floor, old.last)
        return frame

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


class Wire:
    """Where one stream's body goes: its connection's transport when the server allows, else
    the ASGI `send` (see the module docstring).

    `direct` is decided once, from what the server exposes on `send`: uvicorn's response cycle
    (`send.__self__`) carries the transport, its flow control (paused while the transport holds
    unsent bytes) and whether the client has gone.
    """

    __slots__ = ("cycle", "direct", "flow", "send", "transport")

    def __init__(self, send: Send, scope: Scope) -> None:
        self.send = send
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        flow = getattr(cycle, "flow", None)
        self.cycle: Any = cycle
        self.transport: asyncio.WriteTransport | None = (
            transport if isinstance(transport, asyncio.WriteTransport) else None)
        self.flow: Any = flow
        # the body is chunked exactly when the server frames a GET answered over HTTP/1.1 with
        # no length; httptools says so itself (`chunked_encoding`), h11 decides it the same way
        self.direct = (self.transport is not None
                       and type(cycle).__module__.startswith("uvicorn.protocols.http.")
                       and hasattr(flow, "write_paused") and hasattr(flow, "drain")
                       and hasattr(cycle, "disconnected")
                       and scope.get("http_version") == "1.1" and scope.get("method") == "GET"
                       and getattr(cycle, "chunked_encoding", True) is not False)

    def no_write_buffer(self) -> None:
        """Let the server's transport buffer nothing beyond the write in progress.

        asyncio buffers whatever the kernel does not take, and by default lets a protocol go on
        writing until 64 KB are waiting; a client that reads nothing then pins that much plus
        one more send in this process (about 128 KB each: 1,000 stalled clients were +116-130
        MB). With a high-water mark of 0 the flow control pauses as soon as a byte is left
        over, so a stalled stream pins at most the rest of one write, and its next write blocks
        until the hub's clock drops it. Only a server that exposes its transport on the send
        callable (uvicorn does) is tuned; others are left as they are.
        """
        if self.transport is not None:
            with contextlib.suppress(Exception):  # a transport that cannot be tuned keeps its own
                self.transport.set_write_buffer_limits(high=0, low=0)

    @property
    def ready(self) -> bool:
        """Whether a direct write can go now: nothing left unsent, the client still there."""
        transport = self.transport
        return (self.direct and transport is not None and not self.flow.write_paused
                and not self.cycle.disconnected and not transport.is_closing())

    @property
    def paused(self) -> bool:
        """Whether the transport holds bytes the kernel has not taken yet."""
        return bool(self.flow.write_paused) and not self.cycle.disconnected

    def abort(self) -> None:
        """Reset the connection now, dropping whatever it has not sent."""
        if self.transport is not None:
            self.transport.abort()

    def put(self, framed: bytes) -> None:
        """Write an already framed chunk (the caller has checked `ready`)."""
        assert self.transport is not None
        self.transport.write(framed)
