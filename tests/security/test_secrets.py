"""Keys never appear in logs or listings; webhook signatures do not verify with a wrong secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import (
    KHARKIV_OBLAST,
    NEAR_KHARKIV,
    FakeClock,
    detection,
    running,
    wait_until,
)
from tests.api.test_webhooks import Receiver
from tests.crash.helpers import Server, create_key, run_cli
from tocsin.outputs.webhooks import sign

KEY = re.compile(r"tk_[A-Za-z0-9_\-]{20,}")


@pytest.mark.serial
def test_keys_never_reach_the_server_log_or_listings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin = create_key(data, "admin", "ops")
    sensor = create_key(data, "sensor", "radar-1")
    log_path = tmp_path / "serve.log"
    server = Server(data, log_path=log_path, TOCSIN_RATE_LIMIT="1000",
                    TOCSIN_RATE_BURST="1000").start()
    keys = {admin, sensor}
    try:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            good = {"Authorization": f"Bearer {sensor}"}
            ev = {**detection("K1", 0, *NEAR_KHARKIV), "time": _now()}
            assert c.post("/api/v1/events", json=ev, headers=good).status_code == 202
            # refused and failing requests, which are the ones servers tend to log
            assert c.post("/api/v1/events", json={"id": 1}, headers=good).status_code == 422
            assert c.post("/api/v1/events", content=b"{", headers=good).status_code == 422
            assert c.get("/api/v1/keys", headers=good).status_code == 403
            unknown = "tk_" + "Z" * 43
            keys.add(unknown)
            assert c.get("/api/v1/whoami",
                         headers={"Authorization": f"Bearer {unknown}"}).status_code == 401
            made = c.post("/api/v1/keys", json={"role": "reader", "name": "app"},
                          headers={"Authorization": f"Bearer {admin}"})
            assert made.status_code == 201
            keys.add(made.json()["key"])
            listed = c.get("/api/v1/keys", headers={"Authorization": f"Bearer {admin}"}).text
            assert not any(k in listed for k in keys)
            assert c.delete("/api/v1/keys/app",
                            headers={"Authorization": f"Bearer {admin}"}).status_code == 200
            # a key in the query string is not how keys are sent, but must not be echoed either
            c.get("/api/v1/whoami", params={"key": sensor})
        assert server.stop() == 0
    finally:
        server.kill()
    text = log_path.read_text(errors="replace")
    assert "tocsin serving on" in text  # the log was captured
    leaked = [k for k in keys if k in text]
    assert not leaked, "a key appears in the server log"
    # the CLI lists keys without them, and nothing in the data directory holds one in clear
    listing = run_cli("keys", "list", "--data-dir", str(data))
    assert listing.returncode == 0 and "radar-1" in listing.stdout
    assert not KEY.search(listing.stdout + listing.stderr)
    for path in data.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert not any(k.encode() in blob for k in keys), f"a key is stored in clear in {path}"


def test_keys_create_prints_the_key_once_on_stdout_only(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tocsin", "keys", "create", "--data-dir",
                           str(tmp_path), "--role", "reader", "--name", "n"],
                          capture_output=True, text=True, check=True, timeout=60)
    key = done.stdout.strip()
    assert KEY.fullmatch(key)
    assert key not in done.stderr


@pytest.mark.anyio
async def test_in_process_logs_hold_no_key(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(tmp_path / "data", FakeClock()) as api:
        for role in api.keys:
            await api.client.get("/api/v1/whoami", headers=api.auth(role))
            await api.post({"id": "x"}, role=role)
        await api.client.get("/api/v1/levels", headers={"Authorization": "Bearer tk_" + "Q" * 43})
        text = caplog.text
        assert not any(k in text for k in api.keys.values())
        assert "tk_" + "Q" * 43 not in text


# --- webhooks -------------------------------------------------------------------------------------


def verify(secret: str, body: bytes, header: str) -> bool:
    """A receiver's check of `t=<unix>,v1=<hex>`, as the webhook documentation gives it."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    signed = fields.get("t", "").encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_webhook_signatures_fail_with_a_wrong_secret(tmp_path: Path) -> None:
    receiver = Receiver()
    async with running(tmp_path / "data", FakeClock(), allow_private_webhooks=True) as api:
        r = await api.client.post("/api/v1/subscriptions", headers=api.auth("admin"),
                                  json={"url": receiver.url, "regions": [KHARKIV_OBLAST]})
        secret = r.json()["secret"]
        other = (await api.client.post(
            "/api/v1/subscriptions", headers=api.auth("admin"),
            json={"url": "http://h.invalid/", "regions": [KHARKIV_OBLAST]})).json()["secret"]
        assert other != secret
        assert (await api.post(detection("W1", 1, *NEAR_KHARKIV, weapon="shahed-136",
                                         heading_deg=230))).status_code == 202
        await wait_until(lambda: bool(receiver.ok()), what="a webhook delivery")
        got = receiver.ok()[0]
        header = got.headers["X-Tocsin-Signature"]
        assert verify(secret, got.body, header)
        t = int(header.split(",")[0].removeprefix("t="))
        assert header == sign(secret, got.body, t)
        assert not verify(other, got.body, header), "another subscription's secret verifies"
        assert not verify(secret + "x", got.body, header)
        assert not verify("", got.body, header)
        tampered = json.loads(got.body)
        tampered["severity"] = "pre_alert" if tampered.get("severity") != "pre_alert" else "alert"
        assert not verify(secret, json.dumps(tampered).encode(), header)
        assert not verify(secret, got.body + b" ", header)
        assert secret not in got.body.decode() and secret not in str(got.headers)
    receiver.server.shutdown()


def _now() -> str:
    from datetime import UTC, datetime, timedelta

    from tocsin.model import format_time

    return format_time(datetime.now(UTC) - timedelta(milliseconds=200))
