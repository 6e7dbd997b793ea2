"""GET /api/v1/stream: filters, resume with Last-Event-ID (no gap, no repeat), disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tests.api.helpers import (
    KHARKIV,
    KHARKIV_OBLAST,
    LVIV_HROMADA,
    NEAR_KHARKIV,
    Api,
    at,
    detection,
    event,
    wait_until,
)
from tocsin.ledger import parse_batch
from tocsin.model import TRANSITION_TYPES
from tocsin.service import LocalIngest

pytestmark = pytest.mark.anyio
Starter = Callable[..., AbstractAsyncContextManager[Api]]


def drone(track: str, t: float = 1.0) -> dict[str, object]:
    return detection(track, t, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230)


def lviv_raise(t: float = 2.0) -> dict[str, object]:
    return event("operator_alert", t, regions=[LVIV_HROMADA], alert_type="air_raid",
                 action="raise", operator="duty-officer")


async def test_live_events_carry_seq_type_and_provenance(api: Api) -> None:
    async with api.stream() as stream:
        assert stream.status == 200
        r = await api.post(drone("D1"))
        (acc,) = r.json()["accepted"]
        assert await api.seq() == acc["seq"] + acc["transitions"]
        got = await stream.take(await api.seq())
        assert [e.id for e in got] == api.transition_seqs()
        for e in got:
            assert e.event == e.data["type"] == "alert_started"
            assert e.data["seq"] == e.id and e.data["cause_seq"] == acc["seq"]
            assert e.data["cause_time"] == at(1.0)
            assert e.data["decided_at"] and e.data["published_at"]
    assert "connected" in stream.comments


async def test_a_batch_durable_before_connect_but_published_after_is_sent(api: Api) -> None:
    # the window between the writer's commit and the publish: a stream opened inside it must
    # still get what is published after it subscribed
    loop = asyncio.get_running_loop()
    events = parse_batch([drone("W1")])
    result, error = await loop.run_in_executor(
        api.service.writer, LocalIngest(api.service).commit_sync, events, None, False)
    assert error is None and result.envelopes
    async with api.stream() as stream:
        await api.service.bus.publish(result.envelopes)
        got = await stream.take(result.envelopes[-1]["seq"])
        assert [e.id for e in got] == [env["seq"] for env in result.envelopes]


async def test_region_and_point_filters(api: Api) -> None:
    kharkiv = set(api.service.regions.leaves_under(KHARKIV_OBLAST))
    here = api.service.regions.locate(*KHARKIV)
    async with api.stream({"region": KHARKIV_OBLAST}) as oblast, \
            api.stream({"lat": KHARKIV[0], "lon": KHARKIV[1]}) as point, \
            api.stream({"region": LVIV_HROMADA}) as lviv:
        await api.post(drone("D1"))
        last_kharkiv = max(s for s in api.transition_seqs()
                           if next(api.service.log.read(s, s)).obj()["region"] in kharkiv)
        await api.post(lviv_raise())
        end = await api.seq()
        got = await oblast.take(last_kharkiv)
        expected = [e.seq for e in api.service.log.read() if e.kind == "transition"
                    and e.obj()["region"] in kharkiv]
        assert [e.id for e in got] == expected
        assert {e.data["region"] for e in got} <= kharkiv
        (only,) = await point.take(0)
        assert only.data["region"] == here
        (lviv_event,) = await lviv.take(end)
        assert lviv_event.id == end and lviv_event.data["region"] == LVIV_HROMADA
        await asyncio.sleep(0)
        assert oblast.pending() == [] and point.pending() == []
    for query in ({"region": "nowhere"}, {"lat": "50"}):
        async with api.stream(query) as bad:
            assert bad.status in (404, 422)


async def test_resume_after_last_event_id_has_no_gap_and_no_repeat(api: Api) -> None:
    r = await api.post(drone("D1"))
    (acc,) = r.json()["accepted"]
    first = api.transition_seqs()
    middle = first[len(first) // 2]
    cases = {
        "mid-batch": middle,  # between two transitions of one event
        "at the event": acc["seq"],  # between an event and its transitions
        "before everything": 0,
    }
    # somewhere new each time: a second drone over D1's regions is no news
    elsewhere = iter([(49.84, 24.03), (46.48, 30.72), (51.49, 31.29)])
    for label, after in cases.items():
        async with api.stream(headers={"Last-Event-ID": str(after)}) as stream:
            backlog = await stream.take(first[-1])
            assert [e.id for e in backlog] == [s for s in first if s > after], label
            # then live, with nothing repeated
            await api.post(detection(f"D-{label}", 2.0, *next(elsewhere), weapon="shahed-136",
                                     heading_deg=90))
            live = await stream.take(api.transition_seqs()[-1])
            assert [e.id for e in live] == api.transition_seqs(first[-1]), label
            first = api.transition_seqs()
    # ?since= does the same for clients that cannot set headers
    async with api.stream({"since": middle}) as stream:
        got = await stream.take(first[-1])
        assert [e.id for e in got] == [s for s in first if s > middle]
    # resumed transitions carry the same provenance as live ones
    assert all(e.data["cause_time"] and e.data["decided_at"] for e in got)
    async with api.stream(headers={"Last-Event-ID": "abc"}) as bad:
        assert bad.status == 422


async def test_resume_while_writes_race_the_backlog(api: Api) -> None:
    await api.post(drone("D0"))
    after = api.transition_seqs()[3]

    async def writer() -> None:
        for i in range(6):
            await api.post([drone(f"R{i}a", 2.0 + i), lviv_raise(2.5 + i)])
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    async with api.stream(headers={"Last-Event-ID": str(after)}) as stream:
        await task
        got = [e.id for e in await stream.take(api.transition_seqs()[-1])]
    assert got == api.transition_seqs(after)
    assert len(got) == len(set(got))


async def test_resume_filtered_by_region(api: Api) -> None:
    await api.post(drone("D1"))
    await api.post(lviv_raise())
    kharkiv = set(api.service.regions.leaves_under(KHARKIV_OBLAST))
    seqs = [e.seq for e in api.service.log.read() if e.kind == "transition"
            and e.obj()["region"] in kharkiv]
    after = seqs[5]
    async with api.stream({"region": KHARKIV_OBLAST}, {"Last-Event-ID": str(after)}) as stream:
        got = await stream.take(seqs[-1])
        assert [e.id for e in got] == seqs[6:]


async def test_heartbeats_on_an_idle_stream(start: Starter) -> None:
    async with start(heartbeat_s=0.02) as api, api.stream() as stream:
        await wait_until(lambda: stream.comments.count("heartbeat") >= 2, what="heartbeats")


async def test_disconnect_ends_the_stream(api: Api) -> None:
    metrics = api.app.state.metrics
    hub = api.app.state.hub

    def clients() -> float:
        value: float = metrics.stream_clients._value.get()
        return value

    async with api.stream() as one, api.stream({"region": KHARKIV_OBLAST}):
        await wait_until(lambda: clients() == 2, what="two clients")
        # one subscription feeds every stream of the process
        assert api.service.bus.subscribers == 1 and len(hub.streams) == 2
        await one.disconnect()
        await wait_until(lambda: clients() == 1, what="one client left")
    await wait_until(lambda: clients() == 0, what="no clients")
    assert not hub.streams
    assert "tocsin_stream_clients 0.0" in (await api.client.get("/metrics")).text


async def test_shutdown_ends_open_streams(start: Starter) -> None:
    async with start() as api:
        stream = api.stream()
        await stream.__aenter__()
        api.service.begin_shutdown()
        await asyncio.wait_for(stream.finished.wait(), 10)
        await stream.disconnect()


def test_event_names_are_transition_types() -> None:
    assert "alert_started" in TRANSITION_TYPES and "siren_fault" in TRANSITION_TYPES
