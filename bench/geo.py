"""Time `RegionSet.hits()` and `locate()` over a bundled set.

    python bench/geo.py [--set ua-hromadas] [--n 2000] [--seed 1] [--clock wall|cpu]

Origins are random points inside the set (so every query lands on real regions), headings are
random; each query is timed on its own and the median and 99th percentile are printed in µs.
`--clock cpu` times with this thread's CPU clock, which a busy machine disturbs less.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from functools import partial

from common import origins  # noqa: I001 - the benchmarks' shared helpers, next to this file
from tocsin.geo import DEFAULT_REGION_SET, Footprint, load_region_set

# (label, length in metres, heading given?, half-angle)
CASES = (
    ("cone 50 km", 50_000.0, True, 30.0),
    ("cone 200 km", 200_000.0, True, 30.0),
    ("cone 800 km", 800_000.0, True, 30.0),
    ("disc 2000 km", 2_000_000.0, False, 180.0),
)




def timed(
    calls: list[Callable[[], object]], clock: Callable[[], int], warmup: int = 50
) -> list[float]:
    """Per-call time in µs on `clock`, after running the first `warmup` calls untimed."""
    for call in calls[:warmup]:
        call()
    times = []
    for call in calls:
        start = clock()
        call()
        times.append((clock() - start) / 1_000.0)
    return times


def report(label: str, times: list[float], extra: str = "") -> None:
    """Print median and p99 of `times`."""
    p99 = statistics.quantiles(times, n=100)[98]
    print(f"{label:14s} median {statistics.median(times):9.1f} µs   p99 {p99:9.1f} µs{extra}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default=DEFAULT_REGION_SET, help="bundled set name or path")
    parser.add_argument("--n", type=int, default=2000, help="queries per case")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    clock = time.perf_counter_ns if args.clock == "wall" else time.thread_time_ns
    rng = random.Random(args.seed)
    start = time.perf_counter()
    regions = load_region_set(args.set)
    print(f"{regions!r} loaded in {time.perf_counter() - start:.2f} s")
    points = origins(regions, args.n, rng)
    for label, length, directed, half in CASES:
        footprints = [
            Footprint(lat, lon, length, rng.uniform(0.0, 360.0) if directed else None, half)
            for lat, lon in points
        ]
        hit_counts = [len(regions.hits(fp)) for fp in footprints[:200]]
        calls: list[Callable[[], object]] = [partial(regions.hits, fp) for fp in footprints]
        mean_hits = statistics.mean(hit_counts)
        report(label, timed(calls, clock), f"   ({mean_hits:.0f} hits on average)")
    calls = [partial(regions.locate, lat, lon) for lat, lon in points]
    report("locate", timed(calls, clock))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
