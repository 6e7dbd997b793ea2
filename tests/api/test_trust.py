"""Sensor trust through the HTTP API: time, identity, ownership, hostile input.

Each test is a case an attacker or a broken sensor tried: a key feeding the system must not be
able to stop sirens early, squat another sensor's ids, end or steer another sensor's tracks,
forge siren reports, or crash the server with a number, a date or nesting.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.api.helpers import LVIV, LVIV_HROMADA, NEAR_KHARKIV, Api, FakeClock, event
from tocsin.model import format_time, parse_time
from tocsin.trust import MAX_DEPTH

pytestmark = pytest.mark.anyio


def stamp(clock: FakeClock, ahead_s: float = 0.0) -> str:
    return format_time(clock.now + timedelta(seconds=ahead_s))


def key(api: Api, role: str, name: str, *sources: str) -> dict[str, str]:
    token, _ = api.service.admin.create_key(role, name, sources)
    return {"Authorization": f"Bearer {token}"}


def fix(clock: FakeClock, source: str, eid: str, track: str, ahead_s: float = 0.0,
        **kw: Any) -> dict[str, Any]:
    lat, lon = NEAR_KHARKIV
    return {"id": eid, "type": "detection", "time": stamp(clock, ahead_s), "source": source,
            "track": track, "object": "drone", "weapon": "shahed-136",
            "position": {"lat": lat, "lon": lon}, "heading_deg": 230, **kw}


async def send(api: Api, body: Any, headers: dict[str, str]) -> Any:
    return await api.client.post("/api/v1/events", json=body, headers=headers)


def logged_transitions(api: Api) -> list[dict[str, Any]]:
    return [e.obj() for e in api.service.log.read() if e.kind == "transition"]


# --- time -------------------------------------------------------------------------------------


async def test_a_future_dated_impact_ends_no_alert_early(api: Api, clock: FakeClock) -> None:
    radar1 = key(api, "sensor", "radar-1")
    radar2 = key(api, "sensor", "radar-2")
    clock.advance(10)
    r = await send(api, fix(clock, "radar-1", "r1-1", "T1"), radar1)
    assert r.status_code == 202 and r.json()["accepted"][0]["transitions"] > 0
    active = (await api.client.get("/api/v1/alerts/active")).json()["alerts"]
    assert active
    # timers are due within the next 299 s: an engine that followed the sensor's clock would
    # have run them (tracks expired, holds lapsed, alerts ended) on the next event
    deadline = api.service.ledger.engine.next_deadline()
    assert deadline is not None and deadline < clock.now + timedelta(seconds=299)

    future = {"id": "r2-1", "type": "impact", "time": stamp(clock, 299), "source": "radar-2",
              "position": {"lat": 0.0, "lon": 0.0}, "kind": "explosion"}
    r = await send(api, future, radar2)
    assert r.status_code == 202, r.text
    (accepted,) = r.json()["accepted"]
    assert accepted["transitions"] == 0
    assert any("after the server clock" in n for n in accepted["notes"])
    assert (await api.client.get("/api/v1/alerts/active")).json()["alerts"] == active
    for t in logged_transitions(api):
        assert parse_time(t["time"]) <= clock.now, t
        assert t["type"] != "alert_ended"
    # the log keeps what the sensor sent, its own time included
    (entry,) = [e for e in api.service.log.read() if e.event_id == "r2-1"]
    assert entry.obj() == future


async def test_a_future_fix_does_not_freeze_the_track(api: Api, clock: FakeClock) -> None:
    radar1 = key(api, "sensor", "radar-1")
    clock.advance(10)
    assert (await send(api, fix(clock, "radar-1", "a", "T1"), radar1)).status_code == 202
    r = await send(api, fix(clock, "radar-1", "b", "T1", ahead_s=290), radar1)
    assert r.status_code == 202
    clock.advance(1)
    r = await send(api, fix(clock, "radar-1", "c", "T1"), radar1)
    assert r.status_code == 202
    assert not any("older than the last fix" in n for n in r.json()["accepted"][0]["notes"])
    track = api.service.ledger.engine.tracks["T1"]
    assert track.t_fix == int((clock.now - parse_time("1970-01-01T00:00:00Z"))
                              / timedelta(microseconds=1))


async def test_alerts_after_a_future_event_start_now(api: Api, clock: FakeClock) -> None:
    clock.advance(10)
    radar1 = key(api, "sensor", "radar-1")
    ahead = fix(clock, "radar-1", "a", "T9", ahead_s=250)
    r = await send(api, ahead, radar1)
    assert r.status_code == 202 and r.json()["accepted"][0]["transitions"] > 0
    ops = key(api, "operator", "ops-1")
    raise_ = dict(event("operator_alert", 0, regions=[LVIV_HROMADA], alert_type="air_raid",
                        action="raise", operator="duty"), time=stamp(clock), source="ops-1")
    assert (await send(api, raise_, ops)).status_code == 202
    for alert in (await api.client.get("/api/v1/alerts/active")).json()["alerts"]:
        assert parse_time(alert["started_at"]) <= clock.now, alert


async def test_beyond_the_allowance_is_refused(api: Api, clock: FakeClock) -> None:
    radar1 = key(api, "sensor", "radar-1")
    r = await send(api, fix(clock, "radar-1", "a", "T1", ahead_s=301), radar1)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "time"
    assert "300 s" in r.json()["errors"][0]["reason"]
    assert [e.source for e in api.service.log.read()] == ["tocsin"]  # the server's tick only


# --- identity ---------------------------------------------------------------------------------


async def test_a_key_may_send_only_as_its_sources(api: Api, clock: FakeClock) -> None:
    both = key(api, "sensor", "radar-site", "radar-1", "radar-2")
    for source in ("radar-site", "radar-1", "radar-2"):
        r = await send(api, fix(clock, source, f"{source}-1", f"T-{source}"), both)
        assert r.status_code == 202, r.text
    before = await api.seq()
    r = await send(api, fix(clock, "radar-3", "x", "T3"), both)
    assert r.status_code == 403
    assert "'radar-3'" in r.json()["detail"]
    # in a batch, one foreign source refuses the whole batch
    r = await send(api, [fix(clock, "radar-1", "ok", "T4"), fix(clock, "radar-3", "y", "T5")],
                   both)
    assert r.status_code == 403 and "[1].source" in r.json()["detail"]
    assert await api.seq() == before


async def test_id_squatting_is_refused(api: Api, clock: FakeClock) -> None:
    radar1 = key(api, "sensor", "radar-1")
    squatter = key(api, "sensor", "radar-2")
    clock.advance(5)
    r = await send(api, fix(clock, "radar-1", "r1-0500", "T-squat"), squatter)
    assert r.status_code == 403
    assert not any(e.event_id == "r1-0500" for e in api.service.log.read())
    r = await send(api, fix(clock, "radar-1", "r1-0500", "T-real"), radar1)
    assert r.status_code == 202
    (accepted,) = r.json()["accepted"]
    assert accepted["duplicate"] is False and accepted["transitions"] > 0
    assert "T-real" in api.service.ledger.engine.tracks


async def test_same_id_other_body_is_a_conflict(api: Api, clock: FakeClock) -> None:
    radar1 = key(api, "sensor", "radar-1")
    clock.advance(5)
    first = fix(clock, "radar-1", "r1-7", "T7")
    assert (await send(api, first, radar1)).status_code == 202
    before = await api.seq()
    changed = dict(first, position={"lat": 49.0, "lon": 36.0})
    r = await send(api, changed, radar1)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["source"] == "radar-1" and body["id"] == "r1-7"
    assert body["logged_digest"].startswith("sha256:")
    assert body["submitted_digest"].startswith("sha256:")
    assert body["logged_digest"] != body["submitted_digest"]
    assert await api.seq() == before
    # in one batch, too
    other = fix(clock, "radar-1", "r1-8", "T8")
    r = await send(api, [other, dict(other, heading_deg=10)], radar1)
    assert r.status_code == 409 and await api.seq() == before
    # the same body, keys in another order, is the idempotent repeat it always was
    reordered = dict(reversed(list(first.items())))
    r = await send(api, reordered, radar1)
    assert r.status_code == 202
    assert r.json()["accepted"][0]["duplicate"] is True
    assert await api.seq() == before


# --- ownership --------------------------------------------------------------------------------


async def test_another_sensor_cannot_end_or_refix_a_track(api: Api, clock: FakeClock) -> None:
    radar1 = key(api, "sensor", "radar-1")
    radar2 = key(api, "sensor", "radar-2")
    clock.advance(5)
    assert (await send(api, fix(clock, "radar-1", "a", "T1"), radar1)).status_code == 202
    before = await api.seq()
    end = {"id": "e", "type": "track_end", "time": stamp(clock), "source": "radar-2",
           "track": "T1", "reason": "intercepted"}
    r = await send(api, end, radar2)
    assert r.status_code == 403 and "'T1'" in r.json()["detail"]
    r = await send(api, fix(clock, "radar-2", "f", "T1"), radar2)
    assert r.status_code == 403 and "fusion" in r.json()["detail"]
    boom = {"id": "i", "type": "impact", "time": stamp(clock), "source": "radar-2",
            "track": "T1", "kind": "explosion", "position": {"lat": LVIV[0], "lon": LVIV[1]}}
    assert (await send(api, boom, radar2)).status_code == 403
    assert await api.seq() == before
    assert "T1" in api.service.ledger.engine.tracks
    # the impact itself is never lost: without the claim on the track it is logged
    del boom["track"]
    assert (await send(api, boom, radar2)).status_code == 202
    # the owner ends its own track
    r = await send(api, dict(end, id="e1", source="radar-1"), radar1)
    assert r.status_code == 202 and "T1" not in api.service.ledger.engine.tracks


async def test_a_fusion_key_joins_a_track(api: Api, clock: FakeClock) -> None:
    radar1 = key(api, "sensor", "radar-1")
    fusion = key(api, "fusion", "fusion-1")
    clock.advance(5)
    assert (await send(api, fix(clock, "radar-1", "a", "T1"), radar1)).status_code == 202
    clock.advance(1)
    r = await send(api, fix(clock, "fusion-1", "f1", "T1"), fusion)
    assert r.status_code == 202, r.text
    assert api.service.ledger.engine.track_sources("T1") == {"radar-1", "fusion-1"}
    # a fusion key is still held to its own sources
    assert (await send(api, fix(clock, "radar-1", "f2", "T1"), fusion)).status_code == 403


async def test_operators_end_any_track_under_their_name(api: Api, clock: FakeClock) -> None:
    radar1 = key(api, "sensor", "radar-1")
    ops = key(api, "operator", "duty-desk")
    clock.advance(5)
    assert (await send(api, fix(clock, "radar-1", "a", "T1"), radar1)).status_code == 202
    end = {"id": "e", "type": "track_end", "time": stamp(clock), "source": "duty-desk",
           "track": "T1", "reason": "lost"}
    r = await send(api, end, ops)
    assert r.status_code == 202, r.text
    assert "T1" not in api.service.ledger.engine.tracks
    (entry,) = [e for e in api.service.log.read() if e.event_id == "e"]
    assert entry.key_name == "duty-desk"
    # an operator still cannot report what sensors report
    assert (await send(api, fix(clock, "duty-desk", "x", "T2"), ops)).status_code == 403


async def test_siren_reports_only_from_the_gateway_or_an_admin(
    api: Api, clock: FakeClock
) -> None:
    radar1 = key(api, "sensor", "radar-1")
    clock.advance(5)
    report = {"id": "s1", "type": "siren_status", "time": stamp(clock), "source": "radar-1",
              "siren": "lviv-001", "region": LVIV_HROMADA, "status": "ok"}
    r = await send(api, report, radar1)
    assert r.status_code == 403 and "siren" in r.json()["detail"]
    fusion = key(api, "fusion", "radar-1b")
    assert (await send(api, dict(report, source="radar-1b"), fusion)).status_code == 403
    r = await send(api, dict(report, source="sirens"), api.auth("admin"))
    assert r.status_code == 202


# --- bad input is a 4xx, never a 500 ----------------------------------------------------------


async def raw_post(api: Api, text: str, role: str = "admin") -> Any:
    return await api.client.post("/api/v1/events", content=text.encode(),
                                 headers={**api.auth(role), "content-type": "application/json"})


async def test_huge_numbers_are_refused(api: Api, clock: FakeClock) -> None:
    base = fix(clock, "radar-1", "n", "TN")
    for literal in ("1" * 400, "1" * 5000, "0." + "1" * 400, "1e400", "-1e400"):
        text = json.dumps(base).replace('"lat": 50.25', f'"lat": {literal}')
        assert literal in text
        r = await raw_post(api, text)
        assert r.status_code == 422, (literal[:10], r.text[:200])
        assert "number" in r.json()["errors"][0]["reason"]
    # within the literal bound, a big integer is range-checked without converting it
    text = json.dumps(base).replace('"lat": 50.25', '"lat": ' + "9" * 60)
    r = await raw_post(api, text)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "position.lat"
    assert (await api.seq()) == 0


async def test_times_outside_1970_to_9999_are_refused(api: Api, clock: FakeClock) -> None:
    for when in ("0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z",
                 "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z"):
        r = await send(api, dict(fix(clock, "radar-1", "t", "TT"), time=when), api.auth("admin"))
        assert r.status_code == 422, (when, r.text)
        assert r.json()["errors"][0]["field"] == "time"
    for path in ("/api/v1/alerts", "/api/v1/log/sths"):
        for param in ("since", "until") if path.endswith("alerts") else ("since",):
            r = await api.client.get(path, params={param: "0001-01-01T00:00:00+01:00"})
            assert r.status_code == 422, (path, param, r.text)
            assert r.json()["errors"][0]["field"] == param


async def test_nesting_is_bounded(api: Api, clock: FakeClock) -> None:
    clock.advance(5)

    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    for depth in (900, 100_000, MAX_DEPTH):  # the event object itself is one level
        text = json.dumps(fix(clock, "radar-1", f"d{depth}", "TD"))[:-1]
        r = await raw_post(api, text + f', "ext": {nested(depth)}}}')
        assert r.status_code == 422, (depth, r.text[:200])
        assert f"deeper than {MAX_DEPTH}" in r.json()["errors"][0]["reason"]
    text = json.dumps(fix(clock, "radar-1", "ok", "TD"))[:-1]
    r = await raw_post(api, text + f', "ext": {nested(MAX_DEPTH - 1)}}}')
    assert r.status_code == 202, r.text


async def test_heading_360_is_north(api: Api, clock: FakeClock) -> None:
    clock.advance(5)
    r = await send(api, fix(clock, "radar-1", "h", "TH", heading_deg=360), api.auth("admin"))
    assert r.status_code == 202, r.text
    assert api.service.ledger.engine.tracks["TH"].heading_deg == 0.0
    r = await send(api, fix(clock, "radar-1", "h2", "TH2", heading_deg=360.01),
                   api.auth("admin"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "heading_deg"
