"""`tocsin serve` as a real process: keys from the CLI, SSE, SIGTERM, restart, resume."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers
from tests.api.helpers import LVIV_HROMADA, LVIV_OBLAST, NEAR_KHARKIV
from tests.servers import free_port
from tocsin.model import format_time
from tocsin.store import open_log

pytestmark = pytest.mark.serial

OTHER_LVIV_HROMADA = "UA46060010000049728"


class Server:
    """One `python -m tocsin serve` process on a data dir and port."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = data_dir.parent / f"serve-{time.monotonic_ns()}.log"
        self.proc = servers.start_serve(["--data-dir", str(data_dir), "--port", str(port)],
                                        self.log_path)
        servers.wait_ready(self.proc, self.base,
                           lambda: self.log_path.read_text(errors="replace"))

    def terminate(self, timeout: float = 30.0) -> int:
        return servers.stop(self.proc, timeout)

    def kill(self) -> None:
        servers.kill(self.proc)


def now_event(etype: str, **fields: Any) -> dict[str, Any]:
    stamp = format_time(datetime.now(UTC) - timedelta(milliseconds=200))
    return {"id": f"{etype}-{time.monotonic_ns()}", "type": etype, "time": stamp,
            "source": "serial-test", **fields}


def sse_events(response: httpx.Response) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(id, event, data) of each message, until the stream ends."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def read_until(events: Iterator[tuple[int, str, dict[str, Any]]], last: int) -> list[int]:
    seen: list[int] = []
    for seq, kind, data in events:
        assert kind == data["type"] and seq == data["seq"]
        seen.append(seq)
        if seq >= last:
            break
    return seen


def post(server: Server, key: str, body: Any) -> list[dict[str, Any]]:
    r = httpx.post(server.base + "/api/v1/events", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.text
    accepted: list[dict[str, Any]] = r.json()["accepted"]
    return accepted


def last_transition(accepted: list[dict[str, Any]]) -> int:
    ends = [a["seq"] + a["transitions"] for a in accepted if a["transitions"]]
    return max(ends)


def test_serve_sigterm_restart_and_resume(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    server = Server(data, port)
    try:
        created = servers.run_cli("keys", "create", "--data-dir", str(data), "--role", "admin",
                                  "--name", "serial", timeout=60, check=True)
        key = created.stdout.strip()
        assert created.stdout == key + "\n" and key.startswith("tk_")

        seen: list[int] = []
        with httpx.stream("GET", server.base + "/api/v1/stream", params={"since": 0},
                          timeout=httpx.Timeout(30)) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = sse_events(stream)
            burst = [now_event("detection", track="S1", object="drone", weapon="shahed-136",
                               position={"lat": NEAR_KHARKIV[0], "lon": NEAR_KHARKIV[1]},
                               heading_deg=230),
                     now_event("track_end", track="S1", reason="intercepted")]
            target = last_transition(post(server, key, burst))
            target = max(target, last_transition(post(server, key, now_event(
                "operator_alert", regions=[LVIV_HROMADA], alert_type="air_raid",
                action="raise", operator="duty-officer"))))
            target = max(target, last_transition(post(server, key, now_event(
                "threat_level", regions=[LVIV_OBLAST], level=2, operator="duty-officer"))))
            seen += read_until(events, target)
            active = httpx.get(server.base + "/api/v1/alerts/active").json()
            levels = httpx.get(server.base + "/api/v1/levels").json()
            seq = httpx.get(server.base + "/readyz").json()["seq"]
            assert active["alerts"] and levels["levels"]
            assert server.terminate() == 0
            assert list(events) == [], "the stream ends cleanly on shutdown"

        server = Server(data, port)
        assert httpx.get(server.base + "/readyz").json()["seq"] == seq
        assert httpx.get(server.base + "/api/v1/alerts/active").json() == active
        assert httpx.get(server.base + "/api/v1/levels").json() == levels

        with httpx.stream("GET", server.base + "/api/v1/stream",
                          headers={"Last-Event-ID": str(seen[-1])},
                          timeout=httpx.Timeout(30)) as stream:
            events = sse_events(stream)
            target = last_transition(post(server, key, [
                now_event("operator_alert", regions=[LVIV_HROMADA], alert_type="air_raid",
                          action="clear", operator="duty-officer"),
                now_event("operator_alert", regions=[OTHER_LVIV_HROMADA],
                          alert_type="chemical", action="raise", operator="duty-officer"),
            ]))
            seen += read_until(events, target)
        assert server.terminate() == 0
    finally:
        server.kill()

    with open_log(data) as log:
        logged = [e.seq for e in log.read() if e.kind == "transition"]
        key_names = {e.key_name for e in log.read() if e.kind == "event" and e.source != "tocsin"}
    assert seen == logged, "every transition exactly once, in order, across the restart"
    assert key_names == {"serial"}
