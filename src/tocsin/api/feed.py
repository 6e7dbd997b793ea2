"""What the SSE hub reads: committed transitions, from the log in pages and live as they come.

This is the one seam between the stream endpoint and the rest of tocsin. The hub needs three
things and nothing else:

- `page(after, limit)`: the transitions among the log entries (`after`, `after + limit`], as
  envelopes, plus how far the log was read (bounded work and memory per call);
- `open()`: start following what is committed from now on, and return the floor: a seq above
  which every committed transition will still come through `next_batch()`;
- `next_batch()`: the next envelopes committed, in log order (`close()` stops following).

`ServiceFeed` takes them from a running service (its log and its in-process bus); `TailFeed`
polls a committed log from another process (a stream edge). Nothing else in `tocsin.api.sse`
knows where envelopes come from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from tocsin.bus.base import Subscription
from tocsin.envelopes import envelopes_of, wire
from tocsin.model import format_time
from tocsin.modes import ACTUAL
from tocsin.store.base import EventLog, LogEntry

if TYPE_CHECKING:
    from tocsin.service import Service

__all__ = ["Feed", "LogPages", "ServiceFeed", "TailFeed"]

Envelope = dict[str, Any]


class Feed(Protocol):
    """The source of a stream hub (see the module docstring)."""

    closing: asyncio.Event

    def page(self, after: int, limit: int) -> tuple[list[Envelope], int]: ...

    async def open(self) -> int: ...

    async def next_batch(self) -> Sequence[Envelope]: ...

    def close(self) -> None: ...


class LogPages:
    """Envelopes read from a log `limit` entries at a time (blocking: call from a thread)."""

    def __init__(self, log: EventLog, clock: Callable[[], datetime], mode: str = ACTUAL) -> None:
        self.log = log
        self.clock = clock
        self.mode = mode

    def _cause(self, seq: int) -> LogEntry:
        return next(iter(self.log.read(seq, seq)))

    def page(self, after: int, limit: int) -> tuple[list[Envelope], int]:
        """The transitions in (`after`, `after + limit`] and the last seq read (`after` if none)."""
        entries = list(self.log.read(after + 1, after + limit))
        if not entries:
            return [], after
        # an event and its transitions may straddle two pages: the event is fetched by seq
        envs = envelopes_of(entries, format_time(self.clock()), self._cause, mode=self.mode)
        return wire(envs), entries[-1].seq


class ServiceFeed(LogPages):
    """A running service's log, and its bus for what is published from now on."""

    def __init__(self, service: Service) -> None:
        super().__init__(service.log, service.clock, service.settings.mode)
        self.service = service
        self.closing = service.closing
        self._sub: Subscription | None = None

    async def open(self) -> int:
        # Subscribed before the floor is read: a batch committed by then is either at or below
        # the floor (a resuming stream reads it from the log) or still to be published here.
        self._sub = self.service.bus.subscribe()
        return self.log.max_seq()

    async def next_batch(self) -> Sequence[Envelope]:
        if self._sub is None:
            raise RuntimeError("open() the feed first")
        return await self._sub.get_batch()

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None


class TailFeed(LogPages):
    """A committed log followed from outside the writer: polled every `poll_s` when idle.

    With `wake_fd`, the read end of a pipe the writer rings after each commit
    (`tocsin.outputs.doorbell`), the log is read as soon as it rings, and polled only every
    `RUNG_POLL_S` besides (a ring is never needed for correctness: each read takes everything
    committed). The event is cleared before each read, so a ring during a read makes another
    read, never a missed batch. If the writer goes (end of file), polling takes over.
    """

    RUNG_POLL_S = 1.0

    def __init__(self, log: EventLog, *, poll_s: float = 0.02, limit: int = 500,
                 wake_fd: int | None = None) -> None:
        # the mode the log's server decided in (kept in its metadata), as the server marks it
        super().__init__(log, lambda: datetime.now(UTC), log.get_meta("mode") or ACTUAL)
        self.poll_s = poll_s
        self.limit = limit
        self.closing = asyncio.Event()
        self.position = 0
        self.wake_fd = wake_fd
        self._rung = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> int:
        if self.wake_fd is not None:
            os.set_blocking(self.wake_fd, False)
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self.wake_fd, self._ring)
        self.position = await asyncio.to_thread(self.log.max_seq)
        return self.position

    def _ring(self) -> None:
        assert self.wake_fd is not None
        try:
            while True:
                if not os.read(self.wake_fd, 4096):  # end of file: the writer has gone
                    self._unwire()
                    break
        except BlockingIOError:
            pass  # drained
        except OSError:
            self._unwire()
        self._rung.set()

    def _unwire(self) -> None:
        if self._loop is not None and self.wake_fd is not None:
            self._loop.remove_reader(self.wake_fd)
            self._loop = None

    async def next_batch(self) -> Sequence[Envelope]:
        while True:
            self._rung.clear()
            envs, last = await asyncio.to_thread(self.page, self.position, self.limit)
            if last == self.position:
                if self._loop is None:
                    await asyncio.sleep(self.poll_s)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._rung.wait(), self.RUNG_POLL_S)
                continue
            self.position = last
            if envs:
                return envs

    def close(self) -> None:
        self._unwire()
