"""Time the alert engine: detection latency with many live tracks, and log replay throughput.

    python bench/engine.py [--tracks 0,100,1000,5000] [--samples 300] [--repeats 3]
                           [--events 100000] [--seed 1] [--clock wall|cpu]
                           [--out bench/results/engine.json]

Latency is measured around `Engine.apply` alone (no ledger, no log, events parsed beforehand)
on `ua-hromadas`, with N Shahed-type drones already live, spread over Ukraine with random
headings. Three kinds of detection are timed: a new track (its whole footprint is drawn and every
region it touches re-decided), an update of a live track that moved 0.5 km (under
`recompute_km`, so its footprint is kept), and an update that moved 2 km (redrawn). Simulated
time advances 1 ms per event so no dead-reckoning timer fires inside a sample; each case is
repeated and the median of the per-repeat p50 and p99 is reported. `--clock cpu` times latency
with this thread's CPU clock, which other work on a shared machine disturbs less.

Replay throughput feeds a synthetic night (drones reporting every 10-30 s, a tick every second,
operator alerts, threat levels and impacts) through `replay_rows` (what `tocsin replay` runs),
from a `MemoryLog` and from a SQLite file, after the log was first produced by a `Ledger`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import origins  # noqa: I001 - the benchmarks' shared helpers, next to this file
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import RegionSet, load_region_set
from tocsin.ledger import Ledger, replay_rows
from tocsin.model import Event, format_time, parse_event
from tocsin.store import LogEntry, MemoryLog, SQLiteLog
from tocsin.store.leaves import entry_leaf_hash
from tocsin.threats import load_catalog
from tocsin.threats.tracks import GEOD, advance

T0 = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
DRONE_KMH = 185.0
HERE = Path(__file__).resolve().parent
# Where waves come from and what they fly at (lat, lon), for the synthetic night.
LAUNCHES = [(46.9, 36.6), (50.6, 37.6), (52.2, 33.6), (45.7, 31.4), (51.5, 35.4)]
TARGETS = [(50.45, 30.52), (49.99, 36.23), (48.46, 35.05), (46.48, 30.72), (49.84, 24.03),
           (47.84, 35.14), (49.59, 34.55), (49.23, 28.47), (51.49, 31.29), (47.91, 33.39)]
RAIONS = ["UA63080000000032022", "UA63140000000096278", "UA63040000000023521",
          "UA59080000000057897", "UA23060000000070350"]
OBLASTS = ["UA23000000000064947", "UA63000000000041885", "UA59000000000057109",
           "UA12000000000090473"]


def stamp(seconds: float) -> str:
    return format_time(T0 + timedelta(microseconds=round(seconds * 1e6)))


def detection(track: str, t: float, lat: float, lon: float, heading: float) -> dict[str, Any]:
    return {"id": f"{track}@{t:.3f}", "type": "detection", "time": stamp(t), "source": "bench",
            "track": track, "object": "drone", "weapon": "shahed-136",
            "position": {"lat": round(lat, 5), "lon": round(lon, 5)},
            "heading_deg": round(heading % 360.0, 1) % 360.0, "speed_kmh": DRONE_KMH}




def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[98]


# --- latency -------------------------------------------------------------------------------------


class Bench:
    """One engine with `n` live drones, fed pre-parsed events at 1 ms steps."""

    def __init__(
        self, regions: RegionSet, n: int, rng: random.Random, clock: Callable[[], int]
    ) -> None:
        self.engine = Engine(regions, load_catalog(), Policy())
        self.clock = clock
        self.rng = rng
        self.seq = 1
        self.t = 0.0
        self.apply(parse_event({"id": "t0", "type": "tick", "time": stamp(0), "source": "b"}))
        self.live: list[tuple[str, float, float, float, int]] = []  # id, lat, lon, heading, moves
        for i, (lat, lon) in enumerate(origins(regions, n, rng)):
            heading = rng.uniform(0.0, 360.0)
            self.apply(parse_event(detection(f"L{i}", 0.0, lat, lon, heading)))
            self.live.append((f"L{i}", lat, lon, heading, 0))
        self.points = origins(regions, 2000, rng)

    def apply(self, event: Event) -> int:
        start = self.clock()
        step = self.engine.apply(event, self.seq)
        took = self.clock() - start
        self.seq += 1 + len(step.transitions)
        return took

    def tick(self) -> float:
        self.t += 0.001
        return self.t

    def new_track(self, k: int) -> int:
        lat, lon = self.points[k % len(self.points)]
        t = self.tick()
        took = self.apply(parse_event(detection(f"N{k}", t, lat, lon, self.rng.uniform(0, 360))))
        # end it again (untimed) so the number of live tracks stays n
        self.apply(parse_event({"id": f"end-N{k}", "type": "track_end", "time": stamp(t),
                                "source": "bench", "track": f"N{k}", "reason": "lost"}))
        return took

    def update(self, moved_m: float, redraw: bool) -> int:
        i = self.rng.randrange(len(self.live))
        tid, lat, lon, heading, moves = self.live[i]
        # a redrawing update moves on from the last footprint; a small one stays near it
        step = moves + 1 if redraw else 1
        lat2, lon2 = advance(lat, lon, heading, moved_m * step)
        if redraw:
            self.live[i] = (tid, lat, lon, heading, step)
        t = self.tick()
        return self.apply(parse_event(detection(tid, t, lat2, lon2, heading)))


def latency(
    regions: RegionSet, n: int, samples: int, repeats: int, seed: int, clock: Callable[[], int]
) -> dict[str, Any]:
    rng = random.Random(seed)
    start = time.perf_counter()
    bench = Bench(regions, n, rng, clock)
    setup_s = time.perf_counter() - start
    cases: dict[str, Callable[[int], int]] = {"new track": bench.new_track}
    if n:
        cases["update 0.5 km"] = lambda _k: bench.update(500.0, False)
        cases["update 2 km (redraw)"] = lambda _k: bench.update(2000.0, True)
    result: dict[str, Any] = {"live_tracks": n, "setup_s": round(setup_s, 2)}
    k = 0
    for label, run in cases.items():
        for _ in range(50):  # warm-up
            run(k)
            k += 1
        p50s, p99s = [], []
        for _ in range(repeats):
            times = []
            for _ in range(samples):
                times.append(run(k) / 1000.0)
                k += 1
            p50, p99 = percentiles(times)
            p50s.append(p50)
            p99s.append(p99)
        result[label] = {"p50_us": round(statistics.median(p50s), 1),
                         "p99_us": round(statistics.median(p99s), 1)}
    result["active_alerts"] = len(bench.engine.alerts)
    return result


# --- replay --------------------------------------------------------------------------------------


def synthetic_night(n_events: int, seed: int) -> list[dict[str, Any]]:
    """A realistic log of about `n_events` raw events, in time order."""
    rng = random.Random(seed)
    timed: list[tuple[float, int, dict[str, Any]]] = []
    order = 0

    def put(t: float, raw: dict[str, Any]) -> None:
        nonlocal order
        order += 1
        timed.append((t, order, raw))

    # a drone every ~95 s, each in the air for 1-3 h reporting every 10-30 s: some 50-90 live
    # at once and ~3 events a second with the ticks; run long enough, then cut at `n_events`
    duration = n_events / 2.5
    drone = 0
    t = 0.0
    while t < duration:
        t += rng.expovariate(1 / 95.0)
        start, target = rng.choice(LAUNCHES), rng.choice(TARGETS)
        heading, _, dist = GEOD.inv(start[1], start[0], target[1], target[0])
        flight = dist / (DRONE_KMH / 3.6) * rng.uniform(0.4, 1.0)
        tid = f"D{drone}"
        drone += 1
        s = 0.0
        while s < flight:
            lat, lon = advance(start[0], start[1], heading, DRONE_KMH / 3.6 * s)
            put(t + s, detection(tid, t + s, lat, lon, heading + rng.uniform(-2, 2)))
            s += rng.uniform(10.0, 30.0)
        end = t + s
        fate = rng.random()
        if fate < 0.2:
            lat, lon = advance(start[0], start[1], heading, DRONE_KMH / 3.6 * s)
            put(end, {"id": f"imp-{tid}", "type": "impact", "time": stamp(end),
                      "source": "police", "position": {"lat": round(lat, 5), "lon": round(lon, 5)},
                      "kind": "explosion", "track": tid})
        else:
            put(end, {"id": f"end-{tid}", "type": "track_end", "time": stamp(end),
                      "source": "bench", "track": tid,
                      "reason": "intercepted" if fate < 0.8 else "lost"})
    n_ops = 0
    for t_op in range(300, int(duration), 900):
        raion = rng.choice(RAIONS)
        for action, dt in (("raise", 0), ("clear", rng.randint(600, 2400))):
            n_ops += 1
            put(t_op + dt, {"id": f"op-{n_ops}", "type": "operator_alert",
                            "time": stamp(t_op + dt), "source": "ops", "regions": [raion],
                            "alert_type": "artillery_shelling", "action": action,
                            "operator": "duty"})
    for t_lvl in range(600, int(duration), 3600):
        n_ops += 1
        put(t_lvl, {"id": f"lvl-{n_ops}", "type": "threat_level", "time": stamp(t_lvl),
                    "source": "ops", "regions": [rng.choice(OBLASTS)],
                    "level": rng.randint(0, 3), "operator": "duty"})
    timed.sort(key=lambda x: (x[0], x[1]))
    out: list[dict[str, Any]] = []
    second = -1
    for t_ev, _, raw in timed:
        while second < int(t_ev):
            second += 1
            out.append({"id": f"tick-{second}", "type": "tick", "time": stamp(second),
                        "source": "clock"})
        out.append(raw)
        if len(out) >= n_events:
            break
    return out[:n_events]


def replay(regions: RegionSet, n_events: int, seed: int, tmp: Path) -> dict[str, Any]:
    raws = synthetic_night(n_events, seed)
    kinds: dict[str, int] = {}
    for raw in raws:
        kinds[raw["type"]] = kinds.get(raw["type"], 0) + 1
    catalog = load_catalog()
    ledger = Ledger(MemoryLog(), lambda: Engine(regions, catalog, Policy()))
    start = time.perf_counter()
    for raw in raws:
        ledger.submit([raw])
    ingest_s = time.perf_counter() - start
    entries: list[LogEntry] = list(ledger.log.read())
    n_transitions = len(entries) - len(raws)
    result: dict[str, Any] = {
        "events": len(raws),
        "by_type": dict(sorted(kinds.items())),
        "transitions": n_transitions,
        "simulated_hours": round(
            (ledger.engine.clock - T0).total_seconds() / 3600, 2  # type: ignore[operator]
        ),
        "ingest_events_per_s": round(len(raws) / ingest_s),
    }
    sqlite = SQLiteLog(tmp / "replay.db")
    for i in range(0, len(entries), 20_000):
        chunk = entries[i : i + 20_000]
        sqlite.append(chunk, [entry_leaf_hash(e) for e in chunk])
    for label, log in (("memory", ledger.log), ("sqlite", sqlite)):
        engine = Engine(regions, catalog, Policy())
        start, cpu = time.perf_counter(), time.process_time()
        # what `tocsin replay` reads: (seq, kind, body) rows (`EventLog.read_bodies`)
        last = replay_rows(engine, log.read_bodies())
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert last == len(entries)
        result[f"replay_{label}_s"] = round(took, 2)
        result[f"replay_{label}_cpu_s"] = round(cpu, 2)
        result[f"replay_{label}_events_per_s"] = round(len(raws) / took)
        result[f"replay_{label}_events_per_cpu_s"] = round(len(raws) / cpu)
        result[f"replay_{label}_entries_per_s"] = round(len(entries) / took)
    sqlite.close()
    return result


# --- report --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                      .splitlines() if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    return {"cpus": os.cpu_count(), "cpu": cpu, "ram_gb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write the JSON results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tracks", default="0,100,1000,5000",
                        help="comma-separated numbers of live tracks")
    parser.add_argument("--samples", type=int, default=300, help="timed detections per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--events", type=int, default=100_000, help="events in the replayed log")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="latency clock: perf_counter_ns or this thread's CPU time")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "engine.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    regions = load_region_set("ua-hromadas")
    info = machine()
    load = round(os.getloadavg()[0], 2)
    print(f"{info['cpus']} x {info['cpu']}, {info['ram_gb']} GB, Python {info['python']}")
    print(f"{regions!r}; load average {os.getloadavg()[0]:.1f}; {args.clock} clock")
    print()
    print(f"{'live tracks':>11}  {'detection':<22}{'p50 µs':>10}{'p99 µs':>10}")
    rows = []
    for n in (int(x) for x in args.tracks.split(",") if x):
        clock = time.perf_counter_ns if args.clock == "wall" else time.thread_time_ns
        row = latency(regions, n, args.samples, args.repeats, args.seed, clock)
        rows.append(row)
        for label in ("new track", "update 0.5 km", "update 2 km (redraw)"):
            if label in row:
                r = row[label]
                print(f"{n:>11}  {label:<22}{r['p50_us']:>10.1f}{r['p99_us']:>10.1f}")
        sys.stdout.flush()
    print()
    with tempfile.TemporaryDirectory() as tmp:
        rep = replay(regions, args.events, args.seed, Path(tmp))
    print(f"replay of {rep['events']:,} events ({rep['transitions']:,} transitions, "
          f"{rep['simulated_hours']} h simulated):")
    print(f"  ingest through Ledger + MemoryLog  {rep['ingest_events_per_s']:>9,} events/s")
    for label in ("memory", "sqlite"):
        print(f"  replay from {label:<17} {rep[f'replay_{label}_events_per_s']:>9,} events/s"
              f"  ({rep[f'replay_{label}_entries_per_s']:,} log entries/s; "
              f"{rep[f'replay_{label}_events_per_cpu_s']:,} events per CPU second)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB; {time.perf_counter() - started:.0f} s in all")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python bench/engine.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": info, "clock": args.clock, "load_average_at_start": load,
        "latency": rows, "replay": rep, "peak_rss_mb": round(peak_mb),
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
