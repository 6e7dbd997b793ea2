"""Restart until `/readyz` on a 2,000,000-entry log: from a snapshot, and by full replay.

    python bench/restart.py [--entries 2000000] [--runs 3] [--full-runs 1] [--keep DIR]
    python bench/restart.py --tree 2000000

The log: the official 2022-24 air-raid record (`official_data_en.csv.gz`, from
../shared/data/air_raid_sirens), each alert an operator `raise` at its start and `clear` at its
end on the oblast, raion or hromada it names, in time order, logged through a `Ledger` into a
SQLite data directory (as `bench/replay.py` does) until it holds `--entries` entries. Every
entry is a real decision of the engine (an oblast-wide alert is one transition per hromada),
so the log replays exactly; it is built by the engine rather than bulk-inserted, which takes a
few minutes but gives `tocsin replay` and a full-replay start nothing synthetic to trip on.
`--keep DIR` keeps (and reuses) the built log there, and its signing key in DIR-config.

Then `tocsin serve` is started on it, each start timed from spawn until `/readyz` answers 200,
and stopped with SIGINT (a clean stop writes a snapshot at the log's end):

1. the first start has no snapshot: the whole log is replayed (what every start did before
   snapshots, and what a start does when no snapshot checks);
2. then `--runs` restarts from the snapshot the previous stop wrote, alternating with
   `--full-runs` - 1 more full replays (the snapshots removed before those), so both kinds
   see the same machine load; medians are reported, and their ratio. Each restart waits for
   the tree's older nodes to be filled in before it is stopped, and that time is reported.
   `--full-runs 0` with `--keep` only restarts, from the snapshot the kept log has.

A restart from a snapshot loads the engine and read models and the Merkle tree's frontier and
replays the tail; the tree's older nodes are filled in after `/readyz` is ready (the time the
server logs for that is reported too). `--tree N` times `MerkleLog.load` alone, a full rebuild
of the tree from N stored leaf hashes (entries written directly, without an engine).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from common import free_port, machine, table, write_result  # noqa: I001
from replay import RECORD, record_events


def serve(data_dir: Path, log: Path, env: dict[str, str], *, fill: bool = False) -> float:
    """Start `tocsin serve`, wait for /readyz, stop it cleanly; seconds until ready. With
    `fill`, wait (up to a minute) for the Merkle tree's older nodes to be filled in first."""
    port = free_port()
    filled = _fills(log)
    started = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tocsin", "serve", "--data-dir", str(data_dir), "--port",
             str(port), "--regions", "ua-hromadas"], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        ready = time.perf_counter() - started
        while fill and len(_fills(log)) == len(filled) and time.perf_counter() - started < 60:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(900)
    return ready


def _fills(log: Path) -> list[float]:
    """The fill-in times the servers logged so far."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [float(x) for x in re.findall(r"filled in \(([\d.]+) s\)", text)]


def build(data_dir: Path, entries: int) -> dict[str, Any]:
    """The record as operator alerts, logged through a Ledger until `entries` entries."""
    import json

    from tocsin.engine.core import Engine
    from tocsin.engine.policy import Policy
    from tocsin.geo import load_region_set
    from tocsin.ledger import Ledger
    from tocsin.store import SQLiteLog
    from tocsin.threats import load_catalog

    regions, policy = load_region_set("ua-hromadas"), Policy()
    log = SQLiteLog(data_dir / "tocsin.db")
    log.set_meta("regions", "ua-hromadas")
    log.set_meta("policy", json.dumps(policy.to_dict(), sort_keys=True))
    ledger = Ledger(log, lambda: Engine(regions, load_catalog(), policy))
    started = time.perf_counter()
    events = 0
    source: Iterator[dict[str, Any]] = record_events(RECORD, None)
    while ledger.next_seq <= entries:
        batch = [raw for _, raw in zip(range(500), source, strict=False)]
        if not batch:
            break
        ledger.submit(batch)
        events += len(batch)
    took = time.perf_counter() - started
    n = log.max_seq()
    log.close()
    return {"events": events, "entries": n, "build_s": round(took, 1),
            "db_mb": round((data_dir / "tocsin.db").stat().st_size / 2**20)}


def tree_load(n: int, tmp: Path) -> dict[str, Any]:
    """Seconds `MerkleLog.load` takes over an n-entry SQLite log (median of 3)."""
    from tocsin.store import LogEntry, SQLiteLog
    from tocsin.store.leaves import entry_leaf_hash
    from tocsin.store.merkle import MerkleLog

    log = SQLiteLog(tmp / "tree.db")
    chunk = 50_000
    for first in range(1, n + 1, chunk):
        rows = [LogEntry(seq, "event", f'{{"id":"t{seq}","type":"tick","source":"clock"}}',
                         "clock", f"t{seq}") for seq in range(first, min(first + chunk, n + 1))]
        log.append(rows, [entry_leaf_hash(e) for e in rows])
    times = []
    for _ in range(3):
        started = time.perf_counter()
        assert MerkleLog(log).load() == n
        times.append(time.perf_counter() - started)
    log.close()
    return {"tree_entries": n, "tree_load_s": round(sorted(times)[1], 2)}


def _load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--entries", type=int, default=2_000_000)
    p.add_argument("--runs", type=int, default=3, help="restarts from a snapshot")
    p.add_argument("--full-runs", type=int, default=1,
                   help="starts replaying the whole log (the first start is one); 0: restart "
                        "from the snapshot a --keep log has")
    p.add_argument("--keep", type=Path, help="build the log here (or reuse the one there)")
    p.add_argument("--tree", type=int, help="only time MerkleLog.load over this many entries")
    args = p.parse_args(argv)
    if args.tree:
        with tempfile.TemporaryDirectory(prefix="tocsin-tree-") as tmp:
            result = tree_load(args.tree, Path(tmp))
        print(table("Merkle tree load", ["entries", "load s"],
                    [[result["tree_entries"], result["tree_load_s"]]]))
        write_result("restart-tree", {"machine": machine(), **result})
        return 0
    with tempfile.TemporaryDirectory(prefix="tocsin-restart-") as tmp_name:
        tmp = Path(tmp_name)
        data = args.keep or tmp / "data"
        data.mkdir(parents=True, exist_ok=True)
        if (data / "tocsin.db").is_file():
            built: dict[str, Any] = {"entries": None, "reused": str(data)}
        else:
            built = build(data, args.entries)
            print(f"  built: {built}", file=sys.stderr, flush=True)
        # the servers' signing key stays with this run (or with the kept log), not in the
        # user's config
        config = tmp / "config" if args.keep is None else Path(f"{args.keep}-config")
        env = {"TOCSIN_CONFIG_DIR": str(config)}
        log = tmp / "serve.log"
        full: list[float] = []
        fast: list[float] = []
        loads: list[float] = []
        aside = tmp / "aside"
        if args.full_runs > 0:
            for old in (data / "snapshots").glob("*.pickle"):
                old.unlink()  # a kept log starts like a fresh one: no snapshot
            loads.append(_load())
            full.append(serve(data, log, env))
            print(f"  full replay: {full[-1]:.1f} s (load {loads[-1]:.1f})", file=sys.stderr,
                  flush=True)
        snaps = sorted((data / "snapshots").glob("*.pickle"))
        for i in range(max(args.runs, args.full_runs - 1)):
            if i < args.runs:
                loads.append(_load())
                fast.append(serve(data, log, env, fill=True))
                print(f"  from a snapshot: {fast[-1]:.1f} s (load {loads[-1]:.1f})",
                      file=sys.stderr, flush=True)
            if i < args.full_runs - 1:
                (data / "snapshots").rename(aside)
                loads.append(_load())
                full.append(serve(data, log, env))
                print(f"  full replay: {full[-1]:.1f} s (load {loads[-1]:.1f})",
                      file=sys.stderr, flush=True)
                shutil.rmtree(aside)  # the stop of that start wrote one at the log's end
        fills = _fills(log)
        recovered = re.findall(r"recovered (\d+) log entries", log.read_text(errors="replace"))
        record: dict[str, Any] = {
            **built, "log_entries": int(recovered[-1]) if recovered else None,
            "full_replay_s": [round(x, 2) for x in full],
            "from_snapshot_s": [round(x, 2) for x in fast],
            "full_replay_median_s": round(statistics.median(full), 2) if full else None,
            "from_snapshot_median_s": round(statistics.median(fast), 2) if fast else None,
            "ratio": round(statistics.median(full) / statistics.median(fast), 1)
            if fast and full else None,
            "tree_fill_after_ready_s": fills,
            "snapshot_mb": round(snaps[-1].stat().st_size / 2**20, 1) if snaps else None,
            "load_average_at_each_start": [round(x, 1) for x in loads],
        }
    print(table("restart until /readyz", ["log entries", "full replay s (median)",
                                           "from snapshot s (median)", "ratio", "snapshot MB"],
                [[record["log_entries"], record["full_replay_median_s"],
                  record["from_snapshot_median_s"], record["ratio"], record["snapshot_mb"]]]))
    write_result("restart", record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
