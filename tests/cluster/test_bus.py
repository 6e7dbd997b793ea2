"""`NatsBus` against the real NATS JetStream: de-duplication on (source, id), the leader's
ordered feed from a position, and the transitions stream."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from tests.cluster.services import nats_or_skip
from tocsin.bus.nats import NatsBus, message_id

pytestmark = pytest.mark.nats


def test_message_id_is_header_safe() -> None:
    assert message_id("radar-1", "e1") == '["radar-1","e1"]'
    assert "\n" not in message_id("a\nb", "ü\r")


def test_events_dedup_feed_and_transitions() -> None:
    url = nats_or_skip()

    async def run() -> None:
        bus = NatsBus(url, name=f"t{secrets.token_hex(4)}", node="test", dedup_s=60)
        await bus.connect()
        try:
            events = [{"id": f"e{i}", "source": "radar-1", "type": "tick"} for i in range(5)]
            acks = await bus.publish_events(events, "sensor-1")
            assert [a.stream_seq for a in acks] == [1, 2, 3, 4, 5]
            assert not any(a.duplicate for a in acks)
            again = await bus.publish_events([events[2]], "sensor-1")
            assert again[0].duplicate and again[0].stream_seq == 3  # dropped by the server
            assert await bus.events_last_seq() == 5

            feed = await bus.events_after(2)
            got = await feed.fetch(100, 1.0)
            assert [m.stream_seq for m in got] == [3, 4, 5]
            assert await feed.fetch(100, 0.2) == []
            await feed.close()

            assert await bus.last_transition_seq() == 0
            sub = bus.subscribe()
            await sub.live  # type: ignore[attr-defined]
            await bus.publish([{"seq": 7, "type": "alert_started"},
                               {"seq": 8, "type": "alert_ended"}])
            await bus.publish([{"seq": 8, "type": "alert_ended"}])  # a repeat is dropped
            assert (await asyncio.wait_for(sub.get(), 5))["seq"] == 7
            assert (await asyncio.wait_for(sub.get(), 5))["seq"] == 8
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sub.get(), 0.3)
            assert await bus.last_transition_seq() == 8
            sub.close()
            assert bus.subscribers == 0
        finally:
            js = bus._nc.jetstream()
            for stream in (bus.events_stream, bus.transitions_stream):
                await js.delete_stream(stream)
            await bus.aclose()

    asyncio.run(run())
