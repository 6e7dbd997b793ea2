"""The hub's one wake-up: written from one loop, a few milliseconds at a time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tocsin.api.hub import STEP_S, Stream, StreamHub
from tocsin.api.metrics import StreamMetrics
from tocsin.api.wire import chunk

pytestmark = pytest.mark.anyio


class SlowWire:
    """A connection that takes direct writes, each costing `cost_s` of the event loop's time
    (what a kernel under TCP memory pressure made of every send to a stalled client)."""

    direct = True
    ready = True
    paused = False

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.sent: list[bytes] = []

    def put(self, framed: bytes) -> None:
        time.sleep(self.cost_s)
        self.sent.append(framed)


def _hub() -> StreamHub:
    return StreamHub(None, StreamMetrics(CollectorRegistry()),  # type: ignore[arg-type]
                     heartbeat_s=15, buffer_bytes=1 << 20, write_timeout_s=10)


async def _parked(hub: StreamHub, n: int, cost_s: float) -> tuple[list[Stream], list[SlowWire]]:
    streams, wires = [], []
    for _ in range(n):
        stream = Stream(lambda _m: None, None, None)  # type: ignore[arg-type, return-value]
        wire = SlowWire(cost_s)
        stream.wire = wire  # type: ignore[assignment]
        stream.cursor = hub.ring.end
        streams.append(stream)
        wires.append(wire)
        stream.task = asyncio.create_task(hub.wait(stream))
    await asyncio.sleep(0)
    return streams, wires


async def test_a_fan_out_leaves_the_event_loop_free_between_steps() -> None:
    hub = _hub()
    hub.loop = asyncio.get_running_loop()
    streams, wires = await _parked(hub, 300, 0.001)  # 300 ms of writes in all
    gaps: list[float] = []
    writes: list[int] = []  # writes done between two turns of the probe
    done = asyncio.Event()

    def written() -> int:
        return sum(len(w.sent) for w in wires)

    async def probe() -> None:  # what a /healthz sees: how long until the loop runs it
        last, seen = time.perf_counter(), written()
        while not done.is_set():
            await asyncio.sleep(0)
            now, count = time.perf_counter(), written()
            gaps.append(now - last)
            writes.append(count - seen)
            last, seen = now, count

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0)
    envs: list[dict[str, Any]] = [{"seq": 5, "type": "alert_started", "region": "R1"}]
    hub.ring.push(envs)
    start = time.perf_counter()
    hub.deliver()
    while hub._stepping:
        await asyncio.sleep(0.001)
    took = time.perf_counter() - start
    done.set()
    await prober
    frame = hub.ring[0]
    assert all(w.sent == [c for _, c in frame.chunks] for w in wires)
    assert all(s.cursor == hub.ring.end and s.pos == 5 for s in streams)
    # caught-up streams were written to, not woken: they still wait, with no task resumed
    assert not any(s.task is not None and s.task.done() for s in streams)
    assert len(hub.waiting) == 300
    assert took >= 0.3
    # each step holds the loop about STEP_S (plus the one write that crosses it), not 300 ms:
    # told by the writes between two turns of the loop, which a busy machine cannot inflate
    # (a slower write only makes a step's writes fewer)
    assert max(writes) <= STEP_S / 0.001 + 1, max(writes)
    assert sum(1 for w in writes if w) >= 20  # the writes were cut into many steps
    # and in time: no turn of the loop waits 100 ms
    assert max(gaps) < 0.1, max(gaps)
    for s in streams:
        assert s.task is not None
        s.task.cancel()


async def test_a_batch_arriving_mid_fan_out_reaches_every_stream_once_in_order() -> None:
    hub = _hub()
    hub.loop = asyncio.get_running_loop()
    streams, wires = await _parked(hub, 100, 0.0005)
    hub.ring.push([{"seq": 1, "type": "alert_started", "region": "R1"}])
    hub.deliver()
    await asyncio.sleep(0.01)  # part of the streams have the first batch
    assert hub.pending
    hub.ring.push([{"seq": 2, "type": "alert_ended", "region": "R1"}])
    hub.deliver()
    while hub._stepping:
        await asyncio.sleep(0.001)
    want = [c for i in range(2) for _, c in hub.ring[i].chunks]
    assert all(w.sent == want for w in wires)
    assert len(hub.waiting) == 100 and all(s.pos == 2 for s in streams)
    hub.beat_all()  # streams that were written to since the last beat get none
    assert all(w.sent == want for w in wires)
    hub.beat_all()
    assert all(w.sent[-1] == chunk(b": heartbeat\n\n") for w in wires)
    for s in streams:
        assert s.task is not None
        s.task.cancel()
