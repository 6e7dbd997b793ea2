"""Time a ballistic salvo: 50 launches in one batch from Crimea, hromada level.

    python bench/salvo.py [--missiles 50] [--heading] [--repeats 3] [--reference]

Times `Engine.apply` alone for the batch (events parsed beforehand; no ledger, no log) and
counts the transitions it emits. `--reference` times the previous engine
(tests/engine/reference.py, every change of causes a transition) on the same batch, so the
ratio is measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Any

from common import ROOT  # noqa: I001 - the benchmarks' shared helpers, next to this file
from tocsin.engine.core import Engine
from tocsin.geo import load_region_set
from tocsin.model import Event, parse_event
from tocsin.threats import load_catalog


def salvo(n: int, heading: bool, seed: int) -> list[Event]:
    """`n` ballistic_missile detections at one instant from Crimea, no weapon named."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        raw: dict[str, Any] = {
            "id": f"d{i}", "type": "detection", "time": "2026-12-01T01:00:00Z",
            "source": "radar-1", "track": f"bm{i:03d}", "object": "ballistic_missile",
            "position": {"lat": round(44.6 + rng.random(), 4),
                         "lon": round(33.5 + 1.5 * rng.random(), 4)},
        }
        if heading:
            raw["heading_deg"] = round(rng.uniform(0.0, 60.0), 1)
        out.append(parse_event(raw))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--missiles", type=int, default=50)
    ap.add_argument("--heading", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reference", action="store_true")
    args = ap.parse_args()
    regions, catalog = load_region_set("ua-hromadas"), load_catalog()
    factory: Any = Engine
    if args.reference:
        sys.path.insert(0, str(ROOT))
        from tests.engine.reference import ReferenceEngine
        factory = ReferenceEngine
    events = salvo(args.missiles, args.heading, args.seed)
    times, counts = [], []
    for _ in range(args.repeats):
        engine = factory(regions, catalog)
        start = time.process_time()
        n = sum(len(engine.apply(ev, 1 + i * 10_000).transitions) for i, ev in enumerate(events))
        times.append(time.process_time() - start)
        counts.append(n)
    name = "reference" if args.reference else "engine"
    runs = ", ".join(f"{t * 1e3:.0f}" for t in times)
    print(f"{name}: {args.missiles} missiles, heading={args.heading}: batch CPU median "
          f"{statistics.median(times) * 1e3:.0f} ms (runs {runs}),"
          f" {counts[0]} transitions for the batch")


if __name__ == "__main__":
    main()
