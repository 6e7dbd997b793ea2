"""'Where I am' in Chromium: geolocation (or a tap) picks the hromada, its state in large
type, a notification when it changes (once enabled), remembered on the device only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import Page, Server
from tests.web.test_dashboard import drone

pytestmark = [pytest.mark.browser, pytest.mark.serial]

KREMENCHUK = (49.07, 33.42)
LVIV = (49.84, 24.03)
# records what the page shows through the real Notification API
RECORD = """(() => { const Real = window.Notification; window.__notes = [];
  window.Notification = class extends Real { constructor(title, opts) {
    super(title, opts); window.__notes.push(title); } };
  Object.defineProperty(window.Notification, 'permission', {get: () => Real.permission});
  window.Notification.requestPermission = (...a) => Real.requestPermission(...a); })()"""


POLTAVA = (49.59, 34.55)


@pytest.mark.parametrize(("lang", "viewport", "where"), [
    ("uk", {"width": 390, "height": 844}, KREMENCHUK),
    ("en", {"width": 1280, "height": 800}, POLTAVA)])
def test_geolocation_picks_the_hromada_and_a_change_notifies(
    server: Server, page_factory: Any, lang: str, viewport: dict[str, int],
    where: tuple[float, float],
) -> None:
    lat, lon = where
    p: Page = page_factory(server, viewport=viewport, locale=lang,
                           geolocation={"latitude": lat, "longitude": lon},
                           permissions=["geolocation", "notifications"])
    p.context.add_init_script(RECORD)
    page = p.open()
    page.click(f"[data-lang={lang}]")
    assert page.locator("#here").is_hidden()
    page.click("#here-btn")
    page.wait_for_selector("#here:not([hidden])")
    name = server.get("/api/v1/regions/locate", lat=lat, lon=lon)["chain"][0]["names"][lang]
    assert page.inner_text("#here-name") == name
    calm = "Тривоги немає" if lang == "uk" else "No alert"
    assert page.inner_text("#here-state") == calm
    assert page.get_attribute("#here", "data-state") == "none"
    assert page.inner_text("#here-symbol") == "✓"  # not by colour alone
    page.check("#here-notify")
    p.shot(f"-{lang}-calm")

    server.post_event("sensor", drone(lat, lon))
    page.wait_for_function("() => document.getElementById('here').dataset.state !== 'none'",
                           timeout=5000)
    assert page.inner_text("#here-state") != calm and page.inner_text("#here-symbol") == "⚠"
    page.wait_for_function("() => window.__notes.length >= 1", timeout=3000)
    assert page.evaluate("() => window.__notes[0]").startswith(name)
    assert page.evaluate("() => tocsin.here.notified") >= 1
    p.shot(f"-{lang}-alert")

    # remembered on this device: a reload shows the same place, the server was not told
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.inner_text("#here-name") == name
    assert page.evaluate("() => localStorage.getItem('tocsin.here')") is not None
    page.click("#here-forget")
    assert page.locator("#here").is_hidden()
    assert page.evaluate("() => localStorage.getItem('tocsin.here')") is None


def test_without_geolocation_a_tap_picks_the_place(server: Server, page_factory: Any) -> None:
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800}, locale="en")
    page = p.open()  # geolocation not granted: the page asks for a tap instead
    page.click("#here-btn")
    page.wait_for_selector("#here-hint:not([hidden])")
    page.wait_for_function("() => document.getElementById('map').classList.contains('picking')",
                           timeout=10_000)
    xy = page.evaluate(
        """([lat, lon]) => { const p = tocsin.map.latLngToContainerPoint([lat, lon]);
                             const r = document.getElementById('map').getBoundingClientRect();
                             return [r.left + p.x, r.top + p.y]; }""", list(LVIV))
    page.mouse.click(xy[0], xy[1])
    page.wait_for_selector("#here:not([hidden])")
    chain = server.get("/api/v1/regions/locate", lat=LVIV[0], lon=LVIV[1])["chain"]
    assert page.inner_text("#here-name") == chain[0]["names"]["en"]
    p.shot()
