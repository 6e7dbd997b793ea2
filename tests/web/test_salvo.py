"""Calm under a salvo: every hromada changing state in one batch, measured in Chromium.

The batch goes through the page's own stream handler (the function each SSE message reaches),
with the finest level on the map, so every one of 1,769 polygons is restyled. The Long Tasks
API reports any main-thread task over 50 ms. The goal is no task over 100 ms and the new
state on the map and in the alerts list within 200 ms of the batch arriving; the test checks
that every hromada and the grouped list show it, and prints the time and the long tasks
(speed is measured, not asserted: docs/performance.md has the figures).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import Page, Server

pytestmark = [pytest.mark.browser, pytest.mark.serial]

MEASURE = """async () => {
  const long = [];
  const obs = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) long.push(e.duration); });
  obs.observe({ type: "longtask" });
  const hromadas = [...tocsin.state.regions.values()].filter((r) => r.level === "hromada");
  const seq0 = tocsin.state.lastSeq + 1;
  const time = new Date().toISOString();
  const batch = hromadas.map((r, i) => ({ seq: seq0 + i, type: "alert_started", region: r.id,
    alert_type: "air_raid", severity: "alert", time, causes: ["salvo"], eta_s: 300 }));
  const t0 = performance.now();
  tocsin.ingest(batch);
  await new Promise((ok) => {
    const check = () => {
      const painted = document.querySelectorAll('path[data-state="alert"]').length;
      if (painted >= hromadas.length) ok(); else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
  const t1 = performance.now();
  await new Promise((ok) => setTimeout(ok, 300));  // let late long tasks be reported
  obs.disconnect();
  return { n: hromadas.length, ms: t1 - t0, long,
           summary: document.getElementById("summary").textContent,
           groups: document.querySelectorAll("#alerts-list .alert-group").length };
}"""


def test_every_hromada_at_once_repaints_and_is_measured(
    server: Server, page_factory: Any
) -> None:
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800})
    page = p.open()
    page.click("[data-level=hromada]")
    page.wait_for_function("() => tocsin.mapview.shownLevel() === 'hromada'")
    page.wait_for_timeout(500)
    result = page.evaluate(MEASURE)
    print(f"salvo: {result['n']} hromadas repainted in {result['ms']:.0f} ms; "
          f"long tasks (ms): {[round(x) for x in result['long']]}")
    assert result["n"] == 1769
    assert result["groups"] == 27  # the list is grouped by oblast, not 1,769 rows
    assert "1769" in result["summary"].replace(",", "").replace("\u00a0", "")
    # The goal (repaint within 200 ms, no task over 100 ms) is measured, not asserted: the
    # figures printed above go into docs/performance.md ("The map under a salvo").
    p.shot()
