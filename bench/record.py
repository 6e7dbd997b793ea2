"""Rough figures for the verifiable record: appends with Merkle leaves, start-up, `tocsin verify`,
and the history import.

Run: `python bench/record.py [events]` (default 100,000 events; each operator event adds one
transition). Writes into a temporary directory. Prints figures; asserts nothing.
"""

from __future__ import annotations

import gzip
import io
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import load_region_set
from tocsin.history_import import read_official
from tocsin.ledger import Ledger
from tocsin.model import format_time
from tocsin.store import SQLiteLog
from tocsin.store.history import HistoryAlert, HistoryStore
from tocsin.store.merkle import MerkleLog, load_signing_key
from tocsin.threats import load_catalog
from tocsin.verify import verify_data_dir

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
RECORD = Path(__file__).resolve().parents[2] / "shared" / "data" / "air_raid_sirens" / \
    "official_data_en.csv.gz"


def events(n: int, oblasts: list[str]) -> list[dict[str, Any]]:
    """Operator raises and clears on random oblasts, a tick every 50 events."""
    rng = random.Random(7)
    out: list[dict[str, Any]] = []
    raised: set[str] = set()
    for i in range(n):
        when = format_time(T0 + timedelta(seconds=i // 10))
        if i % 50 == 0:
            out.append({"id": f"t{i}", "type": "tick", "time": when, "source": "bench"})
            continue
        region = rng.choice(oblasts)
        action = "clear" if region in raised else "raise"
        raised ^= {region}
        out.append({"id": f"e{i}", "type": "operator_alert", "time": when, "source": "bench",
                    "regions": [region], "alert_type": "air_raid", "action": action,
                    "operator": "bench"})
    return out


def write(data: Path, raws: list[dict[str, Any]], merkle: bool) -> tuple[float, int]:
    """Append in batches of 500; (seconds, entries)."""
    regions = load_region_set("ua-oblasts")
    catalog = load_catalog()
    log = SQLiteLog(data / "tocsin.db")
    tree = MerkleLog(log) if merkle else None
    if tree is not None:
        tree.load()
    ledger = Ledger(log, lambda: Engine(regions, catalog, Policy()), merkle=tree)
    start = time.perf_counter()
    for i in range(0, len(raws), 500):
        ledger.submit(raws[i : i + 500])
    seconds = time.perf_counter() - start
    if tree is not None:
        key = load_signing_key(data.parent / "log.key", create=True)  # kept outside data
        tree.sign(key, datetime.now(UTC))
        tree.close()
    size = log.max_seq()
    log.close()
    return seconds, size


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    oblasts = [r.id for r in load_region_set("ua-oblasts").regions.values()]
    raws = events(n, oblasts)
    with tempfile.TemporaryDirectory() as tmp:
        plain, size = write(Path(tmp) / "plain", raws, merkle=False)
        print(f"append, plain log:        {size:>9,} entries {size / plain:>10,.0f} entries/s")
        data = Path(tmp) / "merkle"
        timed, size = write(data, raws, merkle=True)
        print(f"append, with Merkle leaf: {size:>9,} entries {size / timed:>10,.0f} entries/s")

        log = SQLiteLog(data / "tocsin.db")
        merkle = MerkleLog(log)
        start = time.perf_counter()
        merkle.load()
        seconds = time.perf_counter() - start
        print(f"start-up (tree from stored hashes): {seconds:.2f} s "
              f"({size / seconds:,.0f} leaves/s)")
        merkle.close()
        log.close()

        key = load_signing_key(data.parent / "log.key")
        from tocsin.audit import public_key_raw

        report = verify_data_dir(data, public_key_raw(key))
        assert report.ok, report.problems
        print(f"tocsin verify --data-dir: {report.entries:,} entries in {report.seconds:.2f} s "
              f"({report.entries / report.seconds:,.0f} entries/s)")

        if RECORD.is_file():
            start = time.perf_counter()
            text = gzip.decompress(RECORD.read_bytes()).decode("utf-8")
            alerts = [a for a in read_official(io.StringIO(text, newline=""))
                      if isinstance(a, HistoryAlert)]
            store = HistoryStore(Path(tmp) / "history" / "tocsin.db")
            store.add(alerts)
            store.close()
            seconds = time.perf_counter() - start
            print(f"history import: {len(alerts):,} rows in {seconds:.2f} s "
                  f"({len(alerts) / seconds:,.0f} rows/s)")


if __name__ == "__main__":
    main()
