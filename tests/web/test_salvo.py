"""Calm under a salvo: every hromada changing state in one batch, measured in Chromium.

Each batch goes through the page's own stream handler (the function each SSE message reaches),
with the finest level on the map, so every one of 1,769 polygons is restyled: every hromada
raised to `alert`, then to `imminent`, then ended, then raised as a `pre_alert` (a dotted
pattern, the dearest fill to paint) and ended again. The Long Tasks API reports any
main-thread task over 50 ms.

Goals, checked: no main-thread task over 100 ms, and the new state painted (the frame that
shows it has been rendered and the alerts list redrawn) within 200 ms of the batch arriving.
Both are checked on the median of the rounds: a long task's duration is wall-clock time, and on
a shared 2-core machine the OS may preempt a 40 ms task past 100 ms now and then; a page that
really misses the goal misses it in most rounds. Every round's figures are printed
(docs/performance.md has them).
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from tests.web.conftest import Page, Server

pytestmark = [pytest.mark.browser, pytest.mark.serial]

LONG_TASK_MS = 100
REPAINT_MS = 200
ROUNDS = ["alert", "imminent", "end", "pre_alert", "end"]

MEASURE = """async (severity) => {
  const long = [];
  const obs = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) long.push(e.duration); });
  obs.observe({ type: "longtask" });
  const hromadas = [...tocsin.state.regions.values()].filter((r) => r.level === "hromada");
  const seq0 = tocsin.state.lastSeq + 1;
  const time = new Date().toISOString();
  const end = severity === "end";
  const batch = hromadas.map((r, i) => end
    ? { seq: seq0 + i, type: "alert_ended", region: r.id, alert_type: "air_raid", time }
    : { seq: seq0 + i, type: "alert_started", region: r.id, alert_type: "air_raid", severity,
        time, causes: ["salvo"], eta_s: 300 });
  const want = end ? "none" : severity;
  const groups = () => document.querySelectorAll("#alerts-list .alert-group").length;
  // A message posted from an animation frame is handled once that frame has been rendered:
  // the first frame whose callbacks find the new state on the map (in the list) tells when
  // the map (the list) was on screen.
  const after = () => new Promise((ok) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => ok(performance.now());
    ch.port2.postMessage(0);
  });
  let map = null;
  let list = null;
  const t0 = performance.now();
  tocsin.ingest(batch);
  await new Promise((ok) => {
    const check = () => {
      if (!map && document.querySelectorAll(`path[data-state="${want}"]`).length >= hromadas.length)
        map = after();
      if (!list && (groups() > 0) !== end) list = after();
      if (map && list) ok(); else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
  const [tMap, tList] = await Promise.all([map, list]);
  await new Promise((ok) => setTimeout(ok, 300));  // let late long tasks be reported
  obs.disconnect();
  return { n: hromadas.length, map: tMap - t0, list: tList - t0, ms: Math.max(tMap, tList) - t0,
           long, groups: groups(), summary: document.getElementById("summary").textContent };
}"""


def hromadas_shown(p: Page) -> Any:
    page = p.open()
    page.click("[data-level=hromada]")
    page.wait_for_function("() => tocsin.mapview.shownLevel() === 'hromada'")
    page.wait_for_timeout(500)
    page.set_default_timeout(20_000)
    return page


def test_every_hromada_at_once_repaints_within_budget(
    server: Server, page_factory: Any
) -> None:
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800})
    page = hromadas_shown(p)
    results = []
    for severity in ROUNDS:
        r = page.evaluate(MEASURE, severity)
        results.append((severity, r))
        print(f"salvo {severity}: {r['n']} hromadas, map on screen in {r['map']:.0f} ms, "
              f"list in {r['list']:.0f} ms; long tasks (ms): {[round(x) for x in r['long']]}")
        assert r["n"] == 1769
        if severity == "end":
            assert r["groups"] == 0
        else:
            assert r["groups"] == 27  # the list is grouped by oblast, not 1,769 rows
            assert "1769" in r["summary"].replace(",", "").replace("\u00a0", "")
        if severity == "alert":
            p.shot()
    longest = statistics.median(max(r["long"], default=0.0) for _, r in results)
    median = statistics.median(r["ms"] for _, r in results)
    print(f"salvo: median repaint {median:.0f} ms, median longest task {longest:.0f} ms")
    assert longest <= LONG_TASK_MS, f"the longest main-thread task took {longest:.0f} ms"
    assert median <= REPAINT_MS, f"median repaint {median:.0f} ms"


def test_the_alerts_list_stays_usable_under_a_salvo(server: Server, page_factory: Any) -> None:
    """An oblast's group opened by the duty officer stays open while the salvo redraws the list,
    and lists its hromadas only while open."""
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800})
    page = hromadas_shown(p)
    page.evaluate(MEASURE, "alert")
    first = page.locator("#alerts-list details").first
    first.locator("summary").click()
    page.wait_for_function(
        "() => document.querySelector('#alerts-list details ul.leaves').children.length > 0")
    rows = page.locator("#alerts-list ul.leaves li").count()
    assert rows > 1
    page.evaluate(MEASURE, "imminent")
    assert page.locator("#alerts-list details[open]").count() == 1
    assert page.locator("#alerts-list ul.leaves li").count() == rows
    # the closed groups carry no rows
    closed = page.locator("#alerts-list details:not([open]) ul.leaves li").count()
    assert closed == 0
    page.evaluate(MEASURE, "end")
