"""Public reads: history, regions, tracks, levels, ops endpoints and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

import pytest

from tests.api.helpers import (
    LVIV,
    LVIV_HROMADA,
    LVIV_OBLAST,
    NEAR_KHARKIV,
    Api,
    FakeClock,
    at,
    detection,
    event,
)
from tests.engine.helpers import T0

pytestmark = pytest.mark.anyio
Starter = Callable[..., AbstractAsyncContextManager[Api]]

LVIV_RAION = "UA46060000000042587"
OTHER_LVIV_HROMADA = "UA46060010000049728"


def operator(action: str, region: str, t: float) -> dict[str, object]:
    return event("operator_alert", t, regions=[region], alert_type="air_raid", action=action,
                 operator="duty-officer")


async def test_history_since_until_and_region(api: Api, clock: FakeClock) -> None:
    for action, region, t in (("raise", LVIV_HROMADA, 10), ("clear", LVIV_HROMADA, 20),
                              ("raise", OTHER_LVIV_HROMADA, 100)):
        clock.now = T0 + timedelta(seconds=t)  # the server's clock, which events cannot pass
        await api.post(operator(action, region, t), role="operator")

    alerts = (await api.client.get("/api/v1/alerts")).json()["alerts"]
    assert [(a["region"], a["started_at"], a["ended_at"]) for a in alerts] == [
        (OTHER_LVIV_HROMADA, at(100), None),  # newest first
        (LVIV_HROMADA, at(10), at(20)),
    ]
    first = alerts[1]
    assert first["causes"] == ["operator:duty-officer"] and first["end_seq"] > first["start_seq"]

    async def regions(**params: str) -> list[str]:
        r = await api.client.get("/api/v1/alerts", params=params)
        assert r.status_code == 200, r.text
        return [a["region"] for a in r.json()["alerts"]]

    assert await regions(since=at(50)) == [OTHER_LVIV_HROMADA]  # the first ended before
    assert await regions(until=at(50)) == [LVIV_HROMADA]  # the second started after
    assert await regions(since=at(15), until=at(150)) == [OTHER_LVIV_HROMADA, LVIV_HROMADA]
    assert await regions(region=LVIV_OBLAST) == [OTHER_LVIV_HROMADA, LVIV_HROMADA]
    assert await regions(region=LVIV_HROMADA) == [LVIV_HROMADA]
    assert await regions(region="UA63000000000041885") == []
    assert await regions(limit="1") == [OTHER_LVIV_HROMADA]
    r = await api.client.get("/api/v1/alerts", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "since"


async def test_state_survives_a_restart(start: Starter) -> None:
    paths = ("/api/v1/alerts/active", "/api/v1/alerts", "/api/v1/levels", "/api/v1/tracks/active")
    async with start() as api:
        await api.post(operator("raise", LVIV_HROMADA, 10), role="operator")
        await api.post(operator("clear", LVIV_HROMADA, 20), role="operator")
        await api.post(detection("D1", 21, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
        await api.post(event("threat_level", 22, regions=[LVIV_RAION], level=3,
                             operator="duty-officer"))
        before = [(await api.client.get(p)).json() for p in paths]
        seq = await api.seq()
    async with start() as api:
        assert await api.seq() == seq
        assert [(await api.client.get(p)).json() for p in paths] == before


async def test_regions_list_get_locate(api: Api) -> None:
    body = (await api.client.get("/api/v1/regions")).json()
    assert body["set"] == "ua-hromadas"
    assert len(body["regions"]) == len(api.service.regions.regions)
    assert "geometry" not in body["regions"][0]
    oblasts = (await api.client.get("/api/v1/regions", params={"level": "oblast"})).json()
    assert len(oblasts["regions"]) == 27
    assert all(r["level"] == "oblast" for r in oblasts["regions"])

    r = await api.client.get(f"/api/v1/regions/{LVIV_OBLAST}")
    assert r.status_code == 200
    lviv = r.json()
    assert lviv["name"] == "Lvivska" and lviv["names"]["uk"] == "Львівська"
    assert lviv["chain"] == [LVIV_OBLAST] and LVIV_RAION in lviv["children"]
    assert lviv["geometry"]["type"] in ("Polygon", "MultiPolygon")
    bare = (await api.client.get(f"/api/v1/regions/{LVIV_OBLAST}",
                                 params={"geometry": "false"})).json()
    assert "geometry" not in bare
    hromada = (await api.client.get(f"/api/v1/regions/{LVIV_HROMADA}")).json()
    assert hromada["chain"] == [LVIV_HROMADA, LVIV_RAION, LVIV_OBLAST]
    assert hromada["children"] == []

    r = await api.client.get("/api/v1/regions/UA-nowhere")
    assert r.status_code == 404 and "UA-nowhere" in r.json()["detail"]

    r = await api.client.get("/api/v1/regions/locate", params={"lat": LVIV[0], "lon": LVIV[1]})
    assert [x["id"] for x in r.json()["chain"]] == [LVIV_HROMADA, LVIV_RAION, LVIV_OBLAST]
    r = await api.client.get("/api/v1/regions/locate", params={"lat": 0, "lon": 0})
    assert r.status_code == 404
    r = await api.client.get("/api/v1/regions/locate", params={"lat": 0})
    assert r.status_code == 422


async def test_tracks_are_geojson_footprints(api: Api) -> None:
    assert (await api.client.get("/api/v1/tracks/active")).json() == {
        "type": "FeatureCollection", "features": [], "mode": "actual", "notice": None}
    await api.post(detection("D1", 1, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    body = (await api.client.get("/api/v1/tracks/active")).json()
    assert body["type"] == "FeatureCollection"
    (feature,) = body["features"]
    assert feature["type"] == "Feature" and feature["id"] == "D1"
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    ring = feature["geometry"]["coordinates"][0]
    if feature["geometry"]["type"] == "MultiPolygon":
        ring = ring[0]
    assert len(ring) > 3 and ring[0] == ring[-1]
    lon, lat = ring[0]
    assert 20 < lon < 45 and 40 < lat < 55
    props = feature["properties"]
    assert props["weapon"] == "shahed-136" and props["object"] == "drone"
    assert props["heading_deg"] == 230 and props["regions"] > 0
    assert props["position"]["lat"] == pytest.approx(NEAR_KHARKIV[0], abs=0.05)
    await api.post(event("track_end", 2, track="D1", reason="intercepted"))
    assert (await api.client.get("/api/v1/tracks/active")).json()["features"] == []


async def test_levels(api: Api) -> None:
    assert (await api.client.get("/api/v1/levels")).json()["levels"] == []
    r = await api.post(event("threat_level", 1, regions=[LVIV_RAION], level=2,
                             operator="duty-officer"), role="operator")
    assert r.status_code == 202
    levels = (await api.client.get("/api/v1/levels")).json()["levels"]
    leaves = sorted(api.service.regions.leaves_under(LVIV_RAION))
    assert levels == [{"region": leaf, "level": 2} for leaf in leaves]


async def test_health_ready_metrics(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ready", "seq": 0}
    await api.post(detection("D1", 1, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    r = await api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("tocsin_events_accepted_total 1.0", "tocsin_events_duplicate_total 0.0",
                 "tocsin_events_rejected_total 0.0",
                 'tocsin_transitions_total{type="alert_started"}',
                 "tocsin_decision_seconds_count 1.0", "tocsin_stream_clients 0.0",
                 f"tocsin_log_seq {float(await api.seq())}",
                 "tocsin_webhook_deliveries_total"):
        assert name in text, name


async def test_openapi_lists_every_endpoint(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    assert doc["info"]["title"] == "tocsin"
    paths = doc["paths"]
    expected = {
        "/api/v1/events": {"post"}, "/api/v1/alerts/active": {"get"}, "/api/v1/alerts": {"get"},
        "/api/v1/regions": {"get"}, "/api/v1/regions/{region_id}": {"get"},
        "/api/v1/regions/locate": {"get"}, "/api/v1/tracks/active": {"get"},
        "/api/v1/levels": {"get"}, "/api/v1/stream": {"get"}, "/healthz": {"get"},
        "/readyz": {"get"}, "/metrics": {"get"}, "/api/v1/keys": {"get", "post"},
        "/api/v1/keys/{key_id}": {"delete"}, "/api/v1/subscriptions": {"get", "post"},
        "/api/v1/subscriptions/{sub_id}": {"delete"},
        "/api/v1/subscriptions/{sub_id}/deliveries": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), path
    assert "text/event-stream" in paths["/api/v1/stream"]["get"]["responses"]["200"]["content"]
    docs = await api.client.get("/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text
