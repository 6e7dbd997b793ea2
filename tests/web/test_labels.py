"""Region names on the map and the search box: label points computed at build time, shown by
zoom level in Chromium, and search by Ukrainian or English name in the usual spellings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from shapely.geometry import Point

from tests.web.conftest import Page, Server
from tocsin.geo import RegionSet
from tocsin.web.labels import LABELS_PATH, labels_json

KREMENCHUK_HROMADA = "UA53020110000092487"


def test_committed_labels_match_the_bundled_regions(ua: RegionSet) -> None:
    # scripts/build_labels.py must be re-run when the bundled regions change
    assert LABELS_PATH.read_bytes() == labels_json(ua)


def test_every_region_has_a_label_inside_it(ua: RegionSet) -> None:
    data = json.loads(LABELS_PATH.read_text())
    assert data["levels"] == ["oblast", "raion", "hromada"]
    rows = {row[0]: row for row in data["labels"]}
    assert set(rows) == {r.id for r in ua.regions.values() if not r.geometry.is_empty}
    for rid, (_id, level, lat, lon, uk, en) in rows.items():
        region = ua.regions[rid]
        assert level == region.level and uk and en
        assert region.geometry.buffer(1e-4).contains(Point(lon, lat)), rid


def labels_on_map(page: Any) -> list[str]:
    names: list[str] = page.eval_on_selector_all(".region-label",
                                                 "els => els.map(e => e.textContent)")
    return names


@pytest.mark.browser
@pytest.mark.serial
@pytest.mark.parametrize(("lang", "viewport"), [
    ("en", {"width": 1280, "height": 800}), ("uk", {"width": 1280, "height": 800}),
    ("en", {"width": 390, "height": 844}), ("uk", {"width": 390, "height": 844})])
def test_names_appear_by_zoom_level(server: Server, page_factory: Any, lang: str,
                                    viewport: dict[str, int]) -> None:
    p: Page = page_factory(server, viewport=viewport, locale=lang)
    page = p.open()
    page.click(f"[data-lang={lang}]")
    oblasts = labels_on_map(page)
    kharkiv = "Kharkivska" if lang == "en" else "Харківська"
    if viewport["width"] > 1000:
        assert len(oblasts) >= 20 and kharkiv in oblasts, oblasts
    assert "Kremenchutska" not in oblasts and "Кременчуцька" not in oblasts
    tag = f"-{lang}-{viewport['width']}"
    p.shot(f"{tag}-oblasts")
    # zoom in on Kremenchuk: hromada names now, the oblast names gone
    page.evaluate("() => tocsin.map.setView([49.07, 33.42], 10, {animate: false})")
    kremenchuk = "Kremenchutska" if lang == "en" else "Кременчуцька"
    page.wait_for_function("(n) => [...document.querySelectorAll('.region-label')]"
                           ".some(e => e.textContent === n)", arg=kremenchuk, timeout=5000)
    names = labels_on_map(page)
    assert kharkiv not in names and len(names) <= 300
    assert page.locator(".region-label.hromada").count() == len(names)
    p.shot(f"{tag}-hromadas")


SEARCHES = [
    ("Kremenchuk", "Kremenchut"), ("Кременчук", "Kremenchut"), ("kremenchug", "Kremenchut"),
    ("Kharkiv", "Kharkivska"), ("Kharkov", "Kharkivska"), ("Харків", "Kharkivska"),
    ("Odessa", "Odeska"), ("Одеса", "Odeska"), ("Lvov", "Lvivska"), ("Львів", "Lvivska"),
    ("Kiev", "Kyiv"), ("Zhytomyr", "Zhytomyrska"), ("Житомир", "Zhytomyrska"),
]


@pytest.mark.browser
@pytest.mark.serial
def test_search_finds_regions_in_either_language(server: Server, page_factory: Any) -> None:
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800})
    page = p.open()
    for query, expect in SEARCHES:
        page.fill("#search", query)
        page.wait_for_selector("#search-results li[data-region]", timeout=2000)
        found = page.eval_on_selector_all(
            "#search-results li[data-region]", "els => els.map(e => e.textContent)")
        assert found and found[0].startswith(expect), (query, found)
    assert page.evaluate("() => tocsin.search('zz')") == []
    page.fill("#search", "qqqqxx")
    page.wait_for_selector("#search-results li.none")
    # typing and Enter on a town: the map zooms there and the region panel opens
    page.fill("#search", "Kremenchuk")
    page.keyboard.press("ArrowDown")  # the raion comes first, then its hromada
    page.keyboard.press("Enter")
    page.wait_for_selector("#tab-region:not([hidden])")
    assert "Kremenchutska" in page.inner_text("#region-body")
    page.wait_for_function("() => tocsin.map.getZoom() >= 9", timeout=5000)
    p.shot()


@pytest.mark.browser
@pytest.mark.serial
def test_search_box_on_a_phone_in_ukrainian(server: Server, page_factory: Any) -> None:
    p: Page = page_factory(server, viewport={"width": 390, "height": 844}, locale="uk")
    page = p.open()
    page.click("[data-lang=uk]")
    page.fill("#search", "Кременчук")
    page.wait_for_selector("#search-results li[data-region]")
    assert page.inner_text("#search-results li[data-region]").startswith("Кременчу")
    p.shot("-list")
    page.keyboard.press("Enter")  # the raion: its bounds fill the phone's map
    page.wait_for_function("() => tocsin.map.getZoom() >= 8", timeout=5000)
    assert "Кременчу" in page.inner_text("#region-body")
    p.shot()


@pytest.mark.browser
@pytest.mark.serial
@pytest.mark.parametrize(("param", "locale", "want"), [("uk", "en-GB", "Харківська"),
                                                       ("en", "uk-UA", "Kharkivska")])
def test_lang_parameter_overrides_the_browser(server: Server, page_factory: Any, param: str,
                                              locale: str, want: str) -> None:
    p: Page = page_factory(server, viewport={"width": 1280, "height": 800}, locale=locale)
    page = p.page
    page.goto(f"{server.base}/?lang={param}")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert want in labels_on_map(page)
    assert page.get_attribute("html", "lang") == param
