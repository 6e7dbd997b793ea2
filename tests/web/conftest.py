"""Fixtures of the dashboard tests: real `tocsin serve` processes and Debian's Chromium.

Browser tests need `/usr/bin/chromium` (Debian's `chromium` package) and the `playwright`
Python package; without either they are skipped, loudly, with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers
from tests.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Server:
    """One `python -m tocsin serve` process, with a key per role made by the CLI first."""

    data_dir: Path
    extra: list[str] = field(default_factory=list)
    port: int = 0
    keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the sensor key sends as the radar and the police of the tests
        sources = {"sensor": ["--source", "web-test-radar", "--source", "web-test-police"]}
        for role in ("sensor", "operator", "reader"):
            out = servers.run_cli("keys", "create", "--data-dir", str(self.data_dir),
                                  "--role", role, "--name", f"{role}-web-test",
                                  *sources.get(role, []), check=True)
            self.keys[role] = out.stdout.strip().splitlines()[-1]
        port = self.port = self.port or free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = self.data_dir.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        self.proc = servers.start_serve(
            ["--data-dir", str(self.data_dir), "--port", str(port), *self.extra], self.log_path)
        try:
            servers.wait_ready(self.proc, self.base,
                               lambda: self.log_path.read_text(errors="replace"))
        except AssertionError:
            self.stop()
            raise

    def get(self, path: str, **params: Any) -> Any:
        # the reader key: harmless on a public server, needed on a --private one
        r = httpx.get(self.base + path, params=params, timeout=10,
                      headers={"Authorization": f"Bearer {self.keys['reader']}"})
        assert r.status_code == 200, r.text
        return r.json()

    def post_event(self, role: str, event: dict[str, Any]) -> Any:
        r = httpx.post(self.base + "/api/v1/events", json=event, timeout=10,
                       headers={"Authorization": f"Bearer {self.keys[role]}"})
        assert r.status_code == 202, r.text
        return r.json()

    def stop(self) -> None:
        servers.stop(self.proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    """A real server on a free port and a fresh data dir, shared by a module's tests.

    It asks for the browser first, so without Chromium no server is started just to skip.
    """
    srv = Server(tmp_path_factory.mktemp("web") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    """A server playing the small bundled night (`--demo night-wave`, which opens with a
    standing threat level), marked as an exercise (the record-day default: test_demo.py)."""
    srv = Server(tmp_path_factory.mktemp("demo") / "data", extra=["--demo", "night-wave"])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; skipped loudly when either is missing.

    Module-scoped: Playwright's sync API keeps an event loop running while it is open, and
    the asyncio tests of other modules need the thread's loop to themselves.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"SKIPPED LOUDLY: {CHROMIUM} not found; install Debian's chromium package "
                    "(apt-get install -y chromium) to run the dashboard's browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - a test dependency
        pytest.skip(f"SKIPPED LOUDLY: the playwright package is not installed ({exc})")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A browser page on one server, recording every URL it requests."""

    def __init__(self, browser: Any, server: Server, name: str, **context: Any) -> None:
        self.server = server
        self.name = name
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.stream_requests: list[Any] = []  # Playwright requests of /api/v1/stream
        self.errors: list[str] = []
        self.page.on("request", self._request)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, request: Any) -> None:
        self.requests.append(request.url)
        if "/api/v1/stream" in request.url:
            self.stream_requests.append(request)

    def resumed_streams(self) -> list[tuple[str, str | None]]:
        """(URL, Last-Event-ID) of stream requests that asked to resume after a seq."""
        out = []
        for r in self.stream_requests:
            last = r.all_headers().get("last-event-id")  # headers as sent, not provisional
            if last or "since=" in r.url:
                out.append((r.url, last))
        return out

    def open(self) -> Any:
        self.page.goto(self.server.base + "/")
        self.page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        return self.page

    def shot(self, suffix: str = "") -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{self.name}{suffix}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        self.context.close()

    def offsite(self) -> list[str]:
        """Requests that went anywhere but the server under test."""
        prefix = self.server.base + "/"
        return [u for u in self.requests if not u.startswith(prefix)]


@pytest.fixture
def page_factory(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """`page_factory(server, **context)`: a page that must never leave 127.0.0.1."""
    pages: list[Page] = []

    def make(server: Server, **context: Any) -> Page:
        p = Page(browser, server, request.node.name, **context)
        pages.append(p)
        return p

    yield make
    for p in pages:
        try:
            assert not p.offsite(), f"requests left the server: {p.offsite()}"
            assert not p.errors, f"page errors: {p.errors}"
        finally:
            p.close()
