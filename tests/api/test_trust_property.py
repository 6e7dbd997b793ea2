"""Property: a sensor whose clock runs ahead (by up to the allowance) changes no decision.

Two sensors report interleaved tracks to a server whose clock moves on between reports. In one
run sensor B's clock is right (its events are dated the server's now); in the other it runs
`skew` seconds ahead. The time rule applies B's events as of the server's clock either way, so
both runs decide exactly the same transitions at the same times, and no transition (no alert's
end in particular) is ever dated after the server's clock when it was decided.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import FakeClock
from tocsin.config import Settings
from tocsin.model import format_time, parse_time
from tocsin.service import Service
from tocsin.trust import Caller

POINTS = [(50.25, 36.70), (49.84, 24.03), (46.48, 30.72), (50.45, 30.52)]
ALLOWANCE_S = 300.0  # the default policy's max_future_s

step = st.tuples(
    st.sampled_from(["A", "B"]),
    st.sampled_from(["detection", "detection", "detection", "track_end", "impact"]),
    st.integers(0, 2),  # which of the sensor's tracks
    st.integers(0, len(POINTS) - 1),
    st.sampled_from([None, 0.0, 90.0, 230.0, 360.0]),
    st.floats(0, 400, allow_nan=False),  # how far the server's clock moves first
)


def _event(n: int, who: str, kind: str, track: int, point: int, heading: float | None,
           when: str) -> dict[str, Any]:
    lat, lon = POINTS[point]
    ev: dict[str, Any] = {"id": f"{who}-{n}", "type": kind, "time": when,
                          "source": f"radar-{who}"}
    if kind == "detection":
        ev.update(track=f"{who}{track}", object="drone", weapon="shahed-136",
                  position={"lat": lat, "lon": lon})
        if heading is not None:
            ev["heading_deg"] = heading
    elif kind == "track_end":
        ev.update(track=f"{who}{track}", reason="intercepted")
    else:
        ev.update(track=f"{who}{track}", kind="explosion", position={"lat": lat, "lon": lon})
    return ev


async def _run(steps: list[Any], skew: float) -> list[tuple[Any, ...]]:
    clock = FakeClock()
    callers = {w: Caller(f"radar-{w}", "sensor") for w in "AB"}
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(Settings(data_dir=Path(tmp), regions="ua-hromadas", tick_s=3600.0),
                      clock=clock)
        await svc.start()
        out: list[tuple[Any, ...]] = []
        try:
            for n, (who, kind, track, point, heading, dt) in enumerate(steps):
                clock.advance(dt)
                ahead = skew if who == "B" else -0.5  # A: half a second of latency
                when = format_time(clock.now + timedelta(seconds=ahead))
                raw = _event(n, who, kind, track, point, heading, when)
                result = await svc.submit([raw], key_name=f"radar-{who}", caller=callers[who])
                for env in result.envelopes:
                    decided = parse_time(env["time"])
                    assert decided <= clock.now, (env["type"], env["time"], clock.now)
                    out.append((env["seq"], env["type"], env["region"], env["alert_type"],
                                env["severity"], env["time"], tuple(env["causes"]),
                                env["eta_s"]))
        finally:
            await svc.stop()
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=8),
       skew=st.floats(0.001, ALLOWANCE_S, allow_nan=False))
def test_a_skewed_sensor_clock_changes_no_decision(steps: list[Any], skew: float) -> None:
    honest = asyncio.run(_run(steps, 0.0))
    skewed = asyncio.run(_run(steps, skew))
    assert skewed == honest
