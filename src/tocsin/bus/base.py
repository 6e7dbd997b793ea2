"""The bus interface: publish envelopes in log order; subscribers get them in that order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from tocsin.errors import TocsinError

__all__ = ["Bus", "BusError", "Subscription"]


class BusError(TocsinError):
    """A publish or subscribe failed."""

    status_hint = 503


class Subscription(ABC):
    """A live feed of envelopes; `get` waits for the next one."""

    @abstractmethod
    async def get(self) -> dict[str, Any]:
        """The next envelope."""

    async def get_batch(self) -> Sequence[dict[str, Any]]:
        """Every envelope received and not yet taken, in order (waits for at least one).

        Treat the result as read-only: it may be shared with other subscribers.
        """
        return (await self.get(),)

    @abstractmethod
    def close(self) -> None:
        """Stop receiving."""


class Bus(ABC):
    """Fan-out of published transitions to subscribers, as an async context manager."""

    @abstractmethod
    async def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        """Publish envelopes (each with a `seq`) in order."""

    @abstractmethod
    def subscribe(self) -> Subscription:
        """A new subscription receiving everything published from now on."""

    @property
    @abstractmethod
    def subscribers(self) -> int:
        """How many subscriptions are open."""

    async def aclose(self) -> None:  # noqa: B027 - a bus without resources needs nothing here
        """Release the bus."""

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
