"""Stream fan-out and ingest throughput of a real `tocsin serve`.

    python bench/stream.py [--clients 1000,10000] [--procs 2] [--out bench/results/stream.json]

Starts `python -m tocsin serve` on a fresh data directory and a free port, then:

* fan-out: opens N SSE connections to `/api/v1/stream` (raw sockets from `--procs` asyncio
  worker processes), POSTs one detection and records, per connection, when the first transition
  arrived. Latency is measured from just before the POST is sent, on CLOCK_MONOTONIC, which all
  processes of the machine share.
* ingest: POSTs detections one per request from `--ingest-conns` concurrent keep-alive clients,
  then 100 per request; reports accepted events per second (each 202 is durable: one fsynced
  SQLite transaction per request).

Prints a table and writes the numbers, the command and the machine to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
NEAR_KHARKIV = (50.25, 36.70)


def raise_nofile() -> int:
    """Lift the open-files soft limit to the hard limit (10,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stamp(offset_s: float = 0.0) -> str:
    t = datetime.now(UTC) + timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the SSE client worker (a separate process) ---------------------------------------------


async def _one_client(port: int, ready: asyncio.Event, counter: list[int], total: int,
                      times: list[float], gate: asyncio.Semaphore,
                      hang_up: asyncio.Event, marker: bytes) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/v1/stream HTTP/1.1\r\nHost: bench\r\n"
                     b"Accept: text/event-stream\r\n\r\n")
        buf = b""
        while b": connected" not in buf:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("stream closed before it started")
            buf += chunk
        counter[0] += 1
        if counter[0] == total:
            ready.set()
    # the first transition of this round's detection names its track (earlier tracks' timers
    # may fire meanwhile; those do not count)
    buf = buf[buf.index(b": connected"):]
    while marker not in buf:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("stream closed before the first transition")
        buf = buf[-len(marker):] + chunk
    times.append(time.monotonic())
    # Stop reading: the rest of the batch waits in the kernel's socket buffers. Clients share
    # this machine's CPUs with the server, so reading every byte here would slow the server.
    try:
        await hang_up.wait()
    finally:
        writer.close()


async def _worker(port: int, n: int, track: str) -> None:
    ready = asyncio.Event()
    counter = [0]
    times: list[float] = []
    gate = asyncio.Semaphore(200)  # connect a few hundred at a time: the listen backlog is finite
    hang_up = asyncio.Event()
    marker = f'"{track}"'.encode()  # in the `causes` of every transition it brings
    tasks = [asyncio.create_task(_one_client(port, ready, counter, n, times, gate, hang_up,
                                             marker))
             for _ in range(n)]
    await ready.wait()
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 120
    while len(times) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    print(json.dumps(times), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the parent says when to hang up
    hang_up.set()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- the orchestrator -----------------------------------------------------------------------


class Server:
    """A `tocsin serve` subprocess with rate limits lifted for one host with many clients."""

    def __init__(self, data: Path, port: int, extra: tuple[str, ...] = (),
                 env_extra: dict[str, str] | None = None, ready_s: float = 120.0,
                 profile: str | None = None) -> None:
        # every bench client comes from 127.0.0.1: lift the per-client limits too
        env = {**os.environ, "TOCSIN_RATE_LIMIT": "1000000000", "TOCSIN_RATE_BURST": "1000000000",
               "TOCSIN_STREAM_MAX_PER_CLIENT": "1000000", "PYTHONUNBUFFERED": "1",
               **(env_extra or {})}
        self.base = f"http://127.0.0.1:{port}"
        self.log = (data.parent / "serve.log").open("wb")
        self.profile = profile
        # with a profile, bench/profiled.py runs the same command (see `fan_out`)
        run = ([sys.executable, str(Path(__file__).with_name("profiled.py")), profile]
               if profile else [sys.executable, "-m", "tocsin"])
        self.proc = subprocess.Popen(
            [*run, "serve", "--data-dir", str(data), "--port", str(port), *extra],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"tocsin serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    if "--stream-port" not in extra:
                        return
                    edge = f"http://127.0.0.1:{extra[extra.index('--stream-port') + 1]}"
                    if httpx.get(edge + "/readyz", timeout=1).status_code == 200:
                        return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.proc.kill()
        raise SystemExit("tocsin serve did not become ready")

    def cpu_s(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far."""
        return cpu_s(self.proc.pid)

    def gauge(self, name: str) -> float:
        for line in httpx.get(self.base + "/metrics", timeout=30).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(60)
        self.log.close()
        return code


def cpu_s(pid: int) -> float:
    """CPU time (user + system, all threads) process `pid` has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def client_command(kind: str, port: int, n: int, track: str) -> list[str]:
    """A client worker process: `epoll` (bench/clients.py, a few us of Python per socket) or
    `asyncio` (this file's `_worker`, the streams API of the standard library)."""
    if kind == "epoll":
        return [sys.executable, str(Path(__file__).with_name("clients.py")), "sse", str(port),
                str(n), f'"{track}"']
    return [sys.executable, __file__, "--worker", str(port), str(n), track]


def fan_out(server: Server, key: str, port: int, n: int, procs: int, track: str,
            spy: str | None = None, client: str = "epoll") -> dict[str, Any]:
    """Open `n` streams, post one detection, time the first transition on every stream."""
    share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    workers = [
        subprocess.Popen(client_command(client, port, k, track),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for k in share if k
    ]
    t_open = time.monotonic()
    for w in workers:
        assert w.stdout is not None
        line = w.stdout.readline()
        if line.strip() != "READY":
            raise SystemExit(f"a client worker failed: {line!r}")
    opened_s = time.monotonic() - t_open
    connected = server.gauge("tocsin_stream_clients")
    event = {"id": f"fan-{track}", "type": "detection", "time": stamp(-0.2), "source": "bench",
             "track": track, "object": "drone", "weapon": "shahed-136",
             "position": {"lat": NEAR_KHARKIV[0], "lon": NEAR_KHARKIV[1]}, "heading_deg": 230}
    headers = {"Authorization": f"Bearer {key}"}
    profiler = spying(server, spy, str(n))
    if server.profile:
        server.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
    with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
        client.get("/readyz")  # connection up before the clock starts
        cpu0 = server.cpu_s()
        clients0 = sum(cpu_s(w.pid) for w in workers)
        t0 = time.monotonic()
        r = client.post("/api/v1/events", json=event)
        t_ack = time.monotonic()
    assert r.status_code == 202, r.text
    accepted = r.json()["accepted"][0]
    transitions = accepted["transitions"]
    arrivals: list[float] = []
    for w in workers:
        assert w.stdout is not None
        arrivals += json.loads(w.stdout.readline())
    cpu = server.cpu_s() - cpu0
    clients_cpu = sum(cpu_s(w.pid) for w in workers) - clients0
    unspy(profiler)
    if server.profile:
        server.proc.send_signal(signal.SIGUSR2)
    with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
        end = {**event, "id": f"end-{track}", "type": "track_end", "reason": "intercepted",
               "time": stamp(-0.1)}
        del end["object"], end["weapon"], end["position"], end["heading_deg"]
        assert client.post("/api/v1/events", json=end).status_code == 202  # no timers later
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("\n")
        w.stdin.flush()
    for w in workers:
        w.wait(60)
    lat = [(t - t0) * 1000 for t in arrivals]
    size = batch_bytes(server, accepted["seq"], accepted["seq"] + transitions)
    deadline = time.monotonic() + 60
    while server.gauge("tocsin_stream_clients") > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    return {
        "clients": n, "connected": int(connected), "received": len(lat), "seq": accepted["seq"],
        "transitions_per_client": transitions, "bytes_per_client": size,
        "open_s": round(opened_s, 2),
        "ack_ms": round((t_ack - t0) * 1000, 1), "server_cpu_ms": round(cpu * 1000),
        "clients_cpu_ms": round(clients_cpu * 1000),
        "p50_ms": round(pct(lat, 0.50), 1), "p99_ms": round(pct(lat, 0.99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "all_ms": round(max(lat), 1) if len(lat) == n else None,
    }


def batch_bytes(server: Server, after: int, last: int) -> int:
    """Bytes of the SSE messages of transitions after..last, as each stream received them."""
    size, tail, marker = 0, b"", f"id: {last}\n".encode()
    with httpx.stream("GET", server.base + "/api/v1/stream", params={"since": after},
                      timeout=60) as r:
        for chunk in r.iter_raw():
            size += len(chunk)
            if marker in tail + chunk:
                break
            tail = chunk[-len(marker):]
    return size - len(b"retry: 2000\n: connected\n\n")


def detections(prefix: str, n: int) -> list[dict[str, Any]]:
    """`n` detections: 50 drones over Ukraine, each re-detected as it flies on."""
    out = []
    for i in range(n):
        k = i % 50
        step = i // 50
        lat = 46.0 + (k % 10) * 0.6 + step * 0.0005
        lon = 24.0 + (k // 10) * 2.5 + step * 0.0005
        out.append({"id": f"{prefix}-{i}", "type": "detection", "time": stamp(-0.5),
                    "source": "bench", "track": f"{prefix}-T{k}", "object": "drone",
                    "weapon": "shahed-136", "heading_deg": 45,
                    "position": {"lat": round(lat, 5), "lon": round(lon, 5)}})
    return out


async def _ingest(base: str, key: str, bodies: list[Any], conns: int) -> float:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as c:
            await c.get("/readyz")
            while not queue.empty():
                body = queue.get_nowait()
                r = await c.post("/api/v1/events", content=body)
                assert r.status_code == 202, r.text

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(conns)))
    return time.perf_counter() - t0


def spying(server: Server, spy: str | None, label: str) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the server into PREFIX-LABEL.txt (collapsed stacks), if asked."""
    if not spy:
        return None
    proc = subprocess.Popen(["py-spy", "record", "--pid", str(server.proc.pid), "--rate", "200",
                             "--format", "raw", "-o", f"{spy}-{label}.txt"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def unspy(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.send_signal(2)
        proc.wait(60)


def ingest(server: Server, key: str, single: int, batches: int, conns: int,
           spy: str | None = None) -> dict[str, Any]:
    """Accepted events per second, one event per POST and 100 per POST."""
    one = [json.dumps(e) for e in detections("single", single)]
    seq0 = server.gauge("tocsin_log_seq")
    profiler = spying(server, spy, "single")
    took_single = asyncio.run(_ingest(server.base, key, one, conns))
    unspy(profiler)
    evs = detections("batch", batches * 100)
    many = [json.dumps(evs[i:i + 100]) for i in range(0, len(evs), 100)]
    profiler = spying(server, spy, "batched")
    took_batch = asyncio.run(_ingest(server.base, key, many, conns))
    unspy(profiler)
    return {
        "conns": conns,
        "single_events": single, "single_s": round(took_single, 2),
        "single_events_per_s": round(single / took_single),
        "batched_events": batches * 100, "batched_s": round(took_batch, 2),
        "batched_events_per_s": round(batches * 100 / took_batch),
        "log_entries": int(server.gauge("tocsin_log_seq") - seq0),
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1000,10000", help="comma-separated stream counts")
    parser.add_argument("--procs", type=int, default=2, help="client worker processes")
    parser.add_argument("--client", choices=("epoll", "asyncio"), default="epoll",
                        help="client workers: one epoll loop (bench/clients.py) or asyncio")
    parser.add_argument("--single", type=int, default=3000, help="events POSTed one by one")
    parser.add_argument("--batches", type=int, default=300, help="POSTs of 100 events")
    parser.add_argument("--ingest-conns", type=int, default=4, help="concurrent POSTing clients")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "stream.json"))
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--profile", metavar="OUT", help="cProfile the server's event loop "
                        "during each fan-out into OUT.1, OUT.2, ... (bench/profiled.py)")
    parser.add_argument("--spy", metavar="PREFIX",
                        help="profile the server during each phase with py-spy into "
                        "PREFIX-PHASE.txt (collapsed stacks)")
    args = parser.parse_args()
    nofile = raise_nofile()
    load_before = os.getloadavg()
    counts = [int(c) for c in args.clients.split(",") if c]
    tmp = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    data = tmp / "data"
    key = subprocess.run(
        [sys.executable, "-m", "tocsin", "keys", "create", "--data-dir", str(data), "--role",
         "sensor", "--name", "bench"], capture_output=True, text=True, check=True,
    ).stdout.strip()
    port = free_port()
    server = Server(data, port, profile=args.profile)  # inherits the raised limit
    try:
        fan = [fan_out(server, key, port, n, args.procs, f"F{i}", args.spy, args.client)
               for i, n in enumerate(counts)]
        ing = ingest(server, key, args.single, args.batches, args.ingest_conns, args.spy)
    finally:
        code = server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nstream fan-out (one detection; latency from POST sent to first transition "
          f"received)\n{'clients':>8} {'got':>6} {'ack ms':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'all ms':>7} {'cpu ms':>7}")
    for f in fan:
        print(f"{f['clients']:>8} {f['received']:>6} {f['ack_ms']:>7} {f['p50_ms']:>7} "
              f"{f['p99_ms']:>7} {f['max_ms']:>7} {f['all_ms']!s:>7} {f['server_cpu_ms']:>7}")
    print(f"\ningest ({ing['conns']} concurrent clients)\n"
          f"  1 event per POST:    {ing['single_events_per_s']:>6} events/s "
          f"({ing['single_events']} in {ing['single_s']} s)\n"
          f"  100 events per POST: {ing['batched_events_per_s']:>6} events/s "
          f"({ing['batched_events']} in {ing['batched_s']} s)")
    print(f"server exit code {code}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": shlex.join(["python", "bench/stream.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine(),
        "nofile": nofile, "fan_out": fan, "ingest": ing, "server_exit_code": code,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        raise_nofile()
        asyncio.run(_worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
    else:
        main()
