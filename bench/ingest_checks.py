"""Ingest's decision step with the engine's per-event checks run once (now) or twice (before).

    python bench/ingest_checks.py [--events 20000] [--rounds 5] [--batch 1] [--seed 1]

The events of `bench/engine.py`'s synthetic night (drones reporting every 10-30 s, a tick every
second, operator alerts, threat levels, impacts) are parsed once, as the edge does, then decided
by a `Ledger` over a `MemoryLog` in batches of `--batch`, committed after each (no disk: the
decision step alone, what the writer thread spends per event besides the fsync). "twice" makes
`Engine.apply` check every event again although the ledger checked its batch already, as it did
before the ledger handed checked events over (`Engine.apply(..., checked=True)`). The two run
alternately, `--rounds` times each in one process, timed on this thread's CPU clock; the medians
and the ratio of each pair are reported, and what one `Engine.check` costs on its own (every
event checked against an engine that has applied the whole night), the time saved per event.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from common import table, write_result  # noqa: I001
from engine import synthetic_night
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import load_region_set
from tocsin.ledger import Ledger, parse_batch
from tocsin.model import Event
from tocsin.store import MemoryLog
from tocsin.threats import load_catalog

_apply = Engine.apply


def _apply_checking(self: Engine, event: Event, seq: int, *, checked: bool = False) -> Any:
    return _apply(self, event, seq, checked=False)


def run(events: list[Event], batch: int, twice: bool, make: Any) -> float:
    """CPU seconds to decide and commit `events` in batches."""
    Engine.apply = _apply_checking if twice else _apply  # type: ignore[method-assign]
    try:
        ledger = Ledger(MemoryLog(), make)
        started = time.thread_time()
        for i in range(0, len(events), batch):
            ledger.decide(events[i:i + batch])
            ledger.committed()
        return time.thread_time() - started
    finally:
        Engine.apply = _apply  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    regions, catalog, policy = load_region_set("ua-hromadas"), load_catalog(), Policy()
    raws = synthetic_night(args.events, args.seed)
    events = parse_batch(raws, region_known=regions.regions.__contains__)

    def make() -> Engine:
        return Engine(regions, catalog, policy)

    run(events, args.batch, False, make)  # warm-up
    late = Ledger(MemoryLog(), make)
    late.decide(events)
    checks = []
    for _ in range(args.rounds):
        started = time.thread_time()
        for ev in events:
            late.engine.check(ev)
        checks.append((time.thread_time() - started) / len(events) * 1e6)
    once, twice, ratios = [], [], []
    for _ in range(args.rounds):
        a = run(events, args.batch, False, make)
        b = run(events, args.batch, True, make)
        once.append(len(events) / a)
        twice.append(len(events) / b)
        ratios.append(b / a)
    record = {"events": len(events), "batch": args.batch, "rounds": args.rounds,
              "once_events_per_cpu_s": [round(x) for x in once],
              "twice_events_per_cpu_s": [round(x) for x in twice],
              "once_median": round(statistics.median(once)),
              "twice_median": round(statistics.median(twice)),
              "twice_over_once_cpu_median": round(statistics.median(ratios), 4),
              "check_us_per_event": round(statistics.median(checks), 2),
              "decide_us_per_event": round(1e6 / statistics.median(once), 1)}
    print(table("decide + commit, events per CPU second (median of rounds)",
                ["checks per event", "events/s", "CPU time vs once"],
                [["once (now)", record["once_median"], 1.0],
                 ["twice (before)", record["twice_median"],
                  record["twice_over_once_cpu_median"]]]))
    print(f"one Engine.check: {record['check_us_per_event']} µs per event, of "
          f"{record['decide_us_per_event']} µs to decide one")
    write_result("ingest_checks", record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
