"""A region's recent alerts for the map's timeline: `GET /api/v1/regions/{id}/recent`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.helpers import LVIV_HROMADA, LVIV_OBLAST, Api, FakeClock, event
from tests.engine.helpers import T0

pytestmark = pytest.mark.anyio

OTHER_LVIV_HROMADA = "UA46060010000049728"
HOUR = 3600.0
DAY = 24 * HOUR


async def operator(api: Api, clock: FakeClock, action: str, region: str, t: float) -> None:
    clock.now = T0 + timedelta(seconds=t)  # the server's clock, which events cannot pass
    r = await api.post(event("operator_alert", t, regions=[region], alert_type="air_raid",
                             action=action, operator="duty-officer"), role="operator")
    assert r.status_code == 202, r.text


async def recent(api: Api, region: str, **params: str) -> dict[str, object]:
    r = await api.client.get(f"/api/v1/regions/{region}/recent", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_alert_hours_are_the_union_of_overlapping_alerts(api: Api,
                                                               clock: FakeClock) -> None:
    # two hromadas of one oblast: 00:00-01:00 and 00:30-01:30, then one still open for an hour
    await operator(api, clock, "raise", LVIV_HROMADA, 0)
    await operator(api, clock, "raise", OTHER_LVIV_HROMADA, HOUR / 2)
    await operator(api, clock, "clear", LVIV_HROMADA, HOUR)
    await operator(api, clock, "clear", OTHER_LVIV_HROMADA, 1.5 * HOUR)
    await operator(api, clock, "raise", LVIV_HROMADA, 2 * DAY - HOUR)
    clock.now = T0 + timedelta(seconds=2 * DAY)

    week = await recent(api, LVIV_OBLAST)
    assert week["region"] == LVIV_OBLAST and week["truncated"] is False
    assert week["alert_hours"] == 2.5  # 1.5 h of overlapping alerts + 1 h open until now
    assert week["by_type"] == {"air_raid": 2.5}
    days = week["days"]
    assert isinstance(days, list) and len(days) == 7
    assert [d["alert_hours"] for d in days] == [0, 0, 0, 0, 0, 1.5, 1.0]
    assert days[-1]["end"] == week["until"]
    assert len(week["alerts"]) == 3  # type: ignore[arg-type]

    one = await recent(api, LVIV_HROMADA)
    assert one["alert_hours"] == 2.0
    last_day = await recent(api, LVIV_OBLAST, days="1")
    assert last_day["alert_hours"] == 1.0 and len(last_day["alerts"]) == 1  # type: ignore[arg-type]
    month = await recent(api, LVIV_OBLAST, days="31")
    assert len(month["days"]) == 31  # type: ignore[arg-type]


@pytest.mark.parametrize("days", ["0", "32", "seven", "-1", "1.5"])
async def test_bad_days_is_a_422_naming_the_field(api: Api, days: str) -> None:
    r = await api.client.get(f"/api/v1/regions/{LVIV_OBLAST}/recent", params={"days": days})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "days"


async def test_unknown_or_malformed_region(api: Api) -> None:
    r = await api.client.get("/api/v1/regions/UA00000000000000000/recent")
    assert r.status_code == 404 and "unknown region" in r.json()["detail"]
    r = await api.client.get("/api/v1/regions/" + "x" * 65 + "/recent")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "region_id"
