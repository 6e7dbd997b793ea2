"""Smaller edges: bodies without a Content-Type, GeoJSON media type, sirens over the admin API,
`--version`, `serve` on a taken port, odd siren acknowledgements logged."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests import servers
from tests.api.helpers import KHARKIV, KHARKIV_OBLAST, Api, wait_until
from tests.servers import run_cli
from tocsin import __version__
from tocsin.outputs.sirens import parse_broker_url, topic

Start = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.mark.anyio
async def test_json_bodies_without_a_content_type_are_read_as_json(start: Start) -> None:
    async with start(allow_private_webhooks=False) as api:
        admin = api.auth("admin")
        # what `curl -d` sends: a form content type, or none at all
        for n, kind in enumerate(("application/x-www-form-urlencoded", None)):
            headers = {**admin, **({"Content-Type": kind} if kind else {})}
            r = await api.client.post("/api/v1/keys", headers=headers,
                                      content=json.dumps({"role": "sensor", "name": f"r{n}"}))
            assert r.status_code == 201, r.text
            r = await api.client.post(
                "/api/v1/subscriptions", headers=headers,
                content=json.dumps({"url": "https://hooks.tocsin.invalid/h",
                                    "regions": [KHARKIV_OBLAST]}))
            assert r.status_code == 201, r.text
        r = await api.client.post("/api/v1/keys", headers=admin, content=b"role=sensor")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "(body)"


@pytest.mark.anyio
async def test_tracks_are_geojson(start: Start) -> None:
    async with start() as api:
        r = await api.client.get("/api/v1/tracks/active")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/geo+json"
        assert r.json()["type"] == "FeatureCollection"


@pytest.mark.anyio
async def test_sirens_over_the_admin_api(start: Start) -> None:
    async with start() as api:
        admin, operator = api.auth("admin"), api.auth("operator")
        sirens = [{"id": "k-1", "lat": KHARKIV[0], "lon": KHARKIV[1], "name": "Kharkiv 1"},
                  {"id": "k-2", "lat": KHARKIV[0], "lon": KHARKIV[1]}]
        r = await api.client.post("/api/v1/sirens", json=sirens, headers=operator)
        assert r.status_code == 403
        bad = [*sirens, {"id": "bad id", "lat": 1, "lon": 1}, {"id": "sea", "lat": 0, "lon": 0},
               {"id": "k-1", "lat": 50, "lon": 36}]
        r = await api.client.post("/api/v1/sirens", json=bad, headers=admin)
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["[2].id", "[3].lat", "[4].id"]
        assert (await api.client.get("/api/v1/sirens")).json()["sirens"] == []  # all or none
        r = await api.client.post("/api/v1/sirens", json=sirens, headers=admin)
        assert r.status_code == 201
        listed = (await api.client.get("/api/v1/sirens")).json()["sirens"]
        assert [(s["id"], s["name"], s["status"]) for s in listed] == [
            ("k-1", "Kharkiv 1", "unknown"), ("k-2", "k-2", "unknown")]
        assert listed[0]["region"] == api.service.regions.locate(*KHARKIV)
        r = await api.client.delete("/api/v1/sirens/k-2", headers=admin)
        assert r.status_code == 200
        r = await api.client.delete("/api/v1/sirens/k-2", headers=admin)
        assert r.status_code == 404
        assert [s["id"] for s in (await api.client.get("/api/v1/sirens")).json()["sirens"]] \
            == ["k-1"]


def test_version() -> None:
    done = run_cli("--version", timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"tocsin {__version__}"


def test_serve_on_a_taken_port_fails_without_claiming_to_serve(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tocsin", "serve", "--port", str(port),
                               "--data-dir", str(tmp_path / "data")],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "serving on" not in done.stderr + done.stdout
    assert "address already in use" in (done.stderr + done.stdout).lower()


@pytest.mark.mqtt
@pytest.mark.anyio
async def test_odd_acknowledgements_are_logged(start: Start, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    broker = servers.mqtt_broker()
    sid = f"odd{secrets.token_hex(3)}"
    caplog.set_level(logging.INFO, logger="tocsin.sirens")
    async with start(mqtt_url=broker) as api:
        r = await api.client.post("/api/v1/sirens", headers=api.auth("admin"),
                                  json=[{"id": sid, "lat": KHARKIV[0], "lon": KHARKIV[1]}])
        assert r.status_code == 201
        output = api.app.state.sirens_output  # runs on the leader only: this node leads
        await wait_until(lambda: output.current is not None
                         and sid in output.current.sirens and output.current.connected.is_set(),
                         what="the gateway to load the siren", timeout=30)
        async with parse_broker_url(broker).client(f"odd-{sid}") as siren:
            await siren.publish(topic(sid, "ack"), b"not json", qos=1)
            await siren.publish(topic(sid, "ack"), json.dumps({"id": "made-up"}), qos=1)
            await siren.publish(topic(f"{sid}-unknown", "ack"), json.dumps({"id": "x"}), qos=1)
            await wait_until(lambda: sum(sid in r.getMessage() for r in caplog.records) >= 3,
                             what="log lines for the odd acks", timeout=30)
            for kind in ("cmd", "status"):
                await siren.publish(topic(sid, kind), b"", qos=1, retain=True)
        await asyncio.sleep(0)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "not a JSON object" in text and "'made-up'" in text
    assert "not in the registry" in text
