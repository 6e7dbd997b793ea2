"""GET /api/v1/audit/report: the after-action page of a stretch of the log."""

from __future__ import annotations

import pytest

from tests.api.helpers import LVIV, NEAR_KHARKIV, Api, at, detection, event
from tests.audit.test_after_action import page_is_offline


@pytest.mark.anyio
async def test_api_serves_the_report_with_latency(api: Api) -> None:
    await api.post(detection("R1", 1.0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230),
                   role="sensor")
    await api.post(event("impact", 2.0, position={"lat": LVIV[0], "lon": LVIV[1]},
                         kind="explosion"), role="sensor")
    r = await api.client.get("/api/v1/audit/report",
                             params={"from": at(-60), "to": at(600)})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page_is_offline(r.text)
    assert "Silent impacts" in r.text  # the Lviv impact had no alert
    assert "(n = 1)" in r.text  # one detection with its logging latency
    bad = await api.client.get("/api/v1/audit/report", params={"from": "soon"})
    assert bad.status_code == 422 and "from" in bad.text
    long = await api.client.get("/api/v1/audit/report",
                                params={"from": at(0), "to": at(8 * 86400)})
    assert long.status_code == 422 and "7 days" in long.text
