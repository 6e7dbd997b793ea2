"""Run every benchmark, then print and save the goals against what was measured.

    python bench/run_all.py [--quick] [--only engine,footprint,fanout,replay]

Each benchmark runs as its own process, prints its table and writes `bench/results/NAME.json`
(and an SVG where a curve says more than a number); this script then reads those files and
writes `bench/results/summary.json`. `--quick` runs smaller versions of each (a few minutes in
all) to check that everything works; the figures in docs/performance.md come from the full run
(about 25 minutes on 2 vCPUs).

Needs: PostgreSQL with PostGIS at 127.0.0.1:5432 (Debian's `postgresql-15-postgis-3`) and
Debian's `mosquitto` binary; a benchmark whose service is missing fails with the reason and the
others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import RESULTS, line_chart, table, write_result  # noqa: I001

HERE = Path(__file__).resolve().parent

FULL = {
    "engine": ["--clock", "cpu", "--tracks", "0,100,500,1000,2000,5000", "--events", "100000"],
    "footprint": ["--n", "1000"],
    "fanout": ["--clients", "1000,10000", "--hold", "10000"],
    "replay": ["--events", "1000000"],
}
QUICK = {
    "engine": ["--clock", "cpu", "--tracks", "0,100,1000", "--samples", "100", "--repeats", "1",
               "--events", "10000"],
    "footprint": ["--n", "200"],
    "fanout": ["--clients", "1000", "--hold", "2000", "--rounds", "1", "--workers", ""],
    "replay": ["--events", "50000", "--record-limit", "2000"],
}


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def engine_plot(data: dict[str, Any]) -> None:
    """p50 and p99 of each kind of detection against the number of live tracks."""
    series = []
    for label in ("new track", "update 2 km (redraw)", "update 0.5 km"):
        for q in ("p50", "p99"):
            pts = [(float(row["live_tracks"]), row[label][f"{q}_us"] / 1000)
                   for row in data["latency"] if label in row]
            if pts:
                series.append((f"{label} {q}", pts))
    line_chart(RESULTS / "engine.svg", "engine decision latency on ua-hromadas",
               "live tracks", "ms per detection (log)", series, log_y=True)


def summary() -> dict[str, Any]:
    """Goals against the measured figures, from the result files."""
    rows: list[dict[str, Any]] = []
    eng, fp, fan, rep = load("engine"), load("footprint"), load("fanout"), load("replay")
    if eng:
        at100 = next((r for r in eng["latency"] if r["live_tracks"] == 100), None)
        if at100:
            rows.append({"goal": "p99 <= 1 ms per detection, 100 live tracks (new track)",
                         "measured": f"{at100['new track']['p99_us'] / 1000:.2f} ms",
                         "met": at100["new track"]["p99_us"] <= 1000})
    if fp:
        s = fp["summary"]
        rows.append({"goal": "footprint matching >= 5x faster than PostGIS",
                     "measured": f"{s['ratio_roundtrip_geomean']}x (round trip), "
                                 f"{s['ratio_server_geomean']}x (server side); match alone "
                                 f"{s.get('ratio_server_match_only_geomean')}x; geometric means",
                     "met": s["ratio_server_geomean"] >= 5})
    if fan:
        for r in fan["rows"]:
            rows.append({"goal": f"SSE fan-out <= 1.0x Mosquitto's ({r['clients']:,} clients)",
                         "measured": f"{r['ratio_all']}x from POST, {r['ratio_fanout_only']}x "
                                     "after the ack (medians of paired rounds)",
                         "met": r["ratio_all"] is not None and r["ratio_all"] <= 1})
        mem = fan.get("memory") or {}
        if mem.get("rss_mb"):
            rows.append({"goal": f"<= 300 MB RSS serving all regions to "
                                 f"{mem['clients']:,} streams",
                         "measured": f"{mem['rss_mb']} MB (peak {mem['hwm_mb']} MB; "
                                     f"{mem.get('fanout_run_hwm_mb')} MB at the peak of the "
                                     "fan-outs)",
                         "met": mem["hwm_mb"] <= 300})
    if rep:
        res = rep["results"]
        for key in ("synthetic", "record"):
            if key in res:
                r = res[key]
                rows.append({"goal": f">= 20,000 events/s replay ({key}, "
                                     f"{r['log']['events']:,} events)",
                             "measured": f"{r['replay']['events_per_s']:,} events/s, peak RSS "
                                         f"{r['replay']['peak_rss_mb']} MB",
                             "met": r["replay"]["events_per_s"] >= 20_000})
    return {"goals": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small versions of each benchmark")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(FULL))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    names = [n for n in plan if not args.only or n in args.only.split(",")]
    failed: list[str] = []
    timings: dict[str, float] = {}
    for name in names:
        print(f"\n===== {name}: python bench/{name}.py {' '.join(plan[name])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *plan[name]])
        timings[name] = round(time.perf_counter() - start, 1)
        if code != 0:
            failed.append(name)
            print(f"!!!!! {name} failed with exit code {code}", flush=True)
    eng = load("engine")
    if eng and "engine" in names and "engine" not in failed:
        engine_plot(eng)
    result = summary()
    print()
    print(table("goals against measured (bench/results/*.json)", ["goal", "measured", "met"],
                [[g["goal"], g["measured"], "yes" if g["met"] else "NO"]
                 for g in result["goals"]]))
    write_result("summary", {**result, "quick": args.quick, "seconds": timings,
                             "failed": failed})
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
