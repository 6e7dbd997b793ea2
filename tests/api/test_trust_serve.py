"""Sensor trust against a real `tocsin serve` process, keys made with `tocsin keys create`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers
from tests.api.helpers import NEAR_KHARKIV
from tests.crash.helpers import Server
from tocsin.model import format_time, parse_time
from tocsin.store import open_log

pytestmark = pytest.mark.serial


def when(ahead_s: float = 0.0) -> str:
    return format_time(datetime.now(UTC) + timedelta(seconds=ahead_s))


def drone(source: str, eid: str, track: str, ahead_s: float = 0.0) -> dict[str, Any]:
    return {"id": eid, "type": "detection", "time": when(ahead_s - 0.2), "source": source,
            "track": track, "object": "drone", "weapon": "shahed-136",
            "position": {"lat": NEAR_KHARKIV[0], "lon": NEAR_KHARKIV[1]}, "heading_deg": 230}


def test_trust_over_a_real_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = servers.run_cli("keys", "create", "--data-dir", str(data), "--role", "sensor",
                           "--name", "radar-site", "--source", "radar-1", "--source", "radar-2")
    assert done.returncode == 0, done.stderr
    assert "sources: radar-site, radar-1, radar-2" in done.stderr
    site = {"Authorization": f"Bearer {done.stdout.strip()}"}
    other = {"Authorization": "Bearer " + servers.create_key(
        "sensor", "--data-dir", str(data), name="radar-9")}
    listed = servers.run_cli("keys", "list", "--data-dir", str(data)).stdout
    assert "radar-1,radar-2" in listed
    server = Server(data, log_path=tmp_path / "serve.log").start()
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            def post(body: Any, headers: dict[str, str]) -> httpx.Response:
                return client.post("/api/v1/events", json=body, headers=headers)

            r = post(drone("radar-1", "r1-1", "T1"), site)
            assert r.status_code == 202, r.text
            assert r.json()["accepted"][0]["transitions"] > 0
            def active() -> set[tuple[str, str, str]]:
                alerts = client.get("/api/v1/alerts/active").json()["alerts"]
                return {(a["region"], a["alert_type"], a["started_at"]) for a in alerts}

            before = active()
            assert before

            # squatting radar-1's next id from another key
            r = post(drone("radar-1", "r1-2", "T-squat"), other)
            assert r.status_code == 403 and "'radar-1'" in r.json()["detail"]
            # another sensor ending radar-1's track
            end = {"id": "x", "type": "track_end", "time": when(-0.2), "source": "radar-9",
                   "track": "T1", "reason": "intercepted"}
            assert post(end, other).status_code == 403
            # a future impact outside every region: logged, ends nothing
            boom = {"id": "b", "type": "impact", "time": when(299), "source": "radar-9",
                    "position": {"lat": 0.0, "lon": 0.0}, "kind": "explosion"}
            assert post(boom, other).status_code == 202
            assert active() >= before  # no alert ended
            # the same id, another body
            r = post(dict(drone("radar-1", "r1-1", "T1"), heading_deg=10), site)
            assert r.status_code == 409
            assert r.json()["logged_digest"] != r.json()["submitted_digest"]
            # hostile input
            text = json.dumps(drone("radar-1", "r1-3", "T1")).replace(
                f'"lat": {NEAR_KHARKIV[0]}', '"lat": ' + "7" * 400)
            r = client.post("/api/v1/events", content=text, headers={
                **site, "content-type": "application/json"})
            assert r.status_code == 422, r.text
            r = client.get("/api/v1/alerts", params={"since": "0001-01-01T00:00:00+01:00"})
            assert r.status_code == 422
            checked_at = datetime.now(UTC)
        assert server.stop() == 0
    finally:
        server.kill()
    log = open_log(data)
    try:
        entries = list(log.read())
    finally:
        log.close()
    for e in entries:
        if e.kind == "transition":
            assert parse_time(e.obj()["time"]) <= checked_at, e.body
    (impact,) = [e for e in entries if e.event_id == "b"]
    assert impact.obj() == boom and impact.key_name == "radar-9"
