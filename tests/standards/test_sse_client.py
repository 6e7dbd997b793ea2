"""The live stream read by httpx-sse, the SSE client Python users already run, unmodified.

A real `tocsin serve`: the client reads an alert raised after it connected (written by the
stream hub straight to the connection), then resumes with `Last-Event-ID` after a reconnect and
gets what it missed, once, in order (filtered to a region: the hub's other path).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests import servers
from tocsin.model import format_time

httpx_sse = pytest.importorskip("httpx_sse", reason="httpx-sse is in the test extra")

KHARKIV_OBLAST = "UA63000000000041885"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("sse-client")
    data = tmp / "data"
    operator = servers.create_key("operator", "--data-dir", str(data), name="sse-client")
    with servers.serving(data, tmp / "serve.log") as base:
        yield base, operator


def _alert(base: str, key: str, action: str) -> None:
    r = httpx.post(base + "/api/v1/events", headers={"Authorization": f"Bearer {key}"},
                   json=[{"id": f"sse-{uuid.uuid4().hex}", "type": "operator_alert",
                          "time": format_time(datetime.now(UTC)), "source": "sse-client",
                          "regions": [KHARKIV_OBLAST], "alert_type": "air_raid",
                          "action": action, "operator": "duty"}], timeout=30)
    assert r.status_code == 202, r.text


def _read(base: str, want: str, params: dict[str, str], headers: dict[str, str],
          out: list[Any], ready: threading.Event) -> None:
    """Read the stream until a `want` event arrives (or the read times out)."""
    with httpx.Client(timeout=httpx.Timeout(30, read=60)) as client, \
            httpx_sse.connect_sse(client, "GET", base + "/api/v1/stream",
                                  params=params, headers=headers) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        ready.set()
        for sse in source.iter_sse():
            out.append(sse)
            if sse.event == want:
                return


def test_httpx_sse_reads_live_and_resumes_with_last_event_id(live: tuple[str, str]) -> None:
    base, key = live
    got: list[Any] = []
    ready = threading.Event()
    # unfiltered and caught up: the hub writes to this one straight to its connection
    reader = threading.Thread(target=_read, args=(base, "alert_started", {}, {}, got, ready))
    reader.start()
    assert ready.wait(30)
    _alert(base, key, "raise")
    reader.join(90)
    assert not reader.is_alive()
    started = [s for s in got if s.event == "alert_started"]
    assert started, got
    body = json.loads(started[-1].data)
    assert body["type"] == "alert_started" and int(started[-1].id) == body["seq"]
    last = max(int(s.id) for s in got if s.id)

    # the client is away while the alert is cleared, then comes back with its last id
    _alert(base, key, "clear")
    again: list[Any] = []
    ready = threading.Event()
    # filtered to the oblast, and resumed from the log
    _read(base, "alert_ended", {"region": KHARKIV_OBLAST}, {"Last-Event-ID": str(last)}, again,
          ready)
    ids = [int(s.id) for s in again if s.id]
    assert ids and ids == sorted(set(ids)) and min(ids) > last  # nothing again, in order
    ended = [json.loads(s.data) for s in again if s.event == "alert_ended"]
    assert ended and all(e["region"].startswith("UA63") for e in ended)
