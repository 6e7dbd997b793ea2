"""Restart until `/readyz`: a full replay, then from the snapshot a clean stop leaves.

    python bench/restart.py [--events 200000] [--seed 1] [--tree 2000000]

A synthetic night of `--events` events (`bench/engine.py`'s generator) is logged into a SQLite
data directory through a `Ledger` (as `bench/replay.py` does). Then `tocsin serve` is started on
it twice, each timed from spawn until `/readyz` answers 200, and stopped with SIGINT:

1. first start: no snapshot yet, the whole log is replayed (what every start did before
   snapshots); its clean stop writes a snapshot at the log's end;
2. restart: the snapshot is loaded, nothing is left to replay (a crash leaves a tail of at most
   `tocsin.snapshots.SNAPSHOT_EVERY` entries, replayed at the rate of the first start).

What a restart from a snapshot still does in time proportional to the whole log is rebuild the
Merkle tree from the stored leaf hashes. `--tree N` times that alone (`MerkleLog.load`) on a
SQLite log of N entries (written directly, entries and their hashes, without an engine), so
the restart of a log larger than one worth building here can be estimated.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from common import free_port, machine, table, write_result  # noqa: I001
from engine import synthetic_night
from replay import build_log


def serve(data_dir: Path, log: Path) -> float:
    """Start `tocsin serve`, wait for /readyz, stop it cleanly; seconds until ready."""
    port = free_port()
    started = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tocsin", "serve", "--data-dir", str(data_dir), "--port",
             str(port), "--regions", "ua-hromadas"], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(600)
    return ready


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tree", type=int, help="only time MerkleLog.load over this many entries")
    args = p.parse_args(argv)
    if args.tree:
        with tempfile.TemporaryDirectory(prefix="tocsin-tree-") as tmp:
            result = tree_load(args.tree, Path(tmp))
        print(table("Merkle tree load", ["entries", "load s"],
                    [[result["tree_entries"], result["tree_load_s"]]]))
        write_result("restart-tree", {"machine": machine(), **result})
        return 0
    with tempfile.TemporaryDirectory(prefix="tocsin-restart-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        built = build_log(data, synthetic_night(args.events, args.seed))
        log = Path(tmp) / "serve.log"
        first = serve(data, log)
        snaps = sorted((data / "snapshots").glob("*.pickle"))
        again = serve(data, log)
        record: dict[str, Any] = {
            "machine": machine(), **built, "first_start_s": round(first, 2),
            "restart_from_snapshot_s": round(again, 2),
            "snapshot_mb": round(snaps[-1].stat().st_size / 2**20, 1) if snaps else None,
        }
    print(table("restart until /readyz", ["entries", "first start (full replay) s",
                                           "restart from snapshot s", "snapshot MB"],
                [[record["entries"], record["first_start_s"],
                  record["restart_from_snapshot_s"], record["snapshot_mb"]]]))
    write_result("restart", record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
