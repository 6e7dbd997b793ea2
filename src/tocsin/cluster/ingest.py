"""A cluster node's ingest: events go to the JetStream events stream, for the leader to decide."""

from __future__ import annotations

import asyncio

from tocsin.bus.nats import NatsBus
from tocsin.ledger import Accepted
from tocsin.model import Event
from tocsin.service import Service, SubmitResult
from tocsin.trust import Caller, admit

__all__ = ["StreamIngest"]


class StreamIngest:
    """Answers events already in the log from the log; publishes the others to the stream.

    The `202` goes out once JetStream has stored them, with each event's `stream_seq`; its log
    `seq` is not known yet. The clock is the leader's: ticks are not published.
    """

    def __init__(self, service: Service, nats: NatsBus) -> None:
        self.service = service
        self.nats = nats

    async def submit(
        self, events: list[Event], *, key_name: str | None, tick: bool,
        caller: Caller | None = None,
    ) -> SubmitResult:
        """Publish a batch parsed and checked at the edge; returns once stored.

        Repeated ids are checked against the shared log and track ownership against this
        node's state (the leader's, milliseconds later), before anything is published.
        """
        if not events:
            return SubmitResult([], [])
        svc = self.service
        keys = [e.key for e in events]
        logged = await asyncio.to_thread(svc.log.find_events, keys)
        await asyncio.get_running_loop().run_in_executor(
            svc.writer, lambda: admit(caller, events, live=svc.ledger.engine.track_sources,
                                      find=lambda *key: logged.get(key), body_at=svc.body_at))
        fresh = [i for i, key in enumerate(keys) if key not in logged]
        acks = await self.nats.publish_events([dict(events[i].raw) for i in fresh], key_name)
        by_index = dict(zip(fresh, acks, strict=True))
        results = []
        for i, (source, event_id) in enumerate(keys):
            ack = by_index.get(i)
            if ack is None:
                results.append(Accepted(event_id, source, logged[(source, event_id)], True))
            else:
                results.append(Accepted(event_id, source, 0, ack.duplicate,
                                        stream_seq=ack.stream_seq))
        return SubmitResult(results, [])
