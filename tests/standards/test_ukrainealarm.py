"""The ukrainealarm v3 API with its real client (`uasiren`), and drills marked everywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import uasiren.client

from tests import servers
from tests.api.helpers import LVIV_HROMADA, Api
from tests.engine.helpers import event
from tocsin.model import format_time
from tocsin.outputs.cap import parse
from tocsin.outputs.ukrainealarm import bundled_regions

Start = Callable[..., AbstractAsyncContextManager[Api]]
KHARKIV_OBLAST = "UA63000000000041885"


@pytest.fixture
def exercise_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real `tocsin serve --mode exercise` (public reads) and an operator key."""
    data = tmp_path / "data"
    operator = servers.create_key("operator", "--data-dir", str(data), "--source", "console")
    with servers.serving(data, tmp_path / "serve.log", "--mode", "exercise") as base:
        yield base, operator


@pytest.mark.serial
def test_the_real_uasiren_client_reads_tocsin(
    exercise_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, operator = exercise_server
    now = format_time(datetime.now(UTC))
    for regions in ([KHARKIV_OBLAST], [LVIV_HROMADA]):
        r = httpx.post(base + "/api/v1/events", headers={"Authorization": f"Bearer {operator}"},
                       json={"id": f"op-{regions[0]}", "type": "operator_alert", "time": now,
                             "source": "console", "regions": regions,
                             "alert_type": "air_raid", "action": "raise",
                             "operator": "duty"}, timeout=30)
        assert r.status_code == 202, r.text
    # the one change a user makes: where the client points
    monkeypatch.setattr(uasiren.client.Client, "BASE_PATH", base + "/api/v3")

    async def read() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            client = uasiren.client.Client(session)
            out = {
                "regions": await client.get_regions(),
                "alerts": await client.get_alerts(),
                "kharkiv": await client.get_alerts("22"),
                "kharkiv_city": await client.get_alerts("1293"),
                "lviv_oblast": await client.get_alerts("27"),
                "status": await client.get_last_alert_index(),
            }
            with pytest.raises(aiohttp.ClientResponseError) as unknown:
                await client.get_alerts("99999")
            assert unknown.value.status == 404
            return out

    got = asyncio.run(read())
    assert got["regions"] == bundled_regions()
    assert {s["regionId"] for s in got["regions"]["states"]} >= {"22", "27", "31"}
    by_id = {r["regionId"]: r for r in got["alerts"]}
    lviv_uid = next(str(k) for k, v in _uids().items() if v == LVIV_HROMADA)
    assert set(by_id) == {"22", lviv_uid}
    assert by_id["22"]["regionType"] == "State"
    assert [a["type"] for a in by_id["22"]["activeAlerts"]] == ["AIR"]
    # a hromada inside an oblast under alert is covered by the oblast's alert (as HA reads it)
    (city,) = got["kharkiv_city"]
    assert city["regionId"] == "1293"
    assert [(a["regionId"], a["type"]) for a in city["activeAlerts"]] == [("22", "AIR")]
    (lviv,) = got["lviv_oblast"]
    assert lviv["activeAlerts"] == []  # one hromada is not the oblast's alert
    assert isinstance(got["status"]["lastActionIndex"], int)
    # a drill says so in each answer
    assert by_id["22"]["notes"].startswith("EXERCISE")
    assert all(a["notes"].startswith("EXERCISE") for a in by_id["22"]["activeAlerts"])


def _uids() -> dict[int, str]:
    from tocsin.geo import load_region_set

    regions = load_region_set("ua-hromadas")
    return {r.alerts_uid: r.id for r in regions.regions.values() if r.alerts_uid is not None}


@pytest.mark.anyio
async def test_status_index_moves_only_with_the_alerts(start: Start) -> None:
    async with start() as api:
        index = (await api.client.get("/api/v3/alerts/status")).json()["lastActionIndex"]
        assert (await api.client.get("/api/v3/alerts/status")).json()["lastActionIndex"] == index
        await api.post(event("operator_alert", 1, regions=[KHARKIV_OBLAST],
                             alert_type="air_raid", action="raise", operator="duty"))
        moved = (await api.client.get("/api/v3/alerts/status")).json()["lastActionIndex"]
        assert moved > index
        await api.post(event("threat_level", 2, regions=[KHARKIV_OBLAST], level=2,
                             operator="duty"))  # not an alert: the index stays
        assert (await api.client.get("/api/v3/alerts/status")).json()["lastActionIndex"] == moved
        r = await api.client.get("/api/v3/alerts/abc")
        assert r.status_code == 404


@pytest.mark.anyio
async def test_an_exercise_is_marked_on_every_output(start: Start) -> None:
    async with start(mode="exercise") as api:
        await api.post(event("operator_alert", 1, regions=[KHARKIV_OBLAST],
                             alert_type="air_raid", action="raise", operator="duty"))
        envelopes = api.service.backlog(0, None)  # what SSE resumes and webhooks deliver
        assert envelopes and all(e["mode"] == "exercise" for e in envelopes)
        for path in ("/api/v1/alerts/active", "/api/v1/alerts", "/api/v1/levels",
                     "/api/v1/tracks/active"):
            r = await api.client.get(path)
            assert r.status_code == 200, path
            assert r.json()["mode"] == "exercise" and "EXERCISE" in r.json()["notice"], path
            assert r.headers["x-tocsin-mode"] == "exercise"
        active = (await api.client.get("/v1/alerts/active.json")).json()
        assert active["disclaimer"].startswith("EXERCISE")
        assert active["alerts"] and all(a["notes"].startswith("EXERCISE")
                                        for a in active["alerts"])
        seq = api.transition_seqs()[0]
        cap = await api.client.get(f"/cap/tocsin-{seq}.xml")
        assert parse(cap.content).status == "Exercise"
    async with start("real") as api:
        await api.post(event("operator_alert", 1, regions=[KHARKIV_OBLAST],
                             alert_type="air_raid", action="raise", operator="duty"))
        assert all(e["mode"] == "actual" for e in api.service.backlog(0, None))
        body = (await api.client.get("/api/v1/alerts/active")).json()
        assert body["mode"] == "actual" and body["notice"] is None
        assert all(a["notes"] is None for a in
                   (await api.client.get("/v1/alerts/active.json")).json()["alerts"])
        assert json.dumps(body)  # plain JSON
