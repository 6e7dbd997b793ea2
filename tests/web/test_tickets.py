"""Stream tickets on a real `tocsin serve --private`, over HTTP: a ticket opens the stream
once, within its lifetime, for a reader key; expired, reused, forged and keyless ones don't."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import Page, Server
from tocsin.api.tickets import StreamTickets
from tocsin.store.admin import ApiKey

STREAM = "/api/v1/stream"
TICKET = "/api/v1/stream/ticket"


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("private") / "data", extra=["--private"])
    yield srv
    srv.stop()


def ticket(srv: Server, role: str = "reader") -> str:
    r = httpx.post(srv.base + TICKET, headers={"Authorization": f"Bearer {srv.keys[role]}"},
                   timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expires_in_s"] == 30
    value: str = body["ticket"]
    return value


def open_stream(srv: Server, **params: str) -> tuple[int, str]:
    """Status and the first chunk of a stream request."""
    with httpx.stream("GET", srv.base + STREAM, params=params, timeout=10) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, r.text
        for chunk in r.iter_text():
            return 200, chunk
    return 200, ""


def test_private_stream_needs_a_key_or_a_ticket(private: Server) -> None:
    status, body = open_stream(private)
    assert status == 401 and "reader" in body


def test_a_ticket_opens_the_stream_once(private: Server) -> None:
    t = ticket(private)
    assert t.startswith("st_") and private.keys["reader"] not in t
    status, first = open_stream(private, ticket=t)
    assert status == 200 and "connected" in first
    status, body = open_stream(private, ticket=t)  # reused
    assert status == 401 and "already used" in body


def test_any_stronger_key_gets_a_ticket_and_no_key_gets_none(private: Server) -> None:
    assert open_stream(private, ticket=ticket(private, "operator"))[0] == 200
    r = httpx.post(private.base + TICKET, timeout=10)
    assert r.status_code == 401
    r = httpx.post(private.base + TICKET, headers={"Authorization": "Bearer tk_forged"},
                   timeout=10)
    assert r.status_code == 401
    r = httpx.get(private.base + TICKET, timeout=10)  # a ticket is never handed out by GET
    assert r.status_code == 405


@pytest.mark.parametrize("forged", ["st_" + "A" * 32, "nonsense", "st_" + "x" * 200, ""])
def test_forged_tickets_are_refused(private: Server, forged: str) -> None:
    status, body = open_stream(private, ticket=forged)
    assert status == 401, body


def test_a_ticket_is_only_for_the_stream(private: Server) -> None:
    t = ticket(private)
    r = httpx.get(private.base + "/api/v1/alerts/active", params={"ticket": t}, timeout=10)
    assert r.status_code == 401
    r = httpx.get(private.base + "/api/v1/alerts/active", timeout=10,
                  headers={"Authorization": f"Bearer {t}"})
    assert r.status_code == 401
    assert open_stream(private, ticket=t)[0] == 200  # not used up by those attempts


def test_the_stream_still_takes_a_header_key(private: Server) -> None:
    with httpx.stream("GET", private.base + STREAM, timeout=10,
                      headers={"Authorization": f"Bearer {private.keys['reader']}"}) as r:
        assert r.status_code == 200


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def key(n: int) -> ApiKey:
    return ApiKey(f"k{n}", f"key-{n}", "reader", "2025-01-01T00:00:00Z", None)


def test_tickets_expire() -> None:
    clock = Clock()
    tickets = StreamTickets(ttl_s=30, clock=clock)
    a, b = tickets.issue(key(1)), tickets.issue(key(1))
    assert a and b and a != b
    clock.t += 29.9
    assert tickets.redeem(a) == key(1)
    clock.t += 0.1
    assert tickets.redeem(b) is None  # expired exactly at its ttl
    assert len(tickets) == 0


def test_tickets_are_bounded_per_key_and_in_all() -> None:
    clock = Clock()
    tickets = StreamTickets(limit=10, per_key=3, clock=clock)
    mine = [tickets.issue(key(1)) for _ in range(5)]
    assert len(tickets) == 3  # a key hoarding tickets only evicts its own oldest
    assert [tickets.redeem(t) is not None for t in mine if t] == [False, False, True, True, True]
    for n in range(10):
        assert tickets.issue(key(100 + n))
    assert tickets.issue(key(999)) is None  # full: refused, nobody else's ticket dropped
    clock.t += 31
    assert tickets.issue(key(999)) is not None and len(tickets) == 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_ticket_endpoint_refuses_when_full(tmp_path: Path) -> None:
    # the same bound seen through the app: 429 with Retry-After, not a 500
    from tocsin.api import create_app
    from tocsin.config import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", private=True))
    async with app.router.lifespan_context(app):
        raw, _rec = app.state.service.admin.create_key("reader", "r")
        app.state.stream_tickets = StreamTickets(limit=1, per_key=5)
        auth = {"Authorization": f"Bearer {raw}"}
        transport = httpx.ASGITransport(app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post(TICKET, headers=auth)).status_code == 200
            r = await client.post(TICKET, headers=auth)
            assert r.status_code == 429 and r.headers["retry-after"] == "30"


# --- the page on a private server, in Chromium ----------------------------------------------


def opened_streams(p: Page) -> list[Any]:
    return [r for r in p.stream_requests if r.method == "GET"]


@pytest.mark.browser
@pytest.mark.serial
@pytest.mark.parametrize(("lang", "viewport"), [("en", {"width": 1280, "height": 800}),
                                                 ("uk", {"width": 390, "height": 844})])
def test_private_page_asks_for_a_key_and_streams_with_tickets(
    private: Server, page_factory: Any, lang: str, viewport: dict[str, int],
) -> None:
    from tests.web.test_dashboard import KHARKIV, drone, oblast_of, path_of

    p: Page = page_factory(private, viewport=viewport, locale=lang)
    page = p.page
    page.goto(private.base + "/")
    page.wait_for_selector("#key-gate:not([hidden])")
    p.shot(f"-{lang}-gate")
    page.fill("#gate-key", "tk_wrong")
    page.press("#gate-key", "Enter")
    page.wait_for_selector("#gate-error:not(:empty)")
    assert page.locator("#key-gate").is_visible()
    page.fill("#gate-key", private.keys["reader"])
    page.press("#gate-key", "Enter")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    page.wait_for_selector("#conn[data-state=live]", timeout=5000)
    oblast = oblast_of(private, *KHARKIV)
    private.post_event("sensor", drone(*KHARKIV))
    page.wait_for_function(
        "(sel) => { const el = document.querySelector(sel);"
        " return el && el.dataset.state !== 'none'; }",
        arg=path_of(oblast), timeout=3000,
    )
    p.shot(f"-{lang}-live")
    key = private.keys["reader"]
    streams = opened_streams(p)
    assert streams and all("ticket=st_" in r.url for r in streams)
    assert not [u for u in p.requests if key in u]
    assert key not in page.evaluate("() => JSON.stringify(localStorage)")
    assert page.evaluate("() => document.cookie") == ""



@pytest.mark.browser
@pytest.mark.serial
def test_private_stream_resumes_with_a_fresh_ticket_after_an_outage(
    tmp_path: Path, page_factory: Any
) -> None:
    from tests.web.test_dashboard import KHARKIV, LVIV, drone, oblast_of, path_of

    first = Server(tmp_path / "data", extra=["--private"])
    try:
        p: Page = page_factory(first, viewport={"width": 1280, "height": 800})
        page = p.page
        page.goto(first.base + "/")
        page.fill("#gate-key", first.keys["reader"])
        page.press("#gate-key", "Enter")
        page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        page.wait_for_selector("#conn[data-state=live]", timeout=5000)
        first.post_event("sensor", drone(*KHARKIV))
        kharkiv = oblast_of(first, *KHARKIV)
        page.wait_for_function("(sel) => document.querySelector(sel).dataset.state !== 'none'",
                               arg=path_of(kharkiv), timeout=3000)
        first.stop()
        page.wait_for_selector("#stream-banner", state="visible", timeout=10_000)
        second = Server(tmp_path / "data", extra=["--private"], port=first.port)
    finally:
        first.stop()
    try:
        second.post_event("sensor", drone(*LVIV))
        lviv = oblast_of(second, *LVIV)
        page.wait_for_selector("#stream-banner", state="hidden", timeout=15_000)
        page.wait_for_function("(sel) => document.querySelector(sel).dataset.state !== 'none'",
                               arg=path_of(lviv), timeout=3000)
        streams = opened_streams(p)
        tickets = [r.url.split("ticket=")[1].split("&")[0] for r in streams]
        assert len(tickets) >= 2 and len(set(tickets)) == len(tickets)  # never one reused
        assert any("since=" in r.url for r in streams[1:])  # resumed, no gap
        p.shot("-resumed")
    finally:
        second.stop()
