"""The region panel's week and the operator's siren layer, in Chromium against a real server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests import servers
from tests.web.conftest import Page, Server
from tocsin.model import format_time

pytestmark = [pytest.mark.browser, pytest.mark.serial]

LVIV_OBLAST = "UA46000000000026241"
LVIV_HROMADA = "UA46060250000025047"


def now() -> str:
    return format_time(datetime.now(UTC))


def operator_alert(action: str, region: str) -> dict[str, Any]:
    return {"id": f"web-{uuid.uuid4().hex}", "type": "operator_alert", "time": now(),
            "source": "operator-web-test", "regions": [region], "alert_type": "air_raid",
            "action": action, "operator": "duty-web"}


def admin_key(server: Server) -> str:
    if "admin" not in server.keys:
        out = servers.run_cli("keys", "create", "--data-dir", str(server.data_dir), "--role",
                              "admin", "--name", "admin-web-test", check=True)
        server.keys["admin"] = out.stdout.strip().splitlines()[-1]
    return server.keys["admin"]


def test_region_panel_shows_the_week_with_alert_hours(server: Server, page_factory: Any) -> None:
    server.post_event("operator", operator_alert("raise", LVIV_HROMADA))
    server.post_event("operator", operator_alert("clear", LVIV_HROMADA))
    server.post_event("operator", operator_alert("raise", LVIV_HROMADA))
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800})
    page = p.open()
    page.fill("#search", "Lviv")
    page.wait_for_selector("#search-results li[data-region]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#tab-region:not([hidden]) #region-hours")
    assert page.locator("#region-name").inner_text()
    assert page.locator("ol.days > li").count() == 7
    hours = float(page.locator("#region-hours").get_attribute("data-hours") or "nan")
    assert hours >= 0
    assert page.locator(".timeline.week .lane .seg").count() >= 1
    assert "alert-hours" in page.locator("#region-hours").inner_text()
    p.shot()
    server.post_event("operator", operator_alert("clear", LVIV_HROMADA))


def test_siren_layer_shows_state_ack_and_faults(server: Server, page_factory: Any) -> None:
    key = admin_key(server)
    auth = {"Authorization": f"Bearer {key}"}
    sirens = [{"id": "web-s1", "lat": 49.84, "lon": 24.03, "name": "Lviv Rynok"},
              {"id": "web-s2", "lat": 49.99, "lon": 36.23, "name": "Kharkiv Centre"}]
    r = httpx.post(server.base + "/api/v1/sirens", json=sirens, headers=auth, timeout=10)
    assert r.status_code == 201, r.text
    region = r.json()["sirens"][0]["region"]
    fault = {"id": f"web-{uuid.uuid4().hex}", "type": "siren_status", "time": now(),
             "source": "sirens", "siren": "web-s1", "region": region, "status": "fault",
             "reason": "no acknowledgement"}
    r = httpx.post(server.base + "/api/v1/events", json=fault, headers=auth, timeout=10)
    assert r.status_code == 202, r.text

    p: Page = page_factory(server, viewport={"width": 1280, "height": 800})
    page = p.open()
    page.click("[data-tab=operator]")
    page.check("#sirens-show")
    page.wait_for_selector('.leaflet-marker-pane .siren-mark[data-status="fault"]')
    marks = page.locator(".leaflet-marker-pane .siren-mark")
    assert marks.count() == 2
    # the state is a glyph and words, not a colour alone
    assert page.locator('.leaflet-marker-pane [data-siren="web-s1"]').inner_text() == "!"
    body = page.locator("#sirens-body").inner_text()
    assert "fault: 1" in body and "Lviv Rynok" in body and "no acknowledgement" in body
    assert "last acknowledged" in body
    p.shot()
    # the choice is remembered on the device
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector('.leaflet-marker-pane .siren-mark[data-status="fault"]')
