"""Hostile stream clients against a real `tocsin serve`: memory, drops and `/healthz` latency.

    python bench/hostile.py [--alerts 20000 | --data-dir DIR] [--since0 4] [--stalled 1000]
                            [--rounds 20] [--hold-s 30]

1. A log: each of the first `--alerts` alerts of the official 2022-24 record
   (../shared/data/air_raid_sirens) as operator raise/clear events, appended through a `Ledger`
   (as `bench/replay.py` does; 20,000 alerts make about 1.2 million entries, the engine's
   timers included). `--data-dir` reuses a data directory built before.
2. `--since0` clients ask for `?since=0` (the whole log) and never read, for `--hold-s`
   seconds.
3. Then `--stalled` clients open live streams and never read while `--rounds` waves of 12
   drones are posted (each warns tens of hromadas), and for `stream_write_timeout_s` after.

Throughout, the server's RSS is read from /proc every 0.2 s and `/healthz` is timed every
0.1 s from a thread of its own. Reported: RSS before and its peak in each phase, `/healthz`
median and worst, and the streams the server dropped, by reason (from `/metrics`).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

import stream as sse  # bench/stream.py  # noqa: I001
from common import rss_mb, table, write_result
from replay import RECORD, build_log, record_events

NEAR_KHARKIV = (50.25, 36.70)


class Probe:
    """Samples RSS and times /healthz in the background until stopped."""

    def __init__(self, server: sse.Server) -> None:
        self.server = server
        self.rss: list[float] = []
        self.health_ms: list[float] = []
        self.health_at: list[float] = []  # when each probe started, s since the probe began
        self.tcp_pages: list[int] = []  # the kernel's TCP memory (pages, /proc/net/sockstat)
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._rss, daemon=True),
                         threading.Thread(target=self._health, daemon=True)]
        for t in self._threads:
            t.start()

    def _rss(self) -> None:
        while not self._stop.wait(0.2):
            self.rss.append(rss_mb(self.server.proc.pid)[0])
            self.tcp_pages.append(tcp_pages())

    def _health(self) -> None:
        with httpx.Client(base_url=self.server.base, timeout=30) as client:
            while not self._stop.wait(0.1):
                t0 = time.perf_counter()
                self.health_at.append(round(time.monotonic() - self.t0, 1))
                try:
                    client.get("/healthz")
                except httpx.TransportError:
                    pass  # counted as what it took (the timeout): a stall, not a crash
                self.health_ms.append((time.perf_counter() - t0) * 1000)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        for t in self._threads:
            t.join()
        worst = max(range(len(self.health_ms)), key=self.health_ms.__getitem__)
        return {"rss_peak_mb": round(max(self.rss)) if self.rss else None,
                "healthz_p50_ms": round(statistics.median(self.health_ms), 1),
                "healthz_max_ms": round(self.health_ms[worst], 1),
                "healthz_worst_at_s": self.health_at[worst],
                "healthz_over_100ms": sum(1 for ms in self.health_ms if ms > 100),
                "healthz_samples": len(self.health_ms),
                "tcp_mem_peak_mb": round(max(self.tcp_pages) * 4096 / 2**20)
                if self.tcp_pages else None}


def tcp_pages() -> int:
    """Pages the kernel holds for all TCP sockets (the `mem` of /proc/net/sockstat)."""
    with open("/proc/net/sockstat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1])
    return 0


def raw_stream(port: int, query: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /api/v1/stream{query} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    return s


def dropped(server: sse.Server) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(server.base + "/metrics", timeout=30).text.splitlines():
        if line.startswith("tocsin_streams_dropped_total{"):
            out[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
    return out


def wave(server: sse.Server, key: str, n: int) -> None:
    stamp = format_now()
    lat, lon = NEAR_KHARKIV
    if n:  # transitions are material-only: each round flies over another part of the country
        lat, lon = 46.6 + (n % 5) * 1.1, 23.8 + (n // 5) * 3.6
    body = [{"id": f"hw-{n}-{d}-{time.monotonic_ns()}", "type": "detection", "time": stamp,
             "source": "bench", "track": f"H{n}-{d}", "object": "drone",
             "weapon": "shahed-136", "position": {"lat": lat - d * 0.3, "lon": lon - d * 0.5},
             "heading_deg": 200 + 3 * d + n} for d in range(12)]
    r = httpx.post(server.base + "/api/v1/events", json=body,
                   headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 202, r.text


def format_now() -> str:
    return (datetime.now(UTC) - timedelta(milliseconds=300)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20000, help="alerts of the record to log")
    parser.add_argument("--data-dir", type=Path, help="reuse this data directory's log")
    parser.add_argument("--since0", type=int, default=4, help="non-reading ?since=0 clients")
    parser.add_argument("--stalled", type=int, default=1000, help="non-reading live clients")
    parser.add_argument("--rounds", type=int, default=20, help="waves posted to stalled clients")
    parser.add_argument("--hold-s", type=float, default=30.0, help="seconds to hold since=0")
    parser.add_argument("--watch", metavar="OUT", help="run the server under bench/profiled.py: "
                        "event-loop stalls and long full collections go to OUT.stalls")
    args = parser.parse_args(argv)
    sse.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="tocsin-hostile-"))
    result: dict[str, Any] = {}
    try:
        data = args.data_dir
        if data is None:
            data = tmp / "data"
            data.mkdir()
            built = build_log(data, itertools.islice(record_events(RECORD, args.alerts), None))
            result["log"] = built
            print(f"log built: {built}", file=sys.stderr, flush=True)
        key = sse.subprocess.run(
            [sys.executable, "-m", "tocsin", "keys", "create", "--data-dir", str(data),
             "--role", "admin", "--name", f"hostile-{time.monotonic_ns()}"],
            capture_output=True, text=True, check=True).stdout.strip()
        port = sse.free_port()
        t0 = time.monotonic()
        server = sse.Server(data, port, ready_s=1800, profile=args.watch)
        result["ready_s"] = round(time.monotonic() - t0, 1)
        result["entries"] = int(server.gauge("tocsin_log_seq"))
        try:
            wave(server, key, 0)
            time.sleep(1.0)
            base_a = rss_mb(server.proc.pid)[0]
            probe = Probe(server)
            socks = [raw_stream(port, "?since=0") for _ in range(args.since0)]
            time.sleep(args.hold_s)
            a = probe.stop()
            a.update(baseline_mb=round(base_a), clients=args.since0, dropped=dropped(server))
            a["growth_mb"] = round(a["rss_peak_mb"] - base_a)
            for s in socks:
                s.close()
            result["since0"] = a
            print(f"since=0: {a}", file=sys.stderr, flush=True)

            time.sleep(2.0)
            base_b = rss_mb(server.proc.pid)[0]
            probe = Probe(server)
            socks = [raw_stream(port, "") for _ in range(args.stalled)]
            deadline = time.monotonic() + 60
            while server.gauge("tocsin_stream_clients") < args.stalled:
                if time.monotonic() > deadline:
                    raise SystemExit("the stalled clients did not all connect")
                time.sleep(0.2)
            before = sum(dropped(server).values())
            for n in range(1, args.rounds + 1):
                wave(server, key, n)
            deadline = time.monotonic() + 15 + 10  # the write timeout, and some
            while (sum(dropped(server).values()) - before < args.stalled
                   and time.monotonic() < deadline):
                time.sleep(0.5)
            b = probe.stop()
            b.update(baseline_mb=round(base_b), clients=args.stalled, rounds=args.rounds,
                     dropped=dropped(server), still_open=server.gauge("tocsin_stream_clients"))
            b["growth_mb"] = round(b["rss_peak_mb"] - base_b)
            for s in socks:
                s.close()
            result["stalled"] = b
            print(f"stalled: {b}", file=sys.stderr, flush=True)
        finally:
            result["server_exit_code"] = server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [[name, r["clients"], r["baseline_mb"], r["rss_peak_mb"], f"+{r['growth_mb']}",
             r["healthz_p50_ms"], r["healthz_max_ms"],
             ", ".join(f"{k} {int(v)}" for k, v in r["dropped"].items()) or "-"]
            for name, r in (("since=0, not reading", result["since0"]),
                            (f"live, not reading, {args.rounds} waves", result["stalled"]))]
    print(table(f"hostile stream clients on a {result['entries']:,}-entry log",
                ["clients", "n", "RSS before MB", "peak MB", "growth", "/healthz p50 ms",
                 "/healthz max ms", "dropped (total so far)"], rows))
    write_result("hostile", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
