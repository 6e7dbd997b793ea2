"""Replay: the real 2022-24 siren record and a 1,000,000-event synthetic log, events/s and RSS.

    python bench/replay.py [--events 1000000] [--record PATH] [--record-limit N] [--seed 1]

1. `tocsin history import` of the official record (`official_data_en.csv.gz`, 43,031 alerts
   from 2022-03 to 2024-10; from ../shared/data/air_raid_sirens), timed as a command.
2. The same record as a log: each alert becomes an `operator_alert` raise at its start and a
   clear at its end (on the oblast, raion or hromada the record names), in time order, appended
   through a `Ledger` into a SQLite data directory (up to 500 events per transaction, cut at a
   tick); then `tocsin replay --data-dir` re-runs the engine over it and checks every logged
   transition.
3. A synthetic night of `--events` events (`bench/engine.py`'s generator: drones reporting
   every 10-30 s, a tick every second, operator alerts, threat levels, impacts), logged and
   replayed the same way.

Each command runs as its own process; its wall time, CPU time and peak RSS (`wait4`'s
`ru_maxrss`, read by a small launcher so that the benchmark's own memory does not count) are
reported. events/s counts the events of the log (not its transitions).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import ROOT, table, write_result  # noqa: I001
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import load_region_set
from tocsin.ledger import Ledger
from tocsin.model import format_time
from tocsin.store import SQLiteLog
from tocsin.threats import load_catalog

RECORD = ROOT.parent / "shared" / "data" / "air_raid_sirens" / "official_data_en.csv.gz"


# Runs the measured command and reports its own resource usage. A child's `ru_maxrss` on Linux
# starts from its parent's peak (the parent's memory is recorded when the child execs), so the
# command is started by this small launcher rather than by the benchmark, which holds a million
# events in memory.
LAUNCHER = """
import json, os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"maxrss_kb": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
               "code": os.waitstatus_to_exitcode(status)}, fh)
"""


def run_unreaped(cmd: list[str]) -> dict[str, Any]:
    """Run a command; its wall and CPU seconds, its own peak RSS in MB, and its output."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        usage_path = Path(tmp) / "usage.json"
        done = subprocess.run([sys.executable, "-c", LAUNCHER, str(usage_path), *cmd],
                              capture_output=True, text=True, check=False)
        took = time.perf_counter() - start
        usage = json.loads(usage_path.read_text()) if usage_path.exists() else {"code": -1}
    if done.returncode != 0 or usage["code"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({usage['code']}):\n{done.stderr}")
    return {"wall_s": round(took, 2), "cpu_s": round(usage["cpu_s"], 2),
            "peak_rss_mb": round(usage["maxrss_kb"] / 1024), "stdout": done.stdout.strip()}


def record_events(path: Path, limit: int | None) -> Iterator[dict[str, Any]]:
    """The record's alerts as operator_alert raise/clear events, in time order."""
    import gzip
    import io

    from tocsin.history_import import RowProblem, read_official

    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8-sig")
    regions = load_region_set("ua-hromadas")
    timed: list[tuple[int, int, str, str]] = []  # second, order (clear first), action, region
    n = 0
    for item in read_official(io.StringIO(text, newline="")):
        if isinstance(item, RowProblem) or item.region not in regions.regions:
            continue
        timed.append((item.started_s, 1, "raise", item.region))
        timed.append((item.ended_s, 0, "clear", item.region))
        n += 1
        if limit is not None and n >= limit:
            break
    timed.sort()
    for i, (second, _, action, region) in enumerate(timed):
        yield {"id": f"rec-{i}", "type": "operator_alert",
               "time": format_time(datetime.fromtimestamp(second, UTC)), "source": "record",
               "regions": [region], "alert_type": "air_raid", "action": action,
               "operator": "official-record"}


def build_log(data_dir: Path, events: Iterable[dict[str, Any]], batch: int = 500) -> dict[str, Any]:
    """Append `events` through a Ledger into a SQLite data directory; counts and rate."""
    regions = load_region_set("ua-hromadas")
    policy = Policy()
    catalog = load_catalog()
    log = SQLiteLog(data_dir / "tocsin.db")
    log.set_meta("regions", "ua-hromadas")
    log.set_meta("policy", json.dumps(policy.to_dict(), sort_keys=True))
    ledger = Ledger(log, lambda: Engine(regions, catalog, policy))
    n = 0
    pending: list[dict[str, Any]] = []
    start = time.perf_counter()
    for raw in events:
        pending.append(raw)
        # a batch is validated against the clock before it is applied: cut it at a tick
        if len(pending) >= batch or (raw["type"] == "tick" and len(pending) >= 100):
            ledger.submit(pending)
            n += len(pending)
            pending = []
    if pending:
        ledger.submit(pending)
        n += len(pending)
    took = time.perf_counter() - start
    entries = log.max_seq()
    log.close()
    size = sum(p.stat().st_size for p in data_dir.iterdir())
    return {"events": n, "entries": entries, "transitions": entries - n,
            "ingest_s": round(took, 1), "ingest_events_per_s": round(n / took),
            "db_mb": round(size / 2**20)}


def replay(data_dir: Path) -> dict[str, Any]:
    r = run_unreaped([sys.executable, "-m", "tocsin", "replay", "--data-dir", str(data_dir)])
    assert "every transition reproduced" in r["stdout"], r["stdout"]
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events in the synthetic log")
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument("--record-limit", type=int, help="only the first N alerts of the record")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from engine import synthetic_night

    results: dict[str, Any] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="tocsin-replay-") as tmp_name:
        tmp = Path(tmp_name)
        if args.record.is_file():
            imp = run_unreaped([sys.executable, "-m", "tocsin", "history", "import",
                                str(args.record), "--data-dir", str(tmp / "import")])
            results["history_import"] = imp
            rows.append(["history import (record)", "-", "-", imp["wall_s"], "-", "-",
                         imp["peak_rss_mb"]])
            built = build_log(tmp / "record", record_events(args.record, args.record_limit))
            rep = replay(tmp / "record")
            rep["events_per_s"] = round(built["events"] / rep["wall_s"])
            rep["entries_per_s"] = round(built["entries"] / rep["wall_s"])
            results["record"] = {"log": built, "replay": rep}
            rows.append(["record as operator alerts", built["events"], built["transitions"],
                         rep["wall_s"], rep["events_per_s"], rep["entries_per_s"],
                         rep["peak_rss_mb"]])
            print(f"  record: {built}", file=sys.stderr, flush=True)
        else:
            print(f"SKIPPED: no siren record at {args.record}", file=sys.stderr)
        built = build_log(tmp / "synthetic", synthetic_night(args.events, args.seed))
        print(f"  synthetic: {built}", file=sys.stderr, flush=True)
        rep = replay(tmp / "synthetic")
        rep["events_per_s"] = round(built["events"] / rep["wall_s"])
        rep["entries_per_s"] = round(built["entries"] / rep["wall_s"])
        rep["events_per_cpu_s"] = round(built["events"] / rep["cpu_s"])
        results["synthetic"] = {"log": built, "replay": rep}
        rows.append([f"synthetic {built['events']:,} events", built["events"],
                     built["transitions"], rep["wall_s"], rep["events_per_s"],
                     rep["entries_per_s"], rep["peak_rss_mb"]])
    print()
    print(table("replay (`tocsin replay --data-dir`, one process each; import: `tocsin history "
                "import`)", ["log", "events", "transitions", "wall s", "events/s",
                             "entries/s", "peak RSS MB"], rows))
    for key in ("record", "synthetic"):
        if key in results:
            b = results[key]["log"]
            print(f"  {key}: logged through a Ledger at {b['ingest_events_per_s']:,} events/s "
                  f"({b['db_mb']} MB on disk)")
    write_result("replay", {"results": results, "events": args.events, "seed": args.seed})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
