"""The dashboard in a real browser against a real `tocsin serve`: live repaint, the operator
console, languages, the exercise banner, and not one request beyond the server."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from shapely.geometry import shape

from tests.web.conftest import Page, Server
from tocsin.model import format_time

pytestmark = [pytest.mark.browser, pytest.mark.serial]

KHARKIV = (49.99, 36.23)
LVIV = (49.84, 24.03)
UZHHOROD = (48.62, 22.29)
LVIV_OBLAST = "UA46000000000026241"
CALM_FILL = "#f4f6f8"


def path_of(region: str) -> str:
    return f'path[data-region="{region}"]'


def state_of(page: Any, region: str) -> dict[str, str]:
    result: dict[str, str] = page.evaluate(
        """(sel) => { const el = document.querySelector(sel);
                      return el ? {...el.dataset, fill: el.getAttribute('fill')} : {}; }""",
        path_of(region),
    )
    return result


def click_region(page: Any, server: Server, region: str) -> None:
    """A real mouse click on a point inside the region, as a person would click it."""
    geometry = server.get(f"/api/v1/regions/{region}")["geometry"]
    point = shapely.point_on_surface(shape(geometry))
    xy = page.evaluate(
        """([lat, lon]) => { const p = tocsin.map.latLngToContainerPoint([lat, lon]);
                             const r = document.getElementById('map').getBoundingClientRect();
                             return [r.left + p.x, r.top + p.y]; }""",
        [point.y, point.x],
    )
    page.mouse.click(xy[0], xy[1])


def drone(lat: float, lon: float) -> dict[str, Any]:
    """A drone detection now, heading west."""
    return {
        "id": f"web-{uuid.uuid4().hex}", "type": "detection",
        "time": format_time(datetime.now(UTC)), "source": "web-test-radar",
        "track": f"W{uuid.uuid4().hex[:6]}", "object": "drone",
        "weapon": "shahed-136", "position": {"lat": lat, "lon": lon},
        "heading_deg": 270, "speed_kmh": 180, "phase": "cruise",
    }


def oblast_of(server: Server, lat: float, lon: float) -> str:
    chain = server.get("/api/v1/regions/locate", lat=lat, lon=lon)["chain"]
    oblast: str = chain[-1]["id"]
    return oblast


def test_page_draws_the_regions_from_this_server_only(server: Server, page_factory: Any) -> None:
    p: Page = page_factory(server, viewport={"width": 1400, "height": 900})
    page = p.open()
    assert page.locator("path[data-region]").count() == 27  # oblasts at the starting zoom
    assert page.locator("#conn").get_attribute("data-state") == "live"
    assert page.locator("#stream-banner").is_hidden()
    assert page.locator("#mode-banner").is_hidden()  # a real (non-drill) server
    p.shot()
    # the log tab: the signed tree head is shown with its check, or "not available"
    page.click("[data-tab=log]")
    page.wait_for_selector("#sth-status")
    assert page.get_attribute("#sth-status", "data-status") in {
        "valid", "none", "nokey", "unsupported", "error"}
    assert page.get_attribute("#sth-status", "data-status") != "invalid"
    p.shot("-log")
    assert p.offsite() == []


def test_detection_repaints_its_region_within_a_second(
    server: Server, page_factory: Any
) -> None:
    p: Page = page_factory(server, viewport={"width": 1400, "height": 900})
    page = p.open()
    oblast = oblast_of(server, *KHARKIV)
    before = state_of(page, oblast)
    assert before["state"] == "none" and before["fill"] == CALM_FILL
    server.post_event("sensor", drone(*KHARKIV))
    accepted = time.monotonic()
    page.wait_for_function(
        "(sel) => { const el = document.querySelector(sel);"
        " return el && el.dataset.state !== 'none'; }",
        arg=path_of(oblast), timeout=1000,
    )
    took = time.monotonic() - accepted
    after = state_of(page, oblast)
    # the drone is inside the oblast: imminent there, and the oblast is only partly covered
    assert after["state"] == "imminent", after
    assert after["alertType"] == "air_raid"
    assert after["coverage"] == "partial"
    assert after["fill"] != CALM_FILL
    assert took < 1.0
    page.wait_for_selector(".track", state="attached", timeout=5000)  # listed, with a footprint
    p.shot()


def test_operator_raises_and_clears_through_the_console(
    server: Server, page_factory: Any
) -> None:
    p: Page = page_factory(server, viewport={"width": 1400, "height": 900})
    page = p.open()
    page.click("[data-tab=operator]")

    # a wrong key is refused, and says so
    page.fill("#op-key", "tk_not-a-real-key")
    page.click("#op-key-use")
    page.wait_for_selector("#op-key-status.error")
    assert "not accepted" in page.inner_text("#op-key-status")

    page.fill("#op-key", server.keys["operator"])
    page.click("#op-key-use")
    page.wait_for_selector("#op-key-status.ok")
    assert page.input_value("#op-name") == "operator-web-test"  # defaults to the key's name
    page.fill("#op-name", "duty-lviv")

    click_region(page, server, LVIV_OBLAST)
    page.wait_for_selector(f'#op-selection button[data-region="{LVIV_OBLAST}"]')
    assert state_of(page, LVIV_OBLAST)["selected"] == "true"
    page.select_option("#op-type", "air_raid")
    page.click("#op-review")
    page.wait_for_selector("#confirm:not([hidden])")
    summary = page.inner_text("#confirm-summary")
    assert "Lvivska" in summary and "RAISE" in summary and "duty-lviv" in summary
    assert '"action": "raise"' in page.inner_text("#confirm-json")
    p.shot("-confirm")
    page.click("#confirm-send")
    page.wait_for_selector("#op-result.ok")
    page.wait_for_function(
        "(sel) => document.querySelector(sel).dataset.state === 'alert'",
        arg=path_of(LVIV_OBLAST), timeout=2000,
    )
    assert state_of(page, LVIV_OBLAST)["coverage"] == "full"
    active = server.get("/api/v1/alerts/active", region=LVIV_OBLAST)["alerts"]
    assert active and all(a["causes"] == ["operator:duty-lviv"] for a in active)
    assert {a["alert_type"] for a in active} == {"air_raid"}
    p.shot("-raised")

    page.check('input[name="op-action"][value="clear"]')
    page.click("#op-review")
    page.wait_for_selector("#confirm:not([hidden])")
    assert "CLEAR" in page.inner_text("#confirm-summary")
    page.click("#confirm-send")
    page.wait_for_selector("#op-result.ok")
    page.wait_for_function(
        "(sel) => document.querySelector(sel).dataset.state === 'none'",
        arg=path_of(LVIV_OBLAST), timeout=2000,
    )
    assert server.get("/api/v1/alerts/active", region=LVIV_OBLAST)["alerts"] == []


def test_a_key_without_the_role_gets_a_clear_refusal(
    server: Server, page_factory: Any
) -> None:
    p: Page = page_factory(server, viewport={"width": 1400, "height": 900})
    page = p.open()
    page.click("[data-tab=operator]")
    page.fill("#op-key", server.keys["sensor"])
    page.click("#op-key-use")
    page.wait_for_selector("#op-key-status.error")  # warned before anything is sent
    click_region(page, server, LVIV_OBLAST)
    page.click("#op-review")
    page.click("#confirm-send")
    page.wait_for_selector("#op-result.error")
    assert "may not" in page.inner_text("#op-result")  # the 403, in words


def test_silent_impact_is_marked_in_red(server: Server, page_factory: Any) -> None:
    p: Page = page_factory(server, viewport={"width": 1400, "height": 900})
    page = p.open()
    assert page.locator(".leaflet-marker-icon.incident-icon.silent").count() == 0
    server.post_event("sensor", {
        "id": f"web-{uuid.uuid4().hex}", "type": "impact", "time": format_time(datetime.now(UTC)),
        "source": "web-test-police", "position": {"lat": UZHHOROD[0], "lon": UZHHOROD[1]},
        "kind": "explosion",
    })
    page.wait_for_selector(".leaflet-marker-icon.incident-icon.silent", timeout=2000)
    assert page.inner_text("#count-incidents") == "1"
    page.click("[data-tab=incidents]")
    item = page.locator("#incidents-list .incident.silent_impact")
    assert "Silent impact" in item.inner_text() and "web-test-police" in item.inner_text()
    p.shot()


def test_language_switch(server: Server, page_factory: Any) -> None:
    p: Page = page_factory(server, viewport={"width": 1400, "height": 900})
    page = p.open()
    page.click("[data-lang=en]")
    assert page.inner_text("[data-tab=alerts]").startswith("Alerts")
    assert page.get_attribute("html", "lang") == "en"
    page.click("[data-lang=uk]")
    assert page.inner_text("[data-tab=alerts]").startswith("Тривоги")
    assert page.inner_text("[data-tab=operator]") == "Оператор"
    assert page.get_attribute("html", "lang") == "uk"
    assert "Повітряна тривога" in page.inner_text(".legend")
    p.shot("-uk")
    page.click("[data-lang=en]")
    assert "Air raid" in page.inner_text(".legend")


def test_phone_layout(server: Server, page_factory: Any) -> None:
    p: Page = page_factory(server, viewport={"width": 390, "height": 844}, is_mobile=True,
                           has_touch=True)
    page = p.open()
    assert page.locator("#panel").is_hidden()  # the panel starts folded away on a phone
    p.shot("-map")
    page.click("#panel-toggle")
    page.wait_for_selector("#panel", state="visible")
    box = page.locator("#panel").bounding_box()
    assert box is not None and box["width"] <= 390
    p.shot("-panel")


def test_stream_outage_shows_a_banner_and_resumes_without_a_gap(
    tmp_path: Path, page_factory: Any
) -> None:
    first = Server(tmp_path / "data")
    try:
        p: Page = page_factory(first, viewport={"width": 1400, "height": 900})
        page = p.open()
        oblast = oblast_of(first, *KHARKIV)
        first.post_event("sensor", drone(*KHARKIV))  # the page now holds a Last-Event-ID
        page.wait_for_function("(sel) => document.querySelector(sel).dataset.state !== 'none'",
                               arg=path_of(oblast), timeout=2000)
        first.stop()
        page.wait_for_selector("#stream-banner", state="visible", timeout=10_000)
        p.shot("-down")
        second = Server(tmp_path / "data", port=first.port)
    finally:
        first.stop()
    try:
        # sent before the page is back: it must arrive through the resumed stream's backlog
        lviv = oblast_of(second, *LVIV)
        second.post_event("sensor", drone(*LVIV))
        page.wait_for_selector("#stream-banner", state="hidden", timeout=15_000)
        page.wait_for_function("(sel) => document.querySelector(sel).dataset.state !== 'none'",
                               arg=path_of(lviv), timeout=2000)
        # EventSource itself resumed, sending the seq of the last transition it had
        assert any(last for _, last in p.resumed_streams()), [r.url for r in p.stream_requests]
    finally:
        second.stop()


def test_demo_is_marked_as_an_exercise(demo_server: Server, page_factory: Any) -> None:
    assert httpx.get(demo_server.base + "/api/v1/info").json()["mode"] == "exercise"
    p: Page = page_factory(demo_server, viewport={"width": 1400, "height": 900})
    page = p.open()
    banner = page.locator("#mode-banner")
    assert banner.is_visible()
    assert "НАВЧАННЯ" in banner.inner_text() and "EXERCISE" in banner.inner_text()
    # the scenario's first event (a standing threat level) is played at once
    page.wait_for_selector('path[data-threat="2"]', timeout=10_000)
    p.shot()
