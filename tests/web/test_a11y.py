"""Accessibility: axe-core finds no serious or critical violation on any tab in either
language, and the operator console works from the keyboard alone.

axe-core is vendored for the tests only (tests/web/fixtures/axe-core/SOURCE); the page never
loads it. Its colour-contrast rule holds text to 4.5:1 (3:1 for large text).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import Page, Server
from tocsin.model import format_time

pytestmark = [pytest.mark.browser, pytest.mark.serial]

AXE = Path(__file__).parent / "fixtures" / "axe-core" / "axe.min.js"
TABS = ["alerts", "tracks", "incidents", "region", "log", "operator"]
LVIV_HROMADA = "UA46060250000025047"

RUN_AXE = """async () => {
  const r = await axe.run(document, { resultTypes: ["violations"] });
  return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.slice(0, 5)
                     .map((n) => n.target.join(" ") + " :: " + n.failureSummary) }));
}"""


# Text against the first opaque background behind it, for what axe leaves "incomplete" (text
# over overlapping boxes): WCAG's relative luminance, 4.5:1, or 3:1 for large text.
CONTRAST = """() => {
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = (c) => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const parse = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const bgOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const st = getComputedStyle(e);
      if (st.backgroundImage !== "none") return null;  // stripes: judged by eye
      const c = parse(st.backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] >= 0.85)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  const scope = "header *, #panel *, #stream-banner, #offline-banner, .legend *, .here *, "
    + ".search *";
  for (const el of document.querySelectorAll(scope)) {
    if (!el.getClientRects().length || el.closest("[hidden]")) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(el);
    if (st.visibility === "hidden") continue;
    const bg = bgOf(el);
    if (!bg) continue;
    const fg = parse(st.color).slice(0, 3);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(st.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      const what = `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}.${el.className}`;
      bad.push(`${what} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
    }
  }
  return bad;
}"""


def raise_alert(server: Server) -> None:
    server.post_event("operator", {
        "id": f"web-{uuid.uuid4().hex}", "type": "operator_alert",
        "time": format_time(datetime.now(UTC)), "source": "operator-web-test",
        "regions": [LVIV_HROMADA], "alert_type": "air_raid", "action": "raise",
        "operator": "duty-web"})


@pytest.mark.parametrize("lang", ["uk", "en"])
def test_no_serious_or_critical_violation_on_any_tab(
    server: Server, page_factory: Any, lang: str
) -> None:
    raise_alert(server)
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800})
    page = p.page
    page.goto(f"{server.base}/?lang={lang}")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert page.evaluate("() => document.documentElement.lang") == lang
    page.add_script_tag(path=str(AXE))
    found = {}
    for tab in TABS:
        if tab == "region":  # a region picked from the alerts list
            page.click("[data-tab=alerts]")
            page.click("#alerts-list .alert-group strong")
            page.wait_for_selector("#region-hours")
        page.click(f"[data-tab={tab}]")
        if tab == "operator":
            page.check("#sirens-show")
        page.wait_for_timeout(300)
        violations = page.evaluate(RUN_AXE)
        if violations:
            found[tab] = violations
        low = page.evaluate(CONTRAST)
        if low:
            found[f"{tab}: contrast"] = low
    assert not found, found
    p.shot(f"-{lang}")


def press_until(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until `selector` has the focus (as a keyboard user would)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)",
                         selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_operator_console_by_keyboard_alone(server: Server, page_factory: Any) -> None:
    """Only Tab and Enter move and act (typing fills the fields)."""
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800})
    page = p.open()
    # the tab bar is one tab stop; the arrows, Home and End move within it and select
    press_until(page, "[role=tab][aria-selected=true]")
    assert page.locator("[role=tab][tabindex='0']").count() == 1
    page.keyboard.press("ArrowLeft")  # wraps round to the last tab, the console
    assert page.locator("#tab-operator").is_visible()
    assert page.evaluate("() => document.activeElement.dataset.tab") == "operator"
    page.keyboard.press("Home")
    assert page.locator("#tab-alerts").is_visible()
    page.keyboard.press("ArrowRight")
    assert page.locator("#tab-tracks").is_visible()
    assert page.locator("#tab-alerts").is_hidden()
    page.keyboard.press("End")
    assert page.locator("#tab-operator").is_visible()
    press_until(page, "#op-key")
    page.keyboard.type(server.keys["operator"])
    page.keyboard.press("Enter")  # the key form submits
    page.wait_for_selector("#op-key-status.ok")
    press_until(page, "#op-name")
    page.keyboard.type("duty-keyboard")
    # regions are picked with the search box: in the console a pick selects the region
    press_until(page, "#search")
    page.keyboard.type("Lvivska")
    page.wait_for_selector("#search-results li[data-region]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#op-selection .chip")
    press_until(page, "#op-review")
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm:not([hidden])")
    assert page.evaluate("() => document.activeElement.id") == "confirm-send"
    p.shot("-confirm")
    page.keyboard.press("Enter")
    page.wait_for_selector("#op-result.ok")
    region = page.locator("#op-selection .chip").get_attribute("data-region")
    # the whole oblast is under alert: its group in the alerts list says so
    page.wait_for_selector(f'#alerts-list .alert-group[data-root="{region}"]', state="attached")
    server.post_event("operator", {
        "id": f"web-{uuid.uuid4().hex}", "type": "operator_alert",
        "time": format_time(datetime.now(UTC)), "source": "operator-web-test",
        "regions": [region], "alert_type": "air_raid", "action": "clear",
        "operator": "duty-web"})
