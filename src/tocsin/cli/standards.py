"""`tocsin cap import`, `sirens` and `siren-sim`: the standards at the edges."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from tocsin.cli.common import (
    EXIT_CHECK,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_STORE,
    err,
    log_region_set,
)
from tocsin.geo import load_region_set


def cmd_cap_import(args: argparse.Namespace) -> int:
    """Take a CAP 1.2 alert from another authority into a data directory's (or a cluster
    store's) log, in-process.

    The server must not be running on that directory (POST the file to /api/v1/cap instead):
    this runs a service of its own on the log, which decides the alert exactly as the server
    would; the next `tocsin serve` then starts with it. With `--store`, it holds the cluster's
    leader lock while it runs, so it refuses while a leader is running (POST the file to any
    node then); followers take the entries up from the log. Prints what each message did as
    JSON.
    """
    import asyncio
    import tempfile

    from tocsin.config import settings_from_env
    from tocsin.outputs.cap import CapError
    from tocsin.outputs.capin import import_cap
    from tocsin.service import Service

    store: str | None = args.store
    data_dir = Path(args.data_dir)
    if store is None and (data_dir / "tocsin.db-wal").exists() and not args.force:
        err(f"{data_dir}/tocsin.db is open (tocsin.db-wal exists): stop the server and retry, "
             "or POST the file to /api/v1/cap; --force if no process has it open (after a crash)")
        return EXIT_STORE
    try:
        xml = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        err(f"{args.file}: {exc.strerror or exc}")
        return EXIT_INPUT
    with contextlib.ExitStack() as stack:
        if store is not None:
            if not _hold_leader_lock(store, stack):
                err("a cluster leader is running on this store: POST the file to /api/v1/cap on "
                    "any node of the cluster (or stop its nodes and retry)")
                return EXIT_STORE
            # the snapshots a node takes are its own: this one keeps none
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tocsin-")))
        settings = settings_from_env(data_dir=data_dir, mode=args.mode, store=store,
                                     regions=log_region_set(data_dir, args.regions, store))

        async def run() -> dict[str, Any]:
            service = Service(settings)
            await service.start()
            try:
                return await import_cap(service, xml, key_name="cli")
            finally:
                await service.stop(snapshot=store is None)

        try:
            result = asyncio.run(run())
        except CapError as exc:
            for problem in exc.problems:
                print(f"{args.file}: {problem}", file=sys.stderr)
            err("not a valid CAP 1.2 document; nothing was imported")
            return EXIT_INPUT
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return EXIT_OK


def _hold_leader_lock(store: str, stack: contextlib.ExitStack) -> bool:
    """Take a cluster's leader lock for as long as `stack` is open; False if a leader has it."""
    from tocsin.cluster.lease import LeaderLease
    from tocsin.store.postgres import PostgresLog

    log = PostgresLog(store)
    stack.callback(log.close)
    lease = LeaderLease(log, timeout_s=3600)
    stack.callback(lease.release)
    return lease.try_acquire()


def cmd_sirens_import(args: argparse.Namespace) -> int:
    """Add or replace sirens from a CSV file (`id,lat,lon[,name]`), each located in a leaf region;
    a running server picks them up within seconds. Any bad line: nothing is imported."""
    from tocsin.outputs.sirens import read_registry
    from tocsin.store import open_admin

    data_dir = Path(args.data_dir)
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        err(f"{args.file}: {exc}")
        return EXIT_INPUT
    regions = load_region_set(log_region_set(data_dir, args.regions, args.store))
    records, errors = read_registry(text, regions)
    if errors:
        for msg in errors[:50]:
            print(f"{args.file}: {msg}", file=sys.stderr)
        if len(errors) > 50:
            print(f"... and {len(errors) - 50} more errors", file=sys.stderr)
        err(f"{len(errors)} bad line(s); nothing was imported")
        return EXIT_INPUT
    store = open_admin(args.store, data_dir)
    try:
        store.put_sirens(records)
        total = len(store.sirens())
    finally:
        store.close()
    covered = len({r.region for r in records})
    print(f"imported {len(records)} sirens in {covered} regions; {total} registered")
    return EXIT_OK


def cmd_sirens_list(args: argparse.Namespace) -> int:
    """List registered sirens: id, region, lat, lon, name."""
    from tocsin.store import open_admin

    store = open_admin(args.store, args.data_dir)
    try:
        for s in store.sirens():
            print(f"{s.id}\t{s.region}\t{s.lat}\t{s.lon}\t{s.name}")
    finally:
        store.close()
    return EXIT_OK


def cmd_siren_sim(args: argparse.Namespace) -> int:
    """Run simulated sirens, each its own MQTT client, that answer tocsin's commands (and a
    share of them that never do), until interrupted or --duration runs out."""
    import asyncio
    import csv
    import os
    import signal

    import aiomqtt

    from tocsin.outputs.sirens import parse_broker_url
    from tocsin.outputs.sirensim import SimStats, simulate_sirens

    broker = parse_broker_url(args.broker)
    if args.ids_from:
        try:
            with open(args.ids_from, encoding="utf-8-sig", newline="") as fh:
                ids = [row["id"].strip() for row in csv.DictReader(fh) if row.get("id")]
        except (OSError, KeyError) as exc:
            err(f"{args.ids_from}: no id column ({exc})")
            return EXIT_INPUT
        ids = ids[: args.count] if args.count else ids
    else:
        ids = [f"{args.prefix}{i:05d}" for i in range(1, (args.count or 1000) + 1)]

    def ready(stats: SimStats) -> None:
        print(f"ready: {stats.connected} sirens connected to {args.broker} "
              f"({len(stats.failing)} never acknowledge)", file=sys.stderr, flush=True)

    async def reachable() -> str | None:
        try:
            async with asyncio.timeout(10):
                async with broker.client(f"siren-sim-probe-{os.getpid()}"):
                    return None
        except (TimeoutError, aiomqtt.MqttError) as exc:
            return str(exc) or type(exc).__name__

    async def run() -> SimStats | str:
        problem = await reachable()
        if problem is not None:
            return problem
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration:
            loop.call_later(args.duration, stop.set)
        return await simulate_sirens(ids, broker, fail_rate=args.fail_rate,
                                     heartbeat_s=args.heartbeat, seed=args.seed, stop=stop,
                                     on_ready=ready, mode=args.mode)

    stats = asyncio.run(run())
    if isinstance(stats, str):
        err(f"cannot reach the MQTT broker {args.broker}: {stats}")
        return EXIT_CHECK
    print(f"{stats.sirens} sirens: {stats.commands} commands received, {stats.acks} "
          f"acknowledged, {stats.ignored} left unanswered")
    return EXIT_OK


