"""Sirens over MQTT: from an alert to the acknowledgement of every one of 1,000 sirens.

    python bench/sirens.py [--sirens 1000] [--rounds 5] [--broker mqtt://127.0.0.1:1883]

1,000 sirens stand at random points of random hromadas (seeded) in a fresh data directory;
`tocsin siren-sim` runs them in a process of its own, one real MQTT client each, against the
broker (Mosquitto). In this process a `Service` and its `SirenGateway` (the same objects
`tocsin serve --mqtt` runs, without HTTP) then, per round, raise `air_raid` on all 27 oblasts
(every hromada under alert: each siren gets a retained QoS 1 `sound`) and clear it again
(`stop`). Per siren, the time from just before the alert is submitted (validation, the engine,
the fsynced commit and every output hook included) until its acknowledgement reaches the
gateway; p50, p99 and max over all sirens and rounds. Times are this process's monotonic clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, machine, pct, raise_nofile, table, write_result
from tocsin.bootstrap import compose
from tocsin.config import Settings
from tocsin.geo import load_region_set
from tocsin.model import format_time
from tocsin.outputs.sirens import SirenGateway, parse_broker_url, topic
from tocsin.service import Service


def registry(path: Path, n: int, seed: int) -> None:
    """`n` sirens at random points of random hromadas, as a registry CSV."""
    regions = load_region_set("ua-hromadas")
    rng = random.Random(seed)
    west, south, east, north = regions.bounds()
    rows = ["id,lat,lon,name"]
    while len(rows) <= n:
        lat, lon = rng.uniform(south, north), rng.uniform(west, east)
        if regions.locate(lat, lon) is not None:
            rows.append(f"bench-{len(rows):05d},{lat:.5f},{lon:.5f},")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.005)


async def measure(data: Path, broker: str, rounds: int) -> dict[str, Any]:
    settings = Settings(data_dir=data, regions="ua-hromadas", mqtt_url=broker,
                        siren_ack_s=60.0)
    service = compose(Service(settings))  # its outputs, the siren gateway among them
    await service.start()
    gateway: SirenGateway = service.outputs["sirens"].current
    oblasts = [r.id for r in service.regions.regions.values() if r.parent is None]
    rows: list[list[Any]] = []
    everything: list[float] = []
    try:
        await until(lambda: gateway.connected.is_set(), 30, "the broker")
        await until(lambda: all(v.pending is None for v in gateway.sirens.values()), 60,
                    "the connect-time acknowledgements")
        for n in range(rounds):
            for action in ("raise", "clear"):
                t0 = time.monotonic()
                await service.submit([{
                    "id": f"bench-{n}-{action}", "type": "operator_alert",
                    "time": format_time(service.clock()), "source": "bench",
                    "regions": oblasts, "alert_type": "air_raid", "action": action,
                    "operator": "bench"}])
                submitted = time.monotonic() - t0
                await until(lambda since=t0: all(v.pending is None and v.acked > since
                                                  for v in gateway.sirens.values()),
                            60, "every ack")
                lat = [(v.acked - t0) * 1000 for v in gateway.sirens.values()]
                everything.extend(lat)
                rows.append([f"{n + 1} {action}", len(lat), submitted * 1000, pct(lat, 0.5),
                             pct(lat, 0.99), max(lat)])
                await asyncio.sleep(0.5)
        faults = [v.record.id for v in gateway.sirens.values() if v.status != "ok"]
    finally:
        await service.stop()
    return {"rounds": rows, "all_ms": {"p50": pct(everything, 0.5), "p99": pct(everything, 0.99),
                                       "max": max(everything), "n": len(everything)},
            "faults": faults}


async def forget(broker: str, ids: list[str]) -> None:
    """Clear the retained commands and statuses the run left on the broker."""
    async with parse_broker_url(broker).client(f"bench-cleanup-{os.getpid()}") as client:
        for sid in ids:
            for kind in ("cmd", "status"):
                await client.publish(topic(sid, kind), b"", qos=1, retain=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sirens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    raise_nofile()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        csv = Path(tmp) / "sirens.csv"
        registry(csv, args.sirens, args.seed)
        subprocess.run([sys.executable, "-m", "tocsin", "sirens", "import", str(csv),
                        "--data-dir", str(data)], check=True)
        sim = subprocess.Popen(
            [sys.executable, "-m", "tocsin", "siren-sim", "--ids-from", str(csv), "--broker",
             args.broker, "--heartbeat", "30"],
            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ})
        try:
            assert sim.stderr is not None
            line = sim.stderr.readline()
            if not line.startswith("ready:"):
                raise SystemExit(f"siren-sim did not start: {line}{sim.stderr.read()}")
            print(line.strip())
            result = asyncio.run(measure(data, args.broker, args.rounds))
        finally:
            sim.terminate()
            sim.wait(60)
            ids = [line.split(",")[0] for line in csv.read_text().splitlines()[1:]]
            asyncio.run(forget(args.broker, ids))
    print(table(f"alert -> every siren's ack, {args.sirens} sirens (ms)",
                ["round", "sirens", "submit", "p50", "p99", "max"], result["rounds"]))
    a = result["all_ms"]
    print(f"all: n={a['n']} p50={a['p50']:.1f} ms p99={a['p99']:.1f} ms max={a['max']:.1f} ms; "
          f"sirens not ok at the end: {len(result['faults'])}")
    write_result("sirens", {"sirens": args.sirens, "rounds": args.rounds, **result,
                            "machine": machine()})


if __name__ == "__main__":
    main()
