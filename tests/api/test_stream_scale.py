"""Bounded memory under hostile streams, against a real `tocsin serve` on a 50,000-entry log.

Clients that never read (`since=0` on the whole log, and live streams that stop reading while
alerts go out) must cost the server a bounded amount, be dropped with a reason, and leave
`/healthz` answering throughout. The server's RSS is sampled from /proc while they hang on.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.api.helpers import NEAR_KHARKIV
from tests.engine.helpers import detection, event
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import load_region_set
from tocsin.ledger import Ledger
from tocsin.model import format_time
from tocsin.store import SQLiteLog
from tocsin.threats import load_catalog

pytestmark = pytest.mark.serial

ENTRIES = 50_000
STALLED = 50
NON_READING_SINCE_0 = 4
RSS_GROWTH_MB = 50


def build_log(data_dir: Path, entries: int) -> int:
    """At least `entries` log entries: waves of drones each warning hundreds of hromadas."""
    data_dir.mkdir(parents=True)
    regions, policy, catalog = load_region_set("ua-hromadas"), Policy(), load_catalog()
    log = SQLiteLog(data_dir / "tocsin.db")
    log.set_meta("regions", "ua-hromadas")
    log.set_meta("policy", json.dumps(policy.to_dict(), sort_keys=True))
    ledger = Ledger(log, lambda: Engine(regions, catalog, policy))
    i = 0
    while log.max_seq() < entries:
        t = i * 900.0
        ledger.submit([event("tick", t),
                       detection(f"W{i}", t + 1, *NEAR_KHARKIV, weapon="shahed-136",
                                 heading_deg=230),
                       event("track_end", t + 2, track=f"W{i}", reason="intercepted")])
        ledger.submit([event("tick", t + 800)])  # every alert of the wave ends
        i += 1
    last = log.max_seq()
    log.close()
    return last


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw_stream(port: int, query: str) -> socket.socket:
    """An SSE request from a client with a tiny receive buffer that then reads nothing."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /api/v1/stream{query} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return s


def drain(s: socket.socket, timeout: float = 30.0) -> bytes:
    """Everything the server sent, up to its close."""
    s.settimeout(timeout)
    chunks = []
    while chunk := s.recv(1 << 16):
        chunks.append(chunk)
    s.close()
    return b"".join(chunks)


def metric(base: str, name: str) -> float:
    total = 0.0
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wave(base: str, key: str, n: int, drones: int = 12) -> int:
    """POST drones that each warn tens of hromadas; the last seq the batch logged.

    Each round flies over another part of the country: transitions are material-only, so a
    wave over hromadas already alerting would be no news and send nothing to the streams.
    """
    stamp = format_time(datetime.now(UTC) - timedelta(milliseconds=200))
    lat, lon = NEAR_KHARKIV
    if n:
        lat, lon = 46.6 + (n % 5) * 1.1, 23.8 + (n // 5) * 3.6
    body = [{"id": f"wave-{n}-{d}-{time.monotonic_ns()}", "type": "detection", "time": stamp,
             "source": "scale-test", "track": f"S{n}-{d}", "object": "drone",
             "weapon": "shahed-136", "position": {"lat": lat - d * 0.3, "lon": lon - d * 0.5},
             "heading_deg": 200 + 3 * d + n} for d in range(drones)]
    r = httpx.post(base + "/api/v1/events", json=body,
                   headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 202, r.text
    acc = r.json()["accepted"][-1]
    return int(acc["seq"]) + int(acc["transitions"])


def sse_ids(response: httpx.Response) -> Iterator[int]:
    for line in response.iter_lines():
        if line.startswith("id: "):
            yield int(line[4:])


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    data = tmp_path_factory.mktemp("scale") / "data"
    return data, build_log(data, ENTRIES)


def test_non_reading_and_stalled_clients_cost_bounded_memory(
        big_log: tuple[Path, int], tmp_path: Path) -> None:
    data, last = big_log
    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    out = tmp_path / "serve.log"
    env = {"TOCSIN_STREAM_WRITE_TIMEOUT_S": "2", "TOCSIN_STREAM_BUFFER_BYTES": "262144",
           "TOCSIN_STREAM_MAX_PER_CLIENT": "100"}
    env["TOCSIN_CONFIG_DIR"] = str(data.parent / "config")  # one key for the module's log
    proc = servers.start_serve(["--data-dir", str(data), "--port", str(port)], out, env=env)
    sockets: list[socket.socket] = []
    try:
        servers.wait_ready(proc, base, lambda: out.read_text(errors="replace"), timeout=600)
        key = servers.create_key("admin", "--data-dir", str(data))
        transitions = sum(1 for e in SQLiteLog(data / "tocsin.db").read()
                          if e.kind == "transition")
        # a client that reads gets the whole log, in order, paged from the log
        ids: list[int] = []
        with httpx.stream("GET", base + "/api/v1/stream", params={"since": 0},
                          timeout=60) as r:
            for i in sse_ids(r):
                ids.append(i)
                if i >= last:
                    break
        assert len(ids) == transitions and ids == sorted(set(ids))
        wave(base, key, 0)
        baseline = rss_mb(proc.pid)

        sockets = [raw_stream(port, "?since=0") for _ in range(NON_READING_SINCE_0)]
        sockets += [raw_stream(port, "") for _ in range(STALLED)]
        servers.eventually(lambda: metric(base, "tocsin_stream_clients") == len(sockets),
                           "every stream to open")
        peak, slowest = baseline, 0.0
        for n in range(1, 21):  # 20 rounds of alerts
            wave(base, key, n)
            peak = max(peak, rss_mb(proc.pid))
            start = time.perf_counter()
            assert httpx.get(base + "/healthz", timeout=10).status_code == 200
            slowest = max(slowest, time.perf_counter() - start)

        def all_dropped() -> bool:
            nonlocal peak
            peak = max(peak, rss_mb(proc.pid))
            return metric(base, "tocsin_streams_dropped_total") >= len(sockets)

        servers.eventually(all_dropped, "every stalled stream to be dropped", timeout=60)
        servers.eventually(lambda: metric(base, "tocsin_stream_clients") == 0,
                           "the dropped streams to close")
        after = rss_mb(proc.pid)
        print(f"\nlog {last} entries; RSS baseline {baseline:.0f} MB, peak {peak:.0f} MB, "
              f"after {after:.0f} MB; slowest /healthz {slowest * 1000:.0f} ms", file=sys.stderr)
        assert peak - baseline <= RSS_GROWTH_MB, (baseline, peak)
        assert slowest < 5.0, "the event loop was blocked"  # materialising the log takes far longer
        text = httpx.get(base + "/metrics").text
        reasons = {line.split('"')[1] for line in text.splitlines()
                   if line.startswith("tocsin_streams_dropped_total{") and
                   not line.endswith(" 0.0")}
        assert reasons <= {"lagging", "write-timeout"} and reasons
        # the server closed them: each reads to its end (what was buffered, then EOF)
        for s in sockets:
            assert drain(s).startswith(b"HTTP/1.1 200")
        sockets = []
    finally:
        for s in sockets:
            s.close()
        assert servers.stop(proc) == 0, out.read_text(errors="replace")[-3000:]


def test_a_stream_resumed_from_any_point_of_a_big_log_has_no_gap(
        big_log: tuple[Path, int], tmp_path: Path) -> None:
    data, last = big_log
    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    out = tmp_path / "serve.log"
    # the same log as the test before: the same signing key (kept beside the module's log)
    proc = servers.start_serve(["--data-dir", str(data), "--port", str(port)], out,
                               env={"TOCSIN_CONFIG_DIR": str(data.parent / "config")})
    try:
        servers.wait_ready(proc, base, lambda: out.read_text(errors="replace"), timeout=600)
        log = SQLiteLog(data / "tocsin.db")
        end = log.max_seq()
        want = [e.seq for e in log.read(end - 3000) if e.kind == "transition"]
        log.close()
        with httpx.stream("GET", base + "/api/v1/stream", headers={"Last-Event-ID":
                                                                   str(end - 3001)},
                          timeout=60) as r:
            got: list[int] = []
            for i in sse_ids(r):
                got.append(i)
                if i >= want[-1]:
                    break
        assert got == want
    finally:
        assert servers.stop(proc) == 0

