"""A record night: 700 drones from the real launch areas reporting every 5 s, plus missiles.

    python bench/record_night.py [--drones 700] [--minutes 10] [--every 5] [--reference]

Drones start from Primorsko-Akhtarsk, Chauda, Hvardiiske, Kursk, Bryansk, Oryol and Millerovo
(100 from each), fly at 185 km/h towards ten Ukrainian cities and report every `--every`
seconds; 20 Iskander-M and 3 Kinzhal launches come at random moments, each reported at launch
and once more 20 s later; a tick every second. Events are parsed beforehand and fed to
`Engine.apply` alone; the figure is CPU seconds per simulated second, and how many times real
time that is. `--reference` runs the previous engine (tests/engine/reference.py) instead.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from common import ROOT  # noqa: I001 - the benchmarks' shared helpers, next to this file
from tocsin.engine.core import Engine
from tocsin.geo import load_region_set
from tocsin.model import Event, format_time, parse_event
from tocsin.threats import load_catalog
from tocsin.threats.tracks import GEOD, advance

T0 = datetime(2026, 5, 13, 21, 0, tzinfo=UTC)
DRONE_KMH = 185.0
LAUNCH_AREAS = {
    "primorsko-akhtarsk": (46.05, 38.17), "chauda": (45.00, 35.84),
    "hvardiiske": (45.12, 33.98), "kursk": (51.73, 36.19), "bryansk": (53.24, 34.36),
    "oryol": (52.97, 36.07), "millerovo": (48.92, 40.40),
}
TARGETS = [(50.45, 30.52), (49.99, 36.23), (48.46, 35.05), (46.48, 30.72), (49.84, 24.03),
           (47.84, 35.14), (49.59, 34.55), (49.23, 28.47), (51.49, 31.29), (47.91, 33.39)]
BALLISTIC_FROM = [(50.6, 36.6), (51.7, 36.2), (45.3, 34.0), (44.9, 34.1)]


def stamp(seconds: float) -> str:
    return format_time(T0 + timedelta(microseconds=round(seconds * 1e6)))


def night(drones: int, minutes: float, every: float, seed: int) -> list[Event]:
    """The whole night's events, parsed, in time order."""
    rng = random.Random(seed)
    end = minutes * 60.0
    timed: list[tuple[float, int, dict[str, Any]]] = []
    areas = list(LAUNCH_AREAS.values())
    for i in range(drones):
        lat, lon = areas[i % len(areas)]
        lat, lon = lat + rng.uniform(-0.1, 0.1), lon + rng.uniform(-0.1, 0.1)
        tlat, tlon = rng.choice(TARGETS)
        heading = float(GEOD.inv(lon, lat, tlon, tlat)[0]) % 360.0
        t = rng.uniform(0.0, every)
        while t < end:
            timed.append((t, len(timed), {
                "id": f"D{i}@{t:.3f}", "type": "detection", "time": stamp(t), "source": "radar",
                "track": f"D{i}", "object": "drone", "weapon": "shahed-136",
                "position": {"lat": round(lat, 5), "lon": round(lon, 5)},
                "heading_deg": round(heading, 1), "speed_kmh": DRONE_KMH}))
            lat, lon = advance(lat, lon, heading, DRONE_KMH / 3.6 * every)
            t += every
    for i, weapon in enumerate(["iskander-m"] * 20 + ["kinzhal"] * 3):
        lat, lon = rng.choice(BALLISTIC_FROM)
        tlat, tlon = rng.choice(TARGETS)
        heading = float(GEOD.inv(lon, lat, tlon, tlat)[0]) % 360.0
        t = rng.uniform(0.0, max(0.0, end - 30.0))
        for k, dt in enumerate((0.0, 20.0)):
            timed.append((t + dt, len(timed), {
                "id": f"B{i}-{k}", "type": "detection", "time": stamp(t + dt), "source": "radar",
                "track": f"B{i}", "object": "ballistic_missile", "weapon": weapon,
                "position": {"lat": round(lat, 5), "lon": round(lon, 5)},
                **({"heading_deg": round(heading, 1)} if k else {})}))
    for s in range(int(end) + 1):
        timed.append((float(s), len(timed), {"id": f"tick-{s}", "type": "tick",
                                             "time": stamp(s), "source": "clock"}))
    timed.sort(key=lambda e: (e[0], e[1]))
    return [parse_event(raw) for _, _, raw in timed]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drones", type=int, default=700)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--regions", default="ua-hromadas")
    ap.add_argument("--reference", action="store_true")
    args = ap.parse_args()
    regions = load_region_set(args.regions)
    factory: Any = Engine
    if args.reference:
        sys.path.insert(0, str(ROOT))
        from tests.engine.reference import ReferenceEngine
        factory = ReferenceEngine
    events = night(args.drones, args.minutes, args.every, args.seed)
    engine = factory(regions, load_catalog())
    seq, transitions = 1, 0
    start = time.process_time()
    for ev in events:
        n = len(engine.apply(ev, seq).transitions)
        seq += 1 + n
        transitions += n
    cpu = time.process_time() - start
    simulated = args.minutes * 60.0
    name = "reference" if args.reference else "engine"
    print(f"{name}: {args.drones} drones every {args.every:g} s + 23 missiles, "
          f"{args.minutes:g} min on {args.regions}: {len(events):,} events, "
          f"{transitions:,} transitions, CPU {cpu:.1f} s = {cpu / simulated:.3f} s per simulated "
          f"s ({simulated / cpu:.1f}x real time), {len(events) / cpu:,.0f} events/s")


if __name__ == "__main__":
    main()
