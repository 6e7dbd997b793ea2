"""Fan-out: tocsin's SSE stream to N clients against Mosquitto delivering to N MQTT subscribers,
and the memory of `tocsin serve` holding 10,000 streams with every region under alert.

    python bench/fanout.py [--clients 1000,10000] [--procs 2] [--rounds 3] [--workers 1,2]
                           [--hold 10000] [--baseline-src DIR]

One run, on this machine, for each N in turn, `--rounds` times (SSE then MQTT in each round, so
each ratio is of two fan-outs made one after the other; the tables give medians over rounds):

* SSE: `bench/stream.py`'s fan-out: N raw-socket SSE clients on `/api/v1/stream` of a fresh
  `tocsin serve` (rate limits lifted), one detection POSTed; per client, the time from just
  before the POST until the first transition of that detection arrives. This includes the
  ingest (validation, the engine's decision, the fsynced commit) before the fan-out starts, so
  the time the POST took to be acknowledged (`ack`) is also given, and the fan-out alone is
  estimated as the last arrival minus the ack.
* MQTT: a Mosquitto broker of its own (Debian's `mosquitto`, started on a free port with no
  persistence and the open-files limit raised), N raw-socket MQTT 3.1.1 subscribers (clean
  session, QoS 0) on one topic, and one PUBLISH of the very bytes the SSE clients received for
  that detection (the whole batch of its transitions); per subscriber, the time from just before
  the PUBLISH is written until it arrives.

Clients of both run in `--procs` worker processes on the same machine and stop reading after
the first message, as the SSE clients do. Times are CLOCK_MONOTONIC, shared by all processes.

Stream workers: in each round, for each count in `--workers` in turn, the server is restarted
with `--stream-workers W`, and the largest client count connects to the workers' shared port
instead (each worker tails the committed log; the kernel spreads connections over them).

Before/after: with `--baseline-src DIR` (the `src` directory of another checkout, e.g. a `git
worktree` of an earlier commit), each round also fans out from a server run from that code
(`PYTHONPATH=DIR`) on the same data, right after this code's fan-out.

Memory: after the fan-outs, an operator raises `air_raid` on all 27 oblasts (every one of the
1,769 hromadas under alert); the server is restarted (it rebuilds that state from the log),
`--hold` SSE clients connect and stay, and the server's RSS is read from /proc (VmRSS now,
VmHWM the peak of that process). The peak of the first process, which did the fan-outs, is
reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import stream as sse  # bench/stream.py  # noqa: I001
from clients import TOPIC, connect_packet, publish_packet, subscribe_packet
from common import free_port, line_chart, pct, raise_nofile, rss_mb, table, write_result

# --- MQTT subscribers (a worker process) -------------------------------------------------------


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(1)
    mult, length = 1, 0
    while True:
        b = (await reader.readexactly(1))[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return head[0], await reader.readexactly(length)


async def _subscriber(port: int, name: str, ready: list[int], total: int, done: asyncio.Event,
                      times: list[float], gate: asyncio.Semaphore, marker: bytes,
                      hang_up: asyncio.Event) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(connect_packet(name))
        kind, body = await _read_packet(reader)
        if kind != 0x20 or body[1] != 0:
            raise ConnectionError(f"CONNACK refused: {body!r}")
        writer.write(subscribe_packet(TOPIC))
        kind, body = await _read_packet(reader)
        if kind != 0x90 or body[-1] == 0x80:
            raise ConnectionError(f"SUBACK refused: {body!r}")
        ready[0] += 1
        if ready[0] == total:
            done.set()
    buf = b""
    while marker not in buf:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf = buf[-len(marker):] + chunk
    times.append(time.monotonic())
    try:
        await hang_up.wait()
    finally:
        writer.close()


async def _mqtt_worker(port: int, n: int, tag: str, marker: bytes) -> None:
    ready = [0]
    done = asyncio.Event()
    hang_up = asyncio.Event()
    times: list[float] = []
    gate = asyncio.Semaphore(200)
    tasks = [asyncio.create_task(_subscriber(port, f"{tag}-{i}", ready, n, done, times, gate,
                                             marker, hang_up)) for i in range(n)]
    waiter = asyncio.create_task(done.wait())
    finished, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if waiter not in finished:
        for t in finished:
            t.result()  # raises what went wrong
    print("READY", flush=True)
    deadline = time.monotonic() + 120
    while len(times) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    print(json.dumps(times), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    hang_up.set()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- SSE holders (a worker process): connect and stay --------------------------------------------


async def _hold_worker(port: int, n: int) -> None:
    gate = asyncio.Semaphore(200)
    writers: list[asyncio.StreamWriter] = []

    async def one() -> None:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/v1/stream HTTP/1.1\r\nHost: bench\r\n\r\n")
            buf = b""
            while b": connected" not in buf:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("stream closed before it started")
                buf += chunk
            writers.append(writer)

    await asyncio.gather(*(one() for _ in range(n)))
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for w in writers:
        w.close()


# --- the orchestrator ----------------------------------------------------------------------------


class Mosquitto:
    """A broker of our own on a free port (no persistence), with a high open-files limit."""

    def __init__(self, tmp: Path, nofile: int) -> None:
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        conf = tmp / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nmax_queued_messages 100000\n"
                        "log_dest none\n", encoding="utf-8")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen([exe, "-c", str(conf)], preexec_fn=limits,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with __import__("socket").create_connection(("127.0.0.1", self.port), 0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def mqtt_fan_out(broker: Mosquitto, n: int, procs: int, payload: bytes, marker: bytes,
                 tag: str, client: str = "epoll") -> dict[str, Any]:
    share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    clients = Path(__file__).with_name("clients.py")
    workers = [subprocess.Popen([sys.executable, str(clients), "mqtt", str(broker.port), str(k),
                                 f"{tag}-{i}", marker.decode()] if client == "epoll" else
                                [sys.executable, __file__, "--mqtt-worker", str(broker.port),
                                 str(k), f"{tag}-{i}", marker.decode()],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for i, k in enumerate(share) if k]
    t_open = time.monotonic()
    for w in workers:
        assert w.stdout is not None
        line = w.stdout.readline()
        if line.strip() != "READY":
            raise SystemExit(f"an MQTT worker failed: {line!r}")
    opened_s = time.monotonic() - t_open
    import socket

    with socket.create_connection(("127.0.0.1", broker.port)) as pub:
        pub.sendall(connect_packet(f"{tag}-pub"))
        pub.recv(4)
        packet = publish_packet(TOPIC, payload)
        cpu0 = sse.cpu_s(broker.proc.pid)
        clients0 = sum(sse.cpu_s(w.pid) for w in workers)
        t0 = time.monotonic()
        pub.sendall(packet)
        arrivals: list[float] = []
        for w in workers:
            assert w.stdout is not None
            arrivals += json.loads(w.stdout.readline())
        cpu = sse.cpu_s(broker.proc.pid) - cpu0
        clients_cpu = sum(sse.cpu_s(w.pid) for w in workers) - clients0
        pub.sendall(b"\xe0\x00")  # DISCONNECT
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("\n")
        w.stdin.flush()
    for w in workers:
        w.wait(60)
    lat = [(t - t0) * 1000 for t in arrivals]
    return {"clients": n, "received": len(lat), "open_s": round(opened_s, 2),
            "payload_bytes": len(payload), "broker_cpu_ms": round(cpu * 1000),
            "clients_cpu_ms": round(clients_cpu * 1000),
            "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1),
            "all_ms": round(max(lat), 1) if len(lat) == n else None}


def sse_payload(server: sse.Server, seq: int, count: int) -> bytes:
    """The bytes an SSE client received for the detection logged at `seq` (its whole batch):
    its `count` transitions follow it in the log, and a stream resumed there replays them."""
    first, last = seq + 1, seq + count
    end_marker = f"id: {last}\n".encode()
    out = b""
    with httpx.stream("GET", server.base + "/api/v1/stream", params={"since": first - 1},
                      timeout=30) as stream:
        for chunk in stream.iter_bytes():
            out += chunk
            if end_marker in out and out.endswith(b"\n\n"):
                break
    start = out.index(f"id: {first}\n".encode())
    end = out.index(b"\n\n", out.index(end_marker)) + 2
    return out[start:end]


def raise_everything(server: sse.Server, key: str) -> int:
    """An operator air-raid alert on every oblast; the transitions it caused."""
    from tocsin.geo import load_region_set

    regions = load_region_set("ua-hromadas")
    roots = sorted(rid for rid, r in regions.regions.items() if r.parent is None)
    ev = {"id": "raise-all", "type": "operator_alert", "time": sse.stamp(-0.2), "source": "bench",
          "regions": roots, "alert_type": "air_raid", "action": "raise", "operator": "bench"}
    r = httpx.post(server.base + "/api/v1/events", json=ev, timeout=60,
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.text
    return int(r.json()["accepted"][0]["transitions"])


def hold(server: sse.Server, port: int, n: int, procs: int) -> dict[str, Any]:
    share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    workers = [subprocess.Popen([sys.executable, __file__, "--hold-worker", str(port), str(k)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for k in share if k]
    for w in workers:
        assert w.stdout is not None
        if w.stdout.readline().strip() != "READY":
            raise SystemExit("a holding worker failed")
    connected = int(server.gauge("tocsin_stream_clients"))
    time.sleep(1.0)
    now, peak = rss_mb(server.proc.pid)
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("\n")
        w.stdin.flush()
    for w in workers:
        w.wait(60)
    return {"clients": n, "connected": connected, "rss_mb": round(now), "hwm_mb": round(peak)}


def _med(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def summarise(n: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds of one client count, each ratio taken within its round."""
    sse_all = [r["sse"]["all_ms"] for r in rounds]
    mqtt_all = [r["mqtt"]["all_ms"] for r in rounds]
    net = [r["sse"]["all_ms"] - r["sse"]["ack_ms"] if r["sse"]["all_ms"] else None
           for r in rounds]
    ratio = [a / b if a and b else None for a, b in zip(sse_all, mqtt_all, strict=True)]
    ratio_net = [a / b if a and b else None for a, b in zip(net, mqtt_all, strict=True)]
    out: dict[str, Any] = {
        "clients": n, "rounds": rounds, "payload_bytes": rounds[0]["mqtt"]["payload_bytes"],
        "sse_p50_ms": _med([r["sse"]["p50_ms"] for r in rounds]),
        "sse_p99_ms": _med([r["sse"]["p99_ms"] for r in rounds]),
        "sse_all_ms": _med(sse_all), "sse_ack_ms": _med([r["sse"]["ack_ms"] for r in rounds]),
        "sse_fanout_only_ms": _med(net),
        "mqtt_p50_ms": _med([r["mqtt"]["p50_ms"] for r in rounds]),
        "mqtt_all_ms": _med(mqtt_all), "ratio_all": _med(ratio),
        "ratio_fanout_only": _med(ratio_net),
        "sse_all_each": sse_all, "mqtt_all_each": mqtt_all,
        "ratio_each": [round(x, 2) if x else None for x in ratio],
        "sse_cpu_each": [r["sse"]["server_cpu_ms"] for r in rounds],
        "load_each": [round(r["load"][0], 1) for r in rounds],
    }
    if all(r["baseline"] for r in rounds):
        before = [r["baseline"]["all_ms"] for r in rounds]
        out["baseline_all_ms"] = _med(before)
        out["baseline_cpu_each"] = [r["baseline"]["server_cpu_ms"] for r in rounds]
        out["baseline_all_each"] = before
        out["ratio_baseline"] = _med([a / b if a and b else None
                                      for a, b in zip(sse_all, before, strict=True)])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", default="1000,10000", help="comma-separated client counts")
    parser.add_argument("--procs", type=int, default=2, help="client worker processes")
    parser.add_argument("--client", choices=("epoll", "asyncio"), default="epoll",
                        help="client workers, for both SSE and MQTT: one epoll loop per process "
                        "(bench/clients.py) or asyncio streams")
    parser.add_argument("--rounds", type=int, default=3, help="fan-outs of each kind per "
                        "client count (medians are reported)")
    parser.add_argument("--baseline-src", metavar="DIR", help="also fan out, in each round, "
                        "from a server run from this source tree (PYTHONPATH), for a before/after")
    parser.add_argument("--workers", default="1,2", help="stream worker counts to compare on "
                        "the largest client count (empty: skip)")
    parser.add_argument("--hold", type=int, default=10000, help="streams held for the memory "
                        "figure (0: skip)")
    args = parser.parse_args(argv)
    nofile = raise_nofile()
    load_before = os.getloadavg()
    counts = [int(c) for c in args.clients.split(",") if c]
    tmp = Path(tempfile.mkdtemp(prefix="tocsin-fanout-"))
    made = [0]

    def fresh() -> tuple[Path, str]:
        # A fan-out on a fresh log: the same detection then decides the same transitions every
        # time (on a log where the last round's alerts are still in force, it decides few)
        made[0] += 1
        where = tmp / f"data-{made[0]}"
        admin = subprocess.run(
            [sys.executable, "-m", "tocsin", "keys", "create", "--data-dir", str(where),
             "--role", "admin", "--name", "bench"], capture_output=True, text=True, check=True,
        ).stdout.strip()
        return where, admin

    data, key = fresh()
    port = free_port()
    broker = Mosquitto(tmp, nofile)
    server = sse.Server(data, port)
    rows: list[dict[str, Any]] = []
    memory: dict[str, Any] = {}
    workers: dict[int, list[dict[str, Any]]] = {}
    try:
        idle, _ = rss_mb(server.proc.pid)
        memory["idle_rss_mb"] = round(idle)
        server.stop()
        for n in counts:
            rounds: list[dict[str, Any]] = []
            for r in range(args.rounds):
                where, k = fresh()
                server = sse.Server(where, port)
                s = sse.fan_out(server, k, port, n, args.procs, "F", client=args.client)
                payload = sse_payload(server, s["seq"], s["transitions_per_client"])
                server.stop()
                base = None
                if args.baseline_src:
                    where, k = fresh()
                    server = sse.Server(where, port, env_extra={"PYTHONPATH": args.baseline_src})
                    base = sse.fan_out(server, k, port, n, args.procs, "F", client=args.client)
                    server.stop()
                m = mqtt_fan_out(broker, n, args.procs, payload, b'"causes":["F"]', f"m{r}",
                                 args.client)
                rounds.append({"sse": s, "mqtt": m, "baseline": base, "load": os.getloadavg()})
                print(f"  {n} clients, round {r + 1}: SSE all {s['all_ms']} ms"
                      f" (server CPU {s['server_cpu_ms']} ms, clients {s['clients_cpu_ms']} ms)"
                      + (f", before {base['all_ms']} ms" if base else "")
                      + f", MQTT all {m['all_ms']} ms (broker CPU {m['broker_cpu_ms']} ms,"
                      f" clients {m['clients_cpu_ms']} ms); load {os.getloadavg()[0]:.1f}",
                      file=sys.stderr, flush=True)
            rows.append(summarise(n, rounds))
        if args.workers and counts:
            ws = [int(x) for x in args.workers.split(",") if x]
            for r in range(args.rounds):
                for w in ws:
                    where, k = fresh()
                    stream_port = free_port()
                    server = sse.Server(where, port, ("--stream-workers", str(w),
                                                      "--stream-port", str(stream_port)))
                    s = sse.fan_out(server, k, stream_port, counts[-1], args.procs, "W",
                                    client=args.client)
                    workers.setdefault(w, []).append(s)
                    print(f"  {counts[-1]} clients on {w} stream workers, round {r + 1}: "
                          f"all {s['all_ms']} ms; load {os.getloadavg()[0]:.1f}",
                          file=sys.stderr, flush=True)
                    server.stop()
        server = sse.Server(data, port)
        if args.hold:
            # every hromada under alert; then a fresh server (recovered from the log, as after
            # any restart) holds the streams, so the figure is not the fan-outs' leftovers
            memory["raise_all_transitions"] = raise_everything(server, key)
            memory["fanout_run_hwm_mb"] = round(rss_mb(server.proc.pid)[1])
            server.stop()
            server = sse.Server(data, port)
            memory["restarted_idle_rss_mb"] = round(rss_mb(server.proc.pid)[0])
            memory.update(hold(server, port, args.hold, args.procs))
    finally:
        code = server.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(
        f"fan-out of one detection: ms until the first transition reached each client "
        f"(medians of {args.rounds} rounds)",
        ["clients", "SSE p50", "SSE p99", "SSE all", "SSE ack", "SSE all-ack", "MQTT p50",
         "MQTT all", "ratio all", "ratio net", "before: SSE all", "after/before"],
        [[r["clients"], r["sse_p50_ms"], r["sse_p99_ms"], r["sse_all_ms"], r["sse_ack_ms"],
          r["sse_fanout_only_ms"], r["mqtt_p50_ms"], r["mqtt_all_ms"], f"{r['ratio_all']}x",
          f"{r['ratio_fanout_only']}x", r.get("baseline_all_ms", "-"),
          f"{r['ratio_baseline']}x" if r.get("ratio_baseline") else "-"]
         for r in rows]))
    for row in rows:
        print(f"  {row['clients']}: SSE all per round {row['sse_all_each']}, MQTT all per round "
              f"{row['mqtt_all_each']}, ratio per round {row['ratio_each']}; server CPU per "
              f"fan-out {row['sse_cpu_each']} ms (before: {row.get('baseline_cpu_each', '-')}); "
              f"load per round {row['load_each']}")
    print(f"payload {rows[0]['payload_bytes'] if rows else '-'} bytes; "
          f"server exit code {code}")
    if workers:
        first = min(workers)
        ratios = {w: [a["all_ms"] / b["all_ms"] for a, b in zip(runs, workers[first], strict=True)
                      if a["all_ms"] and b["all_ms"]] for w, runs in workers.items()}
        print(table(
            f"fan-out to {counts[-1]:,} clients from stream workers (ms from POST, medians of "
            f"{args.rounds} rounds, workers alternated within each round)",
            ["workers", "p50", "p99", "all", "ack", "all vs first (median of pairs)",
             "all per round"],
            [[w, _med([x["p50_ms"] for x in runs]), _med([x["p99_ms"] for x in runs]),
              _med([x["all_ms"] for x in runs]), _med([x["ack_ms"] for x in runs]),
              f"{_med(ratios[w]):.2f}x" if ratios[w] else "-",
              " ".join(str(x["all_ms"]) for x in runs)]
             for w, runs in sorted(workers.items())]))
    if memory.get("rss_mb"):
        print(f"\ntocsin serve RSS: idle {memory['idle_rss_mb']} MB; peak during the fan-outs "
              f"{memory.get('fanout_run_hwm_mb')} MB; restarted with every hromada under alert "
              f"{memory.get('restarted_idle_rss_mb')} MB, then holding "
              f"{memory.get('connected', 0):,} streams: {memory.get('rss_mb')} MB "
              f"(peak {memory.get('hwm_mb')} MB)")
    write_result("fanout", {"rows": rows, "memory": memory, "nofile": nofile,
                            "workers": {str(k): v for k, v in workers.items()},
                            "rounds": args.rounds, "client": args.client,
                            "load_before": load_before,
                            "load_after": os.getloadavg(), "server_exit_code": code})
    if len(rows) > 1:
        from common import RESULTS

        line_chart(RESULTS / "fanout.svg", "fan-out: last client reached", "clients",
                   "ms (log)",
                   [("tocsin SSE (from POST)", [(r["clients"], r["sse_all_ms"]) for r in rows]),
                    ("tocsin SSE (after ack)", [(r["clients"], r["sse_fanout_only_ms"])
                                                for r in rows]),
                    ("Mosquitto MQTT", [(r["clients"], r["mqtt_all_ms"]) for r in rows])],
                   log_y=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--mqtt-worker":
        raise_nofile()
        asyncio.run(_mqtt_worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                 sys.argv[5].encode()))
    elif len(sys.argv) == 4 and sys.argv[1] == "--hold-worker":
        raise_nofile()
        asyncio.run(_hold_worker(int(sys.argv[2]), int(sys.argv[3])))
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        raise SystemExit(main())
