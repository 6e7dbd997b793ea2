"""The in-process bus of the embedded server: one asyncio queue per subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tocsin.bus.base import Bus, Subscription

__all__ = ["MemoryBus"]


class _QueueSubscription(Subscription):
    __slots__ = ("_bus", "_queue")

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def get(self) -> dict[str, Any]:
        return await self._queue.get()

    def put(self, envelope: dict[str, Any]) -> None:
        self._queue.put_nowait(envelope)

    def close(self) -> None:
        self._bus._subs.discard(self)


class MemoryBus(Bus):
    """Delivers each published envelope to every open subscription, in order."""

    def __init__(self) -> None:
        self._subs: set[_QueueSubscription] = set()

    async def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        """Queue the envelopes on every subscription (never blocks the publisher)."""
        for sub in tuple(self._subs):
            for env in envelopes:
                sub.put(env)

    def subscribe(self) -> Subscription:
        """Open a subscription."""
        sub = _QueueSubscription(self)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        """Open subscriptions."""
        return len(self._subs)
