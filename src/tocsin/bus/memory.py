"""The in-process bus of the embedded server: one asyncio queue per subscriber.

A publish queues its whole batch once per subscriber (not each envelope), so fanning a
detection's transitions out to thousands of streams costs one queue put per stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from tocsin.bus.base import Bus, Subscription

__all__ = ["MemoryBus"]

Batch = Sequence[dict[str, Any]]


class _QueueSubscription(Subscription):
    __slots__ = ("_bus", "_queue", "_ready")

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._ready: deque[dict[str, Any]] = deque()

    async def get(self) -> dict[str, Any]:
        if not self._ready:
            self._ready.extend(await self._queue.get())
        return self._ready.popleft()

    async def get_batch(self) -> Sequence[dict[str, Any]]:
        if not self._ready:
            batch = await self._queue.get()
            if self._queue.empty():
                return batch  # the very batch every subscriber got: callers may cache by it
            self._ready.extend(batch)
        while not self._queue.empty():
            self._ready.extend(self._queue.get_nowait())
        out = tuple(self._ready)
        self._ready.clear()
        return out

    def put(self, batch: Batch) -> None:
        self._queue.put_nowait(batch)

    def close(self) -> None:
        self._bus._subs.discard(self)


class MemoryBus(Bus):
    """Delivers each published envelope to every open subscription, in order."""

    def __init__(self) -> None:
        self._subs: set[_QueueSubscription] = set()

    async def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        """Queue the envelopes on every subscription (never blocks the publisher)."""
        self.publish_nowait(envelopes)

    def publish_nowait(self, envelopes: Sequence[dict[str, Any]]) -> None:
        """`publish`, from code that cannot await (it never waits anyway)."""
        if not envelopes:
            return
        batch = tuple(envelopes)
        for sub in tuple(self._subs):
            sub.put(batch)

    def subscribe(self) -> Subscription:
        """Open a subscription."""
        sub = _QueueSubscription(self)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        """Open subscriptions."""
        return len(self._subs)
