"""Shared pieces of the API tests: a running service, a hand-moved clock, an SSE reader.

`httpx.ASGITransport` collects a whole response before returning, which never happens for an
endless event stream; `SSEClient` drives the ASGI app itself (as starlette's streaming tests
do), reading chunks as they are sent and disconnecting on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI

from tests.engine.helpers import T0, at, detection, event
from tocsin.api import create_app
from tocsin.config import Settings
from tocsin.service import Service
from tocsin.store.admin import ROLES

__all__ = [
    "KHARKIV", "KHARKIV_OBLAST", "LVIV", "LVIV_HROMADA", "LVIV_OBLAST", "NEAR_KHARKIV", "Api",
    "FakeClock", "SSEClient", "at", "detection", "event", "running", "sample_event", "wait_until",
]

KHARKIV = (49.99, 36.23)
NEAR_KHARKIV = (50.25, 36.70)  # a drone here heading 230° warns four oblasts
LVIV = (49.84, 24.03)
KHARKIV_OBLAST = "UA63000000000041885"
LVIV_OBLAST = "UA46000000000026241"
LVIV_HROMADA = "UA46060250000025047"
TEST_SOURCES = ("radar-1", "radar-2", "test")


class FakeClock:
    """The service's wall clock, moved only by the test."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def sample_event(etype: str, t: float = 1.0) -> dict[str, Any]:
    """A valid event of each type a key may send."""
    if etype == "detection":
        return detection(f"T-{time.monotonic_ns()}", t, *NEAR_KHARKIV, weapon="shahed-136",
                         heading_deg=230)
    if etype == "track_end":
        return event("track_end", t, track="gone", reason="lost")
    if etype == "impact":
        return event("impact", t, position={"lat": LVIV[0], "lon": LVIV[1]}, kind="explosion")
    if etype == "operator_alert":
        return event("operator_alert", t, regions=[LVIV_HROMADA], alert_type="air_raid",
                     action="raise", operator="duty-officer")
    if etype == "threat_level":
        return event("threat_level", t, regions=[LVIV_OBLAST], level=1, operator="duty-officer")
    if etype == "siren_status":
        return event("siren_status", t, siren="s-1", region=LVIV_HROMADA, status="ok")
    raise AssertionError(f"no sample for event type {etype!r}: add one")


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 10.0,
    what: str = "condition",
) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Api:
    """A running service, its app, an in-process client and one key per role."""

    app: FastAPI
    service: Service
    client: httpx.AsyncClient
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str | None) -> dict[str, str]:
        """The Authorization header of a role's key (none for None)."""
        return {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}

    async def post(self, body: Any, role: str | None = "admin") -> httpx.Response:
        """POST /api/v1/events."""
        return await self.client.post("/api/v1/events", json=body, headers=self.auth(role))

    async def seq(self) -> int:
        """The last seq in the log, as /readyz reports it."""
        r = await self.client.get("/readyz")
        assert r.status_code == 200, r.text
        seq: int = r.json()["seq"]
        return seq

    def transition_seqs(self, after: int = 0) -> list[int]:
        """Every transition seq in the log after `after`."""
        return [e.seq for e in self.service.log.read(after + 1) if e.kind == "transition"]

    def stream(self, query: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> SSEClient:
        """An SSE connection to /api/v1/stream (use with `async with`)."""
        return SSEClient(self.app, "/api/v1/stream", query or {}, headers or {})


@contextlib.asynccontextmanager
async def running(data_dir: Path, clock: FakeClock | None, **overrides: Any) -> AsyncIterator[Api]:
    """Start a service (lifespan included) on `data_dir`; stop it on exit."""
    settings = Settings(data_dir=data_dir, regions="ua-hromadas", **overrides)
    service = Service(settings, clock=clock) if clock is not None else Service(settings)
    app = create_app(settings, service)
    # the sources the shared event helpers use (`tests.engine.helpers`, `sample_event`)
    keys = {role: service.admin.create_key(role, f"{role}-key", TEST_SOURCES)[0]
            for role in ROLES}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as client:
            yield Api(app, service, client, keys)


@dataclass
class SSEEvent:
    """One parsed server-sent event."""

    id: int
    event: str
    data: dict[str, Any]


class SSEClient:
    """One streaming GET driven straight through ASGI; parses events as they arrive."""

    def __init__(self, app: FastAPI, path: str, query: dict[str, Any],
                 headers: dict[str, str]) -> None:
        self.app = app
        self.scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": urlencode(query).encode(), "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 40001), "server": ("tocsin.test", 80),
        }
        self.status: int | None = None
        self.events: asyncio.Queue[SSEEvent] = asyncio.Queue()
        self.comments: list[str] = []
        self.body = b""
        self.finished = asyncio.Event()
        self._started = asyncio.Event()
        self._gone = asyncio.Event()
        self._request_sent = False
        self._buffer = ""
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self._started.set()
            return
        chunk = message.get("body", b"")
        self.body += chunk
        self._buffer += chunk.decode()
        while "\n\n" in self._buffer:
            block, self._buffer = self._buffer.split("\n\n", 1)
            self._parse(block)
        if not message.get("more_body", False):
            self.finished.set()

    def _parse(self, block: str) -> None:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            self.events.put_nowait(SSEEvent(int(fields["id"]), fields["event"],
                                            json.loads(fields["data"])))

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        finally:
            self.finished.set()
            self._started.set()

    async def __aenter__(self) -> SSEClient:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._started.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def disconnect(self) -> None:
        """Go away as a client does (an ASGI `http.disconnect`); wait for the app to finish."""
        self._gone.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)

    async def next(self, timeout: float = 10.0) -> SSEEvent:
        """The next event; fails after `timeout` seconds."""
        return await asyncio.wait_for(self.events.get(), timeout)

    async def take(self, until_seq: int, timeout: float = 10.0) -> list[SSEEvent]:
        """Events up to and including the first with id >= `until_seq`."""
        out: list[SSEEvent] = []
        deadline = time.monotonic() + timeout
        while not out or out[-1].id < until_seq:
            out.append(await self.next(max(0.01, deadline - time.monotonic())))
        return out

    def pending(self) -> list[SSEEvent]:
        """Events received and not yet taken."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out
