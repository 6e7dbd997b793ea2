"""Screenshots kept as test artifacts (test-artifacts/, not committed): the map under alerts,
the region panel with its week, and the operator console with the siren layer, on a desktop
(1280×800) and a phone (390×844), in Ukrainian and English."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.web.conftest import Page, Server
from tocsin.model import format_time

pytestmark = [pytest.mark.browser, pytest.mark.serial]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LVIV_HROMADA = "UA46060250000025047"


@pytest.mark.parametrize("lang", ["uk", "en"])
@pytest.mark.parametrize("device,viewport", [("desktop", DESKTOP), ("phone", PHONE)])
def test_screens(server: Server, page_factory: Any, lang: str, device: str,
                 viewport: dict[str, int]) -> None:
    if not getattr(server, "_screens_alert", False):
        server.post_event("operator", {
            "id": f"web-{uuid.uuid4().hex}", "type": "operator_alert",
            "time": format_time(datetime.now(UTC)), "source": "operator-web-test",
            "regions": [LVIV_HROMADA], "alert_type": "air_raid", "action": "raise",
            "operator": "duty-web"})
        server._screens_alert = True  # type: ignore[attr-defined]
    p: Page = page_factory(server, viewport=viewport, is_mobile=device == "phone",
                           has_touch=device == "phone")
    page = p.page
    page.goto(f"{server.base}/?lang={lang}")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    shots = [p.shot(f"-{device}-{lang}-map")]
    if device == "phone":
        page.click("#panel-toggle")
    page.click("[data-tab=alerts]")
    page.click("#alerts-list .alert-group strong")
    page.wait_for_selector("#region-hours")
    shots.append(p.shot(f"-{device}-{lang}-region"))
    page.click("[data-tab=operator]")
    page.check("#sirens-show")
    page.wait_for_selector("#sirens-body p")
    shots.append(p.shot(f"-{device}-{lang}-operator"))
    assert all(x.exists() and x.stat().st_size > 10_000 for x in shots)
