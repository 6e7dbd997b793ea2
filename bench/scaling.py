"""Per-event cost against the number of live tracks, on hromadas and on oblasts.

    python bench/scaling.py [--tracks 10,100,1000,5000] [--regions ua-hromadas,ua-oblasts]
                            [--samples 200] [--repeats 3] [--reference]

Uses the latency harness of `bench/engine.py` (N Shahed-type drones live, then a new track, a
small update and a redrawing update are timed around `Engine.apply`, CPU clock, median of the
per-repeat p50 and p99). `--reference` times the previous engine (tests/engine/reference.py).
"""

from __future__ import annotations

import argparse
import sys
import time

import engine as harness  # noqa: I001 - bench/engine.py, next to this file
from common import ROOT
from tocsin.geo import load_region_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", default="10,100,1000,5000")
    ap.add_argument("--regions", default="ua-hromadas,ua-oblasts")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reference", action="store_true")
    args = ap.parse_args()
    if args.reference:
        sys.path.insert(0, str(ROOT))
        from tests.engine.reference import ReferenceEngine
        harness.Engine = ReferenceEngine  # type: ignore[misc, assignment]
    name = "reference" if args.reference else "engine"
    for region_name in args.regions.split(","):
        regions = load_region_set(region_name)
        for n in (int(v) for v in args.tracks.split(",")):
            r = harness.latency(regions, n, args.samples, args.repeats, args.seed,
                                time.thread_time_ns)
            cases = "; ".join(f"{k}: p50 {v['p50_us']:.0f} us, p99 {v['p99_us']:.0f} us"
                              for k, v in r.items() if isinstance(v, dict))
            print(f"{name} {region_name} {n} live: {cases}; {r['active_alerts']} alerts",
                  flush=True)


if __name__ == "__main__":
    main()
