"""The `stream` output: committed batches onto the node's in-process bus, for its SSE streams.

The stream hub of this process (`tocsin.api.sse`, through `tocsin.api.feed.ServiceFeed`)
subscribes to the bus; stream edges in other processes tail the log instead. Nothing is rebuilt
on start: a stream that reconnects resumes from the log with `Last-Event-ID`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tocsin.bus import MemoryBus
from tocsin.envelopes import Envelope, wire

__all__ = ["StreamOutput"]


class StreamOutput:
    """Publishes every committed batch, in its wire form, on `bus`."""

    name = "stream"
    FROM_LOG = False  # nothing to rebuild: streams resume from the log

    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus

    async def start(self) -> None:
        """Nothing to start: the hub subscribes when it starts."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def apply(self, batch: Sequence[Envelope]) -> None:
        """Queue the batch for every subscribed hub (never blocks)."""
        self.bus.publish_nowait(wire(batch))

    def rebuild(self, entries: Iterable[Envelope]) -> None:
        """Nothing: streams resume from the log."""
