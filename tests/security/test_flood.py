"""A flood from one key is held to its rate and body limits while other keys are served.

In-process and bounded: 600 requests from the flooding key (a third of them over the body
limit) race 60 requests from two well-behaved keys; everything ends by itself.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.api.helpers import NEAR_KHARKIV, FakeClock, detection, running

pytestmark = pytest.mark.anyio

RATE, BURST, LIMIT = 20.0, 40, 16_384


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_flood_from_one_key_does_not_starve_others(tmp_path: Path) -> None:
    async with running(tmp_path / "data", FakeClock(), rate_limit=RATE, rate_burst=BURST,
                       max_body_bytes=LIMIT) as api:
        flood_key = api.auth("sensor")
        big = [detection(f"B{i}", 1, *NEAR_KHARKIV) for i in range(200)]
        statuses: dict[int, int] = {}
        flood_ids: list[tuple[int, str]] = []

        async def flood(i: int) -> None:
            if i % 3 == 0:
                r = await api.client.post("/api/v1/events", json=big, headers=flood_key)
            else:
                ev = detection(f"F{i}", 1, NEAR_KHARKIV[0], NEAR_KHARKIV[1] - 0.001 * i)
                r = await api.client.post("/api/v1/events", json=ev, headers=flood_key)
                flood_ids.append((r.status_code, ev["id"]))
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        served: list[int] = []

        async def polite() -> None:
            for i in range(30):
                r = await api.client.get("/api/v1/alerts/active", headers=api.auth("reader"))
                served.append(r.status_code)
                ev = detection(f"P{i}", 1, NEAR_KHARKIV[0] + 0.01, NEAR_KHARKIV[1])
                r = await api.post(ev, role="admin")
                served.append(r.status_code)
                await asyncio.sleep(0.01)

        started = time.monotonic()
        politeness = asyncio.create_task(polite())
        for start in range(0, 600, 50):
            await asyncio.gather(*(flood(i) for i in range(start, start + 50)))
        await asyncio.wait_for(politeness, 60)
        elapsed = time.monotonic() - started

        assert set(served) == {200, 202}, served
        assert statuses.get(413, 0) == 200, statuses  # every oversized body, key or no key
        assert set(statuses) <= {202, 413, 429}, statuses
        accepted = statuses.get(202, 0)
        assert accepted <= BURST + RATE * elapsed + 5, (accepted, elapsed)
        assert statuses.get(429, 0) >= 400 - accepted
        # the log holds exactly the flood's accepted events, and no oversized one
        for code, event_id in flood_ids:
            logged = api.service.log.find_event("radar-1", event_id)
            assert (logged is not None) == (code == 202), (code, event_id)
        assert api.service.log.find_event("radar-1", big[0]["id"]) is None
        r = await api.client.post("/api/v1/events", json=big, headers=api.auth("admin"))
        assert r.status_code == 413  # the body limit holds for every key, admin included
