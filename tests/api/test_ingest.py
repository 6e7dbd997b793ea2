"""POST /api/v1/events: durable 202s, idempotence, all-or-nothing batches, field-level 422s."""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    KHARKIV,
    KHARKIV_OBLAST,
    LVIV_OBLAST,
    NEAR_KHARKIV,
    Api,
    FakeClock,
    at,
    detection,
    event,
    sample_event,
)

pytestmark = pytest.mark.anyio


def drone(track: str = "D1", t: float = 1.0) -> dict[str, object]:
    return detection(track, t, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230,
                     speed_kmh=180)


async def test_detection_is_logged_and_alerts_follow(api: Api) -> None:
    ev = drone()
    r = await api.post(ev, role="sensor")
    assert r.status_code == 202, r.text
    (acc,) = r.json()["accepted"]
    assert set(acc) == {"id", "seq", "duplicate", "transitions", "notes"}
    assert acc["id"] == ev["id"] and acc["duplicate"] is False and acc["transitions"] > 0
    # 202 means durable: the event is in the log, under the name of the key that sent it
    entry = next(api.service.log.read(acc["seq"], acc["seq"]))
    assert entry.kind == "event" and entry.event_id == ev["id"]
    assert entry.key_name == "sensor-key"
    assert await api.seq() == acc["seq"] + acc["transitions"]

    everything = (await api.client.get("/api/v1/alerts/active")).json()["alerts"]
    assert len(everything) == acc["transitions"]
    assert all(a["causes"] == ["D1"] and a["cause_seq"] == acc["seq"] for a in everything)

    kharkiv = set(api.service.regions.leaves_under(KHARKIV_OBLAST))
    r = await api.client.get("/api/v1/alerts/active", params={"region": KHARKIV_OBLAST})
    in_oblast = r.json()["alerts"]
    assert in_oblast and {a["region"] for a in in_oblast} <= kharkiv
    assert len(in_oblast) == sum(1 for a in everything if a["region"] in kharkiv)
    assert len(in_oblast) < len(everything)
    r = await api.client.get("/api/v1/alerts/active", params={"region": LVIV_OBLAST})
    assert r.json()["alerts"] == []

    lat, lon = KHARKIV
    r = await api.client.get("/api/v1/alerts/active", params={"lat": lat, "lon": lon})
    (here,) = r.json()["alerts"]
    assert here["region"] == api.service.regions.locate(lat, lon)
    assert here["alert_type"] == "air_raid" and here["severity"] == "alert"


async def test_active_alert_filters_are_checked(api: Api) -> None:
    r = await api.client.get("/api/v1/alerts/active", params={"region": "UA-nowhere"})
    assert r.status_code == 404
    r = await api.client.get("/api/v1/alerts/active", params={"lat": 50.0})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lon"
    r = await api.client.get("/api/v1/alerts/active", params={"lat": 91, "lon": 30})
    assert r.status_code == 422


async def test_duplicates_are_acknowledged_not_reapplied(api: Api, clock: FakeClock) -> None:
    clock.advance(5)  # the events below are not ahead of the server
    ev = drone()
    first = (await api.post(ev)).json()["accepted"][0]
    seq = await api.seq()
    again = await api.post(ev)
    assert again.status_code == 202
    (dup,) = again.json()["accepted"]
    assert dup == {"id": ev["id"], "seq": first["seq"], "duplicate": True, "transitions": 0,
                   "notes": []}
    assert await api.seq() == seq
    # the same event twice in one batch: logged once
    other = drone("D2", 2.0)
    r = await api.post([other, other])
    a, b = r.json()["accepted"]
    assert a["duplicate"] is False and b == {**a, "duplicate": True, "transitions": 0}
    metrics = (await api.client.get("/metrics")).text
    assert "tocsin_events_duplicate_total 2.0" in metrics


async def test_a_bad_event_rejects_the_whole_batch(api: Api) -> None:
    await api.post(drone())  # the first write also logs the server's first tick
    before = await api.seq()
    good = drone("D2", 2.0)
    no_position = detection("D3", 2.0, 0, 0)
    del no_position["position"]
    bad_lat = detection("D4", 2.0, 95.0, 30.0)
    bad_type = event("launch", 2.0)
    r = await api.post([good, no_position, drone("D5", 3.0), bad_lat, bad_type])
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"] == "invalid input"
    fields = [e["field"] for e in body["errors"]]
    assert fields == ["[1].position", "[3].position.lat", "[4].type"]
    assert all(e["reason"] for e in body["errors"])
    assert await api.seq() == before
    assert api.service.log.find_event(good["source"], good["id"]) is None
    assert "tocsin_events_rejected_total 5.0" in (await api.client.get("/metrics")).text


async def test_body_that_is_not_json_or_empty(api: Api) -> None:
    headers = {**api.auth("sensor"), "Content-Type": "application/json"}
    r = await api.client.post("/api/v1/events", content=b'{"id": "x", ', headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "(body)"
    r = await api.client.post("/api/v1/events", content=b"[]", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "(body)"
    r = await api.client.post("/api/v1/events", content=b"[1, 2]", headers=headers)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["[0].(event)", "[1].(event)"]
    assert await api.seq() == 0


async def test_ticks_belong_to_the_server(api: Api) -> None:
    r = await api.post(event("tick", 5.0))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "type", "reason": "tick events are the server's own"}]
    r = await api.post([drone(), event("tick", 5.0)])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "[1].type"
    assert await api.seq() == 0


async def test_operator_alert_on_unknown_region(api: Api) -> None:
    ev = sample_event("operator_alert")
    ev["regions"] = ["UA00000000000000000"]
    r = await api.post(ev, role="operator")
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["regions[0]"]
    assert "UA00000000000000000" in r.json()["errors"][0]["reason"]


async def test_events_too_far_ahead_are_refused(api: Api) -> None:
    await api.post(drone())
    r = await api.post(drone("D9", 3600.0))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "time"


async def test_extension_fields_are_kept(api: Api) -> None:
    ev = {**drone(), "x_radar": {"band": "S", "quality": 0.8}}
    r = await api.post(ev, role="sensor")
    assert r.status_code == 202
    seq = r.json()["accepted"][0]["seq"]
    assert next(api.service.log.read(seq, seq)).obj()["x_radar"] == {"band": "S", "quality": 0.8}


async def test_every_event_type_is_accepted(api: Api) -> None:
    for etype in ("detection", "track_end", "impact", "operator_alert", "threat_level",
                  "siren_status"):
        r = await api.post(sample_event(etype))
        assert r.status_code == 202, (etype, r.text)
    assert at(1.0) < at(2.0)
