"""Stream edges: separate processes tailing the committed log serve the same stream.

A client may move between edges (and the main process) with `Last-Event-ID` and across an
edge's restart, and gets every transition exactly once, in log order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers
from tests.api.helpers import LVIV_HROMADA, NEAR_KHARKIV, SSEClient
from tests.cluster.services import fresh_schema, postgres_or_skip
from tests.engine.helpers import detection as engine_detection
from tests.engine.helpers import event
from tocsin.api.edge import create_edge_app
from tocsin.config import Settings
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import load_region_set
from tocsin.ledger import Ledger
from tocsin.model import format_time
from tocsin.store import open_log
from tocsin.store.postgres import PostgresLog
from tocsin.threats import load_catalog

pytestmark = pytest.mark.serial


def start_edge(data: Path, port: int, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    with out.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tocsin", "stream-edge", "--data-dir", str(data),
             "--port", str(port), *extra], stdout=fh, stderr=subprocess.STDOUT)
    servers.wait_ready(proc, f"http://127.0.0.1:{port}", lambda: out.read_text(errors="replace"),
                       what="tocsin stream-edge")
    return proc


def detection(n: int) -> dict[str, Any]:
    lat, lon = NEAR_KHARKIV
    return {"id": f"edge-{n}-{time.monotonic_ns()}", "type": "detection",
            "time": format_time(datetime.now(UTC) - timedelta(milliseconds=200)),
            "source": "edge-test", "track": f"E{n}", "object": "drone",
            "weapon": "shahed-136", "position": {"lat": lat - n * 0.2, "lon": lon - n * 0.3},
            "heading_deg": 230 + n}


def operator(action: str) -> dict[str, Any]:
    return {"id": f"op-{action}-{time.monotonic_ns()}", "type": "operator_alert",
            "time": format_time(datetime.now(UTC) - timedelta(milliseconds=200)),
            "source": "edge-test", "regions": [LVIV_HROMADA], "alert_type": "air_raid",
            "action": action, "operator": "duty-officer"}


def post(base: str, key: str, body: Any) -> int:
    r = httpx.post(base + "/api/v1/events", json=body,
                   headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 202, r.text
    acc = r.json()["accepted"][-1]
    return int(acc["seq"]) + int(acc["transitions"])


def events(response: httpx.Response) -> Iterator[int]:
    for line in response.iter_lines():
        if line.startswith("id: "):
            yield int(line[4:])


def read(base: str, headers: dict[str, str], until: int, *, stop_after: int | None = None
         ) -> list[int]:
    """Ids from a stream on `base` up to `until` (or the first `stop_after` of them)."""
    got: list[int] = []
    with httpx.stream("GET", base + "/api/v1/stream", headers=headers, timeout=30) as r:
        assert r.status_code == 200
        for i in events(r):
            got.append(i)
            if i >= until or (stop_after is not None and len(got) >= stop_after):
                break
    return got


def transitions(data: Path, end: int) -> list[int]:
    """The transition seqs of the log up to `end` (timers may log more after it)."""
    with open_log(data) as log:
        return [e.seq for e in log.read(1, end) if e.kind == "transition"]


def test_resume_across_two_edges_and_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, port1, port2 = servers.free_port(), servers.free_port(), servers.free_port()
    base = f"http://127.0.0.1:{port}"
    edge1, edge2 = f"http://127.0.0.1:{port1}", f"http://127.0.0.1:{port2}"
    out = tmp_path / "out.log"
    main = servers.start_serve(["--data-dir", str(data), "--port", str(port)], out)
    procs = [main]
    try:
        servers.wait_ready(main, base, lambda: out.read_text(errors="replace"))
        key = servers.create_key("admin", "--data-dir", str(data))
        procs.append(start_edge(data, port1, out))
        procs.append(start_edge(data, port2, out))
        end = post(base, key, [detection(0), detection(1)])
        # live on edge 1 (joined before anything was posted: resume from 0 to be sure)
        first = read(edge1, {"Last-Event-ID": "0"}, end, stop_after=40)
        assert first == transitions(data, end)[:40]
        # move to edge 2 in the middle of a batch, while more is being written
        end = post(base, key, [detection(2), operator("raise")])
        second = read(edge2, {"Last-Event-ID": str(first[-1])}, end)
        assert first + second == transitions(data, end)
        # edge 2 restarts; what is written while it is down is not lost
        assert servers.stop(procs.pop()) == 0
        end = post(base, key, [operator("clear"), detection(3)])
        procs.append(start_edge(data, port2, out))
        third = read(edge2, {"Last-Event-ID": str(second[-1])}, end)
        assert first + second + third == transitions(data, end)
        # and back to the main process, live
        with httpx.stream("GET", base + "/api/v1/stream",
                          headers={"Last-Event-ID": str(third[-1])}, timeout=30) as r:
            ids = events(r)
            end = post(base, key, [detection(4)])
            fourth = []
            for i in ids:
                fourth.append(i)
                if i >= end:
                    break
        assert first + second + third + fourth == transitions(data, end)
        # an edge also follows live, not only from the log: within its poll, not a restart
        with httpx.stream("GET", edge1 + "/api/v1/stream", timeout=30) as r:
            ids = events(r)
            end = post(base, key, [detection(5)])
            live = []
            for i in ids:
                live.append(i)
                if i >= end:
                    break
        assert live[-1] == end and live == [s for s in transitions(data, end) if s >= live[0]]
        metrics = httpx.get(edge1 + "/metrics").text
        assert "process_resident_memory_bytes" in metrics and "tocsin_edge_log_seq" in metrics
    finally:
        for proc in reversed(procs):
            assert servers.stop(proc) == 0, out.read_text(errors="replace")[-3000:]


def test_serve_with_stream_workers_spreads_streams_over_processes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, stream_port = servers.free_port(), servers.free_port()
    base, edges = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stream_port}"
    out = tmp_path / "out.log"
    main = servers.start_serve(["--data-dir", str(data), "--port", str(port),
                                "--stream-workers", "2", "--stream-port", str(stream_port)], out)
    try:
        servers.wait_ready(main, base, lambda: out.read_text(errors="replace"))
        servers.wait_ready(main, edges, lambda: out.read_text(errors="replace"),
                           what="the stream workers")
        key = servers.create_key("admin", "--data-dir", str(data))
        pids = set()
        for _ in range(40):  # a new connection each time: the kernel picks a worker
            with httpx.Client() as client:
                pids.add(client.get(edges + "/healthz").json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and main.pid not in pids
        end = post(base, key, [detection(0)])
        got = read(edges, {"Last-Event-ID": "0"}, end)
        assert got == transitions(data, end)
        assert json.loads(httpx.get(edges + "/readyz").text)["edge"] is True
        assert servers.stop(main) == 0
        # the workers go with the server
        servers.eventually(lambda: _refused(edges), "the stream workers to stop", timeout=30)
    finally:
        servers.kill(main)


def _refused(base: str) -> bool:
    try:
        httpx.get(base + "/healthz", timeout=1)
    except httpx.TransportError:
        return True
    return False


@pytest.mark.anyio
async def test_an_edge_tails_a_clusters_postgresql_log() -> None:
    with fresh_schema(postgres_or_skip()) as url:
        regions, policy, catalog = load_region_set("ua-hromadas"), Policy(), load_catalog()
        log = PostgresLog(url)
        log.set_meta("regions", "ua-hromadas")
        ledger = Ledger(log, lambda: Engine(regions, catalog, policy))

        def wave(i: int) -> None:
            ledger.submit([event("tick", i * 900.0)])
            ledger.submit([engine_detection(f"P{i}", i * 900.0 + 1, *NEAR_KHARKIV,
                                            weapon="shahed-136", heading_deg=230)])

        wave(0)
        app = create_edge_app(Settings(store=url, data_dir=Path("unused")), poll_s=0.01)
        try:
            async with app.router.lifespan_context(app):
                def logged(after: int = 0) -> list[int]:
                    return [e.seq for e in log.read(after + 1, log.max_seq())
                            if e.kind == "transition"]

                first = logged()
                middle = first[len(first) // 2]
                async with SSEClient(app, "/api/v1/stream", {}, {"Last-Event-ID": str(middle)}
                                     ) as stream:
                    got = [e.id for e in await stream.take(first[-1])]
                    assert got == logged(middle)
                    wave(1)  # committed by a writer elsewhere: the edge finds it in the log
                    more = [e.id for e in await stream.take(logged()[-1])]
                    assert more == logged(first[-1])
        finally:
            log.close()
