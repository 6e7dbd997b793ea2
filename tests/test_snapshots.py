"""Snapshots: a restart from a snapshot and the log's tail is the same node as a full replay.

A service takes snapshots as it goes; it is restarted once with its snapshots and once (a copy
of its data directory) without; the engine state and every read model must come out the same,
byte for byte in a canonical dump, and both must go on to decide and serve the same.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import KHARKIV, LVIV_HROMADA, FakeClock, running
from tests.engine.helpers import detection, event
from tocsin.service import Service
from tocsin.snapshots import engine_state, model_state

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def canonical(value: Any) -> str:
    """A dump of a state in which only its content counts (a set's iteration order, which
    depends on its history, does not)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{canonical(k)}:{canonical(v)}" for k, v in value.items()) + "}"
    if isinstance(value, set | frozenset):
        return "set(" + ",".join(sorted(canonical(v) for v in value)) + ")"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if hasattr(value, "__slots__") and not isinstance(value, str | bytes | int | float):
        slots = [s for c in type(value).__mro__ for s in getattr(c, "__slots__", ())]
        return f"{type(value).__name__}(" + ",".join(
            f"{s}={canonical(getattr(value, s))}" for s in slots if hasattr(value, s)) + ")"
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return f"{type(value).__name__}({canonical(vars(value))})"
    if hasattr(value, "tolist"):  # array.array
        return canonical(value.tolist())
    return repr(value)


def state_of(service: Service) -> str:
    """The engine's and every read model's state, canonically."""
    service.read_models["alertsinua"].flush()  # as its next read does
    models = {name: model_state(m) for name, m in sorted(service.read_models.items())}
    models["alertsinua"].pop("changed_at")  # the wall time of the last change seen
    return canonical({"engine": engine_state(service.ledger.engine), "models": models})


def same(a: str, b: str) -> None:
    """Assert two dumps are equal, showing where they first differ (not a full diff)."""
    if a != b:
        at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                  min(len(a), len(b)))
        raise AssertionError(f"differ at {at} of {len(a)}/{len(b)}:\n  {a[at - 300:at + 200]}"
                             f"\n  {b[at - 300:at + 200]}")


def raid(start: float, n: int) -> Iterable[dict[str, Any]]:
    """Drones crossing Kharkiv oblast, some ending in impacts, an operator raising and
    clearing: events that open, update and end alerts, and leave some live."""
    for i in range(n):
        t = start + 20 * i
        lat, lon = KHARKIV[0] + 0.05 * (i % 7), KHARKIV[1] - 0.04 * (i % 5)
        yield detection(f"D{i}", t, lat, lon, weapon="shahed-136", heading_deg=(40 * i) % 360)
        if i % 3 == 2:
            yield event("track_end", t + 5, track=f"D{i - 1}", reason="impact")
            yield event("impact", t + 6, position={"lat": lat, "lon": lon}, kind="explosion")
        if i % 5 == 4:
            yield event("operator_alert", t + 7, regions=[LVIV_HROMADA],
                        alert_type="artillery_shelling",
                        action="raise" if i % 10 == 4 else "clear", operator="duty")


async def feed(service: Service, clock: FakeClock, events: Iterable[dict[str, Any]]) -> None:
    for raw in events:
        clock.now = max(clock.now, _time(raw))
        await service.submit([raw], key_name="sensor-key")
        clock.advance(1)


def _time(raw: dict[str, Any]) -> Any:
    from tocsin.model import parse_time

    return parse_time(raw["time"])


async def test_snapshot_and_tail_equal_a_full_replay(tmp_path: Path) -> None:
    clock = FakeClock()
    a, b = tmp_path / "a", tmp_path / "b"
    async with running(a, clock, tick_s=3600) as api:
        svc = api.service
        svc.snapshots.every = 40
        await feed(svc, clock, raid(0, 30))
        taken = svc.snapshots.last_seq
        assert 0 < taken < svc.ledger.durable_seq
        svc.snapshots.every = 10**9  # no more until the stop
        await feed(svc, clock, raid(700, 12))
        total = svc.ledger.durable_seq
    snaps = sorted((a / "snapshots").glob("*.pickle"))
    assert len(snaps) == 2  # the newest two kept: one taken while running, one at the stop
    snaps[-1].unlink()  # as if the node had crashed: restart from the older one and a tail
    shutil.copytree(a, b)
    shutil.rmtree(b / "snapshots")
    async with running(a, clock, tick_s=3600) as fast, running(b, clock, tick_s=3600) as full:
        assert fast.service.snapshots.last_seq == taken < total
        assert full.service.snapshots.last_seq == 0
        assert fast.service.ledger.durable_seq == full.service.ledger.durable_seq == total
        same(state_of(fast.service), state_of(full.service))
        # and both go on alike, through the API and in the log
        before = clock.now
        await feed(fast.service, clock, raid(1200, 6))
        clock.now = before  # the same clock for both
        await feed(full.service, clock, raid(1200, 6))
        same(state_of(fast.service), state_of(full.service))
        got = [e.body for e in fast.service.log.read(total + 1) if e.kind == "transition"]
        want = [e.body for e in full.service.log.read(total + 1) if e.kind == "transition"]
        assert got and got == want
        for path in ("/api/v1/alerts/active", "/api/v1/alerts", "/api/v1/tracks/active",
                     "/api/v1/levels"):
            r1 = await fast.client.get(path, headers=fast.auth("reader"))
            r2 = await full.client.get(path, headers=full.auth("reader"))
            assert r1.status_code == r2.status_code == 200, (path, r1.text)
            assert r1.json() == r2.json(), path


async def test_a_snapshot_that_does_not_check_is_not_used(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(tmp_path, clock, tick_s=3600) as api:
        api.service.snapshots.every = 30
        await feed(api.service, clock, raid(0, 20))
        want = state_of(api.service)
        total = api.service.ledger.durable_seq
    (newest, *_older) = sorted((tmp_path / "snapshots").glob("*.pickle"), reverse=True)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 1  # one bit: what a disk, or someone without the key, might do
    newest.write_bytes(bytes(data))
    async with running(tmp_path, clock, tick_s=3600) as api:
        assert api.service.snapshots.last_seq < total  # an older one, or none
        assert api.service.ledger.durable_seq == total
        same(state_of(api.service), want)
    for snap in (tmp_path / "snapshots").glob("*.pickle"):
        snap.write_bytes(b"garbage")
    async with running(tmp_path, clock, tick_s=3600) as api:
        assert api.service.snapshots.last_seq in (0, total)  # the stop above took a good one
        same(state_of(api.service), want)
