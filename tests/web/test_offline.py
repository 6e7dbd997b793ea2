"""Installable and resilient: the manifest, and the service worker that opens the page with its
map when the server cannot be reached, under an offline banner; back online, it goes live."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import Page, Server

pytestmark = [pytest.mark.browser, pytest.mark.serial]

KEPT = """async () => {
  await navigator.serviceWorker.ready;
  const c = await caches.open("tocsin-v1");
  for (let i = 0; i < 200; i++) {  // the page stores the region layers after drawing them
    const kept = (await c.keys()).map((r) => new URL(r.url).pathname + new URL(r.url).search);
    if (kept.filter((u) => u.startsWith("/api/v1/map/regions")).length >= 3) return kept;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return (await c.keys()).map((r) => r.url);
}"""


@pytest.mark.parametrize("lang,viewport", [("en", {"width": 1280, "height": 800}),
                                           ("uk", {"width": 390, "height": 844})])
def test_page_opens_offline_with_the_map_and_says_so(
    server: Server, page_factory: Any, lang: str, viewport: dict[str, int]
) -> None:
    p: Page = page_factory(server, viewport=viewport, service_workers="allow")
    page = p.page
    page.goto(f"{server.base}/?lang={lang}")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert page.locator("#offline-banner").is_hidden()
    manifest = page.evaluate(
        "() => fetch(document.querySelector('link[rel=manifest]').href).then((r) => r.json())")
    assert manifest["display"] == "standalone"
    # the worker is in control and has kept the shell and every region level
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=20_000)
    kept = page.evaluate(KEPT)
    assert "/" in kept and "/static/vendor/leaflet/leaflet.js" in kept and "/api/v1/info" in kept

    p.context.set_offline(True)
    page.reload()
    page.wait_for_selector("#offline-banner:not([hidden])", timeout=20_000)
    page.wait_for_selector("path[data-region]", timeout=20_000)
    assert page.locator("path[data-region]").count() == 27  # the oblasts, from the kept copy
    assert page.locator("body.offline").count() == 1
    text = page.locator("#offline-banner").inner_text()
    assert ("server" in text) if lang == "en" else ("сервер" in text)
    assert page.locator("#stream-banner").is_hidden()  # one banner, not two
    p.shot(f"-{lang}-offline")

    p.context.set_offline(False)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector("#offline-banner", state="hidden", timeout=20_000)
    page.wait_for_function("() => document.getElementById('conn').dataset.state === 'live'",
                           timeout=30_000)
