"""Command line: `tocsin simulate | replay | regions` (and the commands of later layers).

Exit codes: 0 success, 1 a check failed (replay mismatch), 2 bad input (with the line number,
field and reason on stderr), 3 the log could not be read or written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy, load_policy
from tocsin.errors import (
    IntegrityError,
    PolicyError,
    RegionSetError,
    ReplayMismatch,
    StoreError,
    TocsinError,
    ValidationError,
)
from tocsin.geo import DEFAULT_REGION_SET, RegionSet, load_region_set
from tocsin.ledger import Ledger
from tocsin.model import Tick, parse_event
from tocsin.store import EventLog, MemoryLog, open_log

__all__ = ["main"]

EXIT_OK, EXIT_CHECK, EXIT_INPUT, EXIT_STORE = 0, 1, 2, 3
PROGRESS_MIN = 20_000  # lines or entries before a progress bar is worth drawing


def _err(msg: str) -> None:
    print(f"tocsin: {msg}", file=sys.stderr)


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr for long runs; a no-op otherwise."""
    if total < PROGRESS_MIN or not sys.stderr.isatty():
        yield lambda _n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.update(task, completed=n)


def _engine_factory(regions: RegionSet, policy: Policy) -> Callable[[], Engine]:
    from tocsin.threats import load_catalog

    catalog = load_catalog()
    return lambda: Engine(regions, catalog, policy)


def _bundled_scenarios() -> list[str]:
    root = resources.files("tocsin") / "scenarios"
    names = (p.name for p in root.iterdir())
    return sorted(n.removesuffix(".jsonl") for n in names if n.endswith(".jsonl"))


def _read_events(
    stream: Iterable[str], regions: RegionSet, policy: Policy
) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """Read and validate a whole JSONL file: (line, raw) pairs and error messages."""
    known = regions.regions.__contains__
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[str] = []
    tick: datetime | None = None
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {lineno}: invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        try:
            event = parse_event(raw, region_known=known)
        except ValidationError as exc:
            errors.extend(f"line {lineno}: {e.field}: {e.reason}" for e in exc.errors)
            continue
        if isinstance(event, Tick):
            tick = event.time if tick is None else max(tick, event.time)
        elif tick is not None:
            ahead = (event.time - tick).total_seconds()
            if ahead > policy.max_future_s:
                errors.append(
                    f"line {lineno}: time: {ahead:.0f} s ahead of the clock; "
                    f"the limit is {policy.max_future_s:.0f} s"
                )
                continue
        rows.append((lineno, raw))
    return rows, errors


def _load_context(args: argparse.Namespace) -> tuple[RegionSet, Policy]:
    return load_region_set(args.regions), load_policy(args.policy)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Apply a JSONL file of events in order, then run the clock until nothing is pending."""
    regions, policy = _load_context(args)
    if args.scenario:
        path = resources.files("tocsin") / "scenarios" / f"{args.scenario}.jsonl"
        if not path.is_file():
            _err(f"no bundled scenario {args.scenario!r}; have: {', '.join(_bundled_scenarios())}")
            return EXIT_INPUT
        text = path.read_text(encoding="utf-8")
        rows, errors = _read_events(text.splitlines(), regions, policy)
    elif args.events == "-":
        rows, errors = _read_events(sys.stdin, regions, policy)
    elif args.events:
        try:
            with open(args.events, encoding="utf-8") as fh:
                rows, errors = _read_events(fh, regions, policy)
        except OSError as exc:
            _err(f"{args.events}: {exc.strerror}")
            return EXIT_INPUT
        except UnicodeDecodeError as exc:
            _err(f"{args.events}: not UTF-8 text ({exc.reason})")
            return EXIT_INPUT
    else:
        _err("give an EVENTS.jsonl file, '-' for stdin, or --scenario NAME")
        return EXIT_INPUT
    if errors:
        for msg in errors[:50]:
            print(msg, file=sys.stderr)
        if len(errors) > 50:
            print(f"... and {len(errors) - 50} more errors", file=sys.stderr)
        _err(f"{len(errors)} invalid line(s); nothing was applied")
        return EXIT_INPUT
    where = args.store or args.data_dir
    log: EventLog = open_log(where) if where else MemoryLog()
    if log.max_seq():
        _err(f"{where} already holds a log; simulate needs an empty data directory")
        return EXIT_INPUT
    log.set_meta("regions", args.regions)
    log.set_meta("policy", json.dumps(policy.to_dict(), sort_keys=True))
    ledger = Ledger(log, _engine_factory(regions, policy))
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        with _progress(len(rows), "simulate") as advance:
            for n, (lineno, raw) in enumerate(rows, 1):
                (res,) = ledger.submit([raw])
                if res.duplicate:
                    print(f"line {lineno}: duplicate of event {res.source}/{res.id} "
                          f"(seq {res.seq}); not applied", file=sys.stderr)
                for note in res.notes:
                    print(f"line {lineno}: {note}", file=sys.stderr)
                for t in res.transitions:
                    out.write(t.to_json() + "\n")
                advance(n)
            for t in ledger.drain():
                out.write(t.to_json() + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
        log.close()
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Rebuild state from a log and check it reproduces every logged transition."""
    if args.store is None:
        if args.data_dir is None:
            _err("give --data-dir or --store")
            return EXIT_INPUT
        db = Path(args.data_dir) / "tocsin.db"
        if not db.is_file():
            _err(f"{args.data_dir}: no log here (expected {db})")
            return EXIT_INPUT
    log = open_log(args.store or args.data_dir)
    try:
        region_name = args.regions or log.get_meta("regions") or DEFAULT_REGION_SET
        stored_policy = log.get_meta("policy")
        policy = (
            load_policy(args.policy) if args.policy
            else load_policy(json.loads(stored_policy)) if stored_policy else Policy()
        )
        ledger = Ledger(log, _engine_factory(load_region_set(region_name), policy))
        total = log.max_seq()
        with _progress(total, "replay") as advance:
            last = ledger.recover(progress=advance)
    except ReplayMismatch as exc:
        _err(f"replay differs from the log at seq {exc.seq}")
        print(f"  logged:   {exc.expected}", file=sys.stderr)
        print(f"  replayed: {exc.got}", file=sys.stderr)
        return EXIT_CHECK
    except IntegrityError as exc:
        # a row missing from the middle of the log is a failed check of its history, not an
        # unreadable log: it is what `replay` exists to catch
        _err(f"replay found the log broken: {exc}")
        return EXIT_CHECK
    finally:
        log.close()
    print(f"replayed {last} entries: every transition reproduced")
    return EXIT_OK


def cmd_regions_list(args: argparse.Namespace) -> int:
    """Print the regions of a set, one per line: id, level, parent, name."""
    regions = load_region_set(args.set)
    for r in regions.regions.values():
        if args.level and r.level != args.level:
            continue
        print(f"{r.id}\t{r.level}\t{r.parent or '-'}\t{r.name}")
    return EXIT_OK


def cmd_regions_locate(args: argparse.Namespace) -> int:
    """Print the chain of regions containing a point, finest first."""
    regions = load_region_set(args.set)
    leaf = regions.locate(args.lat, args.lon)
    if leaf is None:
        _err(f"({args.lat}, {args.lon}) is in no region of {args.set}")
        return EXIT_CHECK
    for r in regions.chain(leaf):
        uid = f"\talerts.in.ua:{r.alerts_uid}" if r.alerts_uid is not None else ""
        print(f"{r.level}\t{r.id}\t{r.name}{uid}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API, engine and outputs in one process on the embedded stores."""
    import logging

    import uvicorn

    from tocsin.api import create_app
    from tocsin.config import settings_from_env

    settings = settings_from_env(
        host=args.host, port=args.port, data_dir=args.data_dir, regions=args.regions,
        policy=args.policy, private=args.private or None, mode=args.mode,
        demo=args.demo or None,
        log_key=args.log_key,
        mqtt_url=args.mqtt,
        store=args.store, bus=args.bus, node_id=args.node_id, cluster_name=args.cluster_name,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=10, access_log=False)
    server = _Server(config)
    service = app.state.service
    original_exit = server.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        original_exit(sig, frame)
        if service.closing_loop is not None:
            with contextlib.suppress(RuntimeError):
                service.closing_loop.call_soon_threadsafe(service.begin_shutdown)

    server.handle_exit = handle_exit
    print(f"tocsin serving on http://{settings.host}:{settings.port}/ "
          f"(data in {settings.data_dir})", file=sys.stderr, flush=True)
    _tune_gc()
    server.run()
    return EXIT_OK


def _tune_gc() -> None:
    """Collect cycles less often in a long-running server with thousands of open streams.

    Each open stream keeps a few hundred objects alive, and a live transition wakes every stream
    at once: with the default first-generation threshold (700) the collector runs hundreds of
    times during one fan-out and promotes in-flight objects until a full collection walks every
    stream's objects. What is loaded at startup (regions, catalog) lives as long as the process,
    so it is frozen out of the collector's walks altogether.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


class _Server:
    """uvicorn's server, minus re-raising SIGTERM after a graceful shutdown (exit code 0)."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                import signal
                import threading

                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                handled = (signal.SIGINT, signal.SIGTERM)
                original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
                try:
                    yield
                finally:
                    for sig, handler in original.items():
                        signal.signal(sig, handler)

        return Quiet(config)


def _admin_store(args: argparse.Namespace) -> Any:
    from tocsin.store.admin import open_admin

    return open_admin(args.store, args.data_dir)


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create an API key; prints the key alone on stdout (it is stored hashed)."""
    store = _admin_store(args)
    try:
        key, rec = store.create_key(args.role, args.name)
    finally:
        store.close()
    print(key)
    print(f"created key {rec.id} ({rec.name}, {rec.role})", file=sys.stderr)
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace) -> int:
    """List keys: id, name, role, created, revoked."""
    store = _admin_store(args)
    try:
        for k in store.list_keys():
            print(f"{k.id}\t{k.name}\t{k.role}\t{k.created_at}\t{k.revoked_at or '-'}")
    finally:
        store.close()
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by id or name."""
    store = _admin_store(args)
    try:
        done = store.revoke_key(args.key)
    finally:
        store.close()
    if not done:
        _err(f"no live key {args.key!r}")
        return EXIT_CHECK
    print(f"revoked {args.key}", file=sys.stderr)
    return EXIT_OK


def _duration(text: str) -> float:
    """A duration such as 30m, 1h, 90s or 45 (seconds)."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|min|h)?", text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 30m, 1h, 90s): {text!r}")
    return float(m.group(1)) * {"h": 3600, "m": 60, "min": 60}.get(m.group(2) or "s", 1)


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the log's Merkle tree and signed tree heads, offline (a data directory) or online
    (a live server, as any outsider can); exit 1 naming the first bad leaf index."""
    from tocsin.verify import count_entries, load_public_key, verify_data_dir

    if args.url:
        return _verify_url(args)
    data_dir = Path(args.data_dir)
    key_source = args.public_key
    if key_source is None and (data_dir / "log-signing.key").is_file():
        key_source = str(data_dir / "log-signing.key")
    try:
        public = load_public_key(key_source) if key_source else None
    except (ValueError, TocsinError) as exc:
        _err(f"--public-key: {exc}")
        return EXIT_INPUT
    total = count_entries(data_dir)
    with _progress(total, "verify") as advance:
        report = verify_data_dir(data_dir, public, progress=advance)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    rate = report.entries / report.seconds if report.seconds else 0.0
    if not report.ok:
        first = report.first_bad_index
        if first is not None:
            _err(f"the log fails verification; first bad index {first} (seq {first + 1})")
        else:
            _err("the log fails verification")
        for problem in report.problems[:50]:
            print(f"  {problem}", file=sys.stderr)
        if len(report.problems) > 50:
            print(f"  ... and {len(report.problems) - 50} more", file=sys.stderr)
        return EXIT_CHECK
    print(f"verified {report.entries} entries and {report.heads} signed tree heads in "
          f"{report.seconds:.2f} s ({rate:,.0f} entries/s); tree_size {report.tree_size}, "
          f"root {report.root_hash}")
    return EXIT_OK


def _verify_url(args: argparse.Namespace) -> int:
    import httpx

    from tocsin.verify import verify_remote

    state = Path(args.state) if args.state else Path.home() / ".tocsin-verify.json"
    url = args.url.rstrip("/")
    bar: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if total >= 200 and sys.stderr.isatty():
            if "bar" not in bar:
                from rich.progress import Progress

                bar["bar"] = Progress(transient=True)
                bar["bar"].start()
                bar["task"] = bar["bar"].add_task("verify", total=total)
            bar["bar"].update(bar["task"], completed=done)

    try:
        with httpx.Client(base_url=url, timeout=args.timeout) as client:
            report = verify_remote(client, url, state, check_entries=args.check_entries,
                                   latest=args.latest, full=args.full, progress=progress)
    finally:
        if "bar" in bar:
            bar["bar"].stop()
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if not report.ok:
        first = report.first_bad_index
        _err(f"{url}: the log fails verification"
             + ("" if first is None else f"; first bad index {first}"))
        for problem in report.problems[:50]:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CHECK
    print(f"{url}: signed tree head verified (tree_size {report.tree_size}, root "
          f"{report.root_hash}); {report.proofs} proof(s) and {report.entries} entries checked; "
          f"state in {state}")
    return EXIT_OK


def cmd_history_import(args: argparse.Namespace) -> int:
    """Import the official air-raid alert record (CSV, plain or gzipped) as past alerts.

    Alerts go to their own table next to the log (not to the log: they are someone else's
    record, and must not drive today's engine); they are served by GET /api/v1/alerts and used
    by `tocsin audit`. Importing again, or the other language's edition, adds nothing twice.
    """
    import gzip
    import hashlib
    import io
    import time

    from tocsin.history_import import RowProblem, read_official
    from tocsin.store.history import HistoryAlert, HistoryStore

    path = Path(args.file)
    started = time.perf_counter()
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8-sig")
    except OSError as exc:
        _err(f"{path}: {exc.strerror or exc}")
        return EXIT_INPUT
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        _err(f"{path}: not UTF-8 CSV text ({exc})")
        return EXIT_INPUT
    total = text.count("\n")
    store = HistoryStore(Path(args.data_dir) / "tocsin.db")
    rows = added = 0
    problems: list[RowProblem] = []
    repaired = 0
    try:
        batch: list[HistoryAlert] = []
        with _progress(total, "import") as advance:
            for item in read_official(io.StringIO(text, newline="")):
                if isinstance(item, RowProblem):
                    if item.reason.startswith("repaired"):
                        repaired += 1
                        print(f"{path}:{item}", file=sys.stderr)
                    else:
                        problems.append(item)
                        rows += 1
                    continue
                rows += 1
                batch.append(item)
                if len(batch) >= 5000:
                    added += store.add(batch)
                    batch = []
                    advance(rows)
            added += store.add(batch)
            advance(rows)
        if problems and problems[0].line == 1:
            _err(f"{path}: {problems[0].reason}")
            return EXIT_INPUT
        store.record_import(path.name, hashlib.sha256(raw).hexdigest(), rows, added,
                            len(problems))
        stored = store.count()
    finally:
        store.close()
    for problem in problems[:200]:
        print(f"{path}:{problem}", file=sys.stderr)
    if len(problems) > 200:
        print(f"... and {len(problems) - 200} more", file=sys.stderr)
    seconds = time.perf_counter() - started
    imported = rows - len(problems)
    print(f"read {rows} rows: {imported} alerts ({added} new, {imported - added} already "
          f"stored), {len(problems)} not mapped, {repaired} repaired; {stored} alerts stored; "
          f"{seconds:.2f} s ({rows / seconds if seconds else 0:,.0f} rows/s)")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    """Audit impacts against alerts: each impact in the log (covered, lead time or silent) and,
    with --attacks, each recorded attack against the imported alert history."""
    from tocsin.audit.report import run_audit, write_outputs

    attacks = Path(args.attacks) if args.attacks else None
    if attacks is not None and not attacks.is_file():
        _err(f"{attacks}: no such file")
        return EXIT_INPUT
    result = run_audit(Path(args.data_dir), attacks, args.tolerance, region_set=args.regions)
    write_outputs(result, Path(args.out))
    s = result.summary
    coverage = "n/a" if s["coverage"] is None else f"{100 * s['coverage']:.1f} %"
    median = "n/a" if s["median_lead_s"] is None else f"{s['median_lead_s'] / 60:.0f} min"
    imp = s["impacts"]
    print(f"attacks: {s['attacks_considered']} cases, {s['covered']} covered ({coverage}), "
          f"median lead {median}; impacts in the log: {imp['impacts']} ({imp['covered']} under "
          f"alert, {imp['silent']} silent); wrote {args.out}/summary.json, cases.csv, "
          "report.html")
    return EXIT_OK


def _log_region_set(data_dir: Path, fallback: str | None, store: str | None = None) -> str:
    """The region set a data directory's log was decided on (else `fallback`, else default)."""
    if store is not None or (data_dir / "tocsin.db").is_file():
        log = open_log(store or data_dir)
        try:
            stored = log.get_meta("regions")
        finally:
            log.close()
        if stored:
            return stored
    return fallback or DEFAULT_REGION_SET


def cmd_cap_import(args: argparse.Namespace) -> int:
    """Take a CAP 1.2 alert from another authority into a data directory's log, in-process.

    The server must not be running on that directory (POST the file to /api/v1/cap instead):
    this runs a service of its own on the log, which decides the alert exactly as the server
    would; the next `tocsin serve` then starts with it. Prints what each message did as JSON.
    """
    import asyncio

    from tocsin.config import settings_from_env
    from tocsin.outputs.cap import CapError
    from tocsin.outputs.capin import import_cap
    from tocsin.service import Service

    data_dir = Path(args.data_dir)
    if (data_dir / "tocsin.db-wal").exists() and not args.force:
        _err(f"{data_dir}/tocsin.db is open (tocsin.db-wal exists): stop the server and retry, "
             "or POST the file to /api/v1/cap; --force if no process has it open (after a crash)")
        return EXIT_STORE
    try:
        xml = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        _err(f"{args.file}: {exc.strerror or exc}")
        return EXIT_INPUT
    settings = settings_from_env(data_dir=data_dir, mode=args.mode,
                                 regions=_log_region_set(data_dir, args.regions))

    async def run() -> dict[str, Any]:
        service = Service(settings)
        await service.start()
        try:
            return await import_cap(service, xml, key_name="cli")
        finally:
            await service.stop()

    try:
        result = asyncio.run(run())
    except CapError as exc:
        for problem in exc.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        _err("not a valid CAP 1.2 document; nothing was imported")
        return EXIT_INPUT
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return EXIT_OK


def cmd_sirens_import(args: argparse.Namespace) -> int:
    """Add or replace sirens from a CSV file (`id,lat,lon[,name]`), each located in a leaf region;
    a running server picks them up within seconds. Any bad line: nothing is imported."""
    from tocsin.outputs.sirens import read_registry
    from tocsin.store.admin import open_admin

    data_dir = Path(args.data_dir)
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        _err(f"{args.file}: {exc}")
        return EXIT_INPUT
    regions = load_region_set(_log_region_set(data_dir, args.regions, args.store))
    records, errors = read_registry(text, regions)
    if errors:
        for msg in errors[:50]:
            print(f"{args.file}: {msg}", file=sys.stderr)
        if len(errors) > 50:
            print(f"... and {len(errors) - 50} more errors", file=sys.stderr)
        _err(f"{len(errors)} bad line(s); nothing was imported")
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
    from tocsin.store.admin import open_admin

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
    import signal

    from tocsin.outputs.sirens import SimStats, parse_broker_url, simulate_sirens

    broker = parse_broker_url(args.broker)
    if args.ids_from:
        try:
            with open(args.ids_from, encoding="utf-8-sig", newline="") as fh:
                ids = [row["id"].strip() for row in csv.DictReader(fh) if row.get("id")]
        except (OSError, KeyError) as exc:
            _err(f"{args.ids_from}: no id column ({exc})")
            return EXIT_INPUT
        ids = ids[: args.count] if args.count else ids
    else:
        ids = [f"{args.prefix}{i:05d}" for i in range(1, (args.count or 1000) + 1)]

    def ready(stats: SimStats) -> None:
        print(f"ready: {stats.connected} sirens connected to {args.broker} "
              f"({len(stats.failing)} never acknowledge)", file=sys.stderr, flush=True)

    async def run() -> SimStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration:
            loop.call_later(args.duration, stop.set)
        return await simulate_sirens(ids, broker, fail_rate=args.fail_rate,
                                     heartbeat_s=args.heartbeat, seed=args.seed, stop=stop,
                                     on_ready=ready)

    stats = asyncio.run(run())
    print(f"{stats.sirens} sirens: {stats.commands} commands received, {stats.acks} "
          f"acknowledged, {stats.ignored} left unanswered")
    return EXIT_OK


def _latitude(text: str) -> float:
    value = float(text)
    if not -90 <= value <= 90:
        raise argparse.ArgumentTypeError(f"latitude out of range: {text}")
    return value


def _longitude(text: str) -> float:
    value = float(text)
    if not -180 <= value <= 180:
        raise argparse.ArgumentTypeError(f"longitude out of range: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (also used to document them)."""
    parser = argparse.ArgumentParser(
        prog="tocsin", description="Open civil-defence software for air-raid warning."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("simulate", help="apply a JSONL file of events; print the transitions",
                       description=cmd_simulate.__doc__)
    p.add_argument("events", nargs="?", metavar="EVENTS.jsonl",
                   help="one event per line ('-' reads stdin)")
    p.add_argument("--scenario", help="play a bundled scenario instead of a file")
    p.add_argument("--regions", default=DEFAULT_REGION_SET,
                   help="region set name (ua-oblasts, ua-raions, ua-hromadas) or GeoJSON path")
    p.add_argument("--policy", help="policy file (JSON or TOML)")
    p.add_argument("--out", help="write transitions here instead of stdout")
    p.add_argument("--data-dir", help="also keep the log in this (empty) data directory")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("replay", help="rebuild state from a log and check every transition",
                       description=cmd_replay.__doc__)
    p.add_argument("--data-dir", help="the data directory holding tocsin.db")
    p.add_argument("--regions", help="region set (default: the one recorded in the log)")
    p.add_argument("--policy", help="policy file (default: the one recorded in the log)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("serve", help="run the HTTP API, engine and outputs",
                       description=cmd_serve.__doc__)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8080)")
    p.add_argument("--data-dir", help="data directory (default ./tocsin-data)")
    p.add_argument("--regions", help="region set name or GeoJSON path (default ua-hromadas)")
    p.add_argument("--policy", help="policy file (JSON or TOML)")
    p.add_argument("--private", action="store_true", help="require a key for reads too")
    p.add_argument("--mode", choices=("actual", "exercise", "test"),
                   help="deployment mode (CAP status); default actual")
    p.add_argument("--demo", action="store_true",
                   help="play the bundled night-wave scenario in real time (an exercise)")
    p.add_argument("--log-key", metavar="PATH",
                   help="Ed25519 key (PEM) signing the log's tree heads (default: "
                        "log-signing.key in the data directory, made on first start)")
    p.add_argument("--mqtt", metavar="URL",
                   help="MQTT broker for sirens, e.g. mqtt://127.0.0.1:1883 (default: off)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keys", help="create, list and revoke API keys")
    ksub = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    q = ksub.add_parser("create", help="create a key", description=cmd_keys_create.__doc__)
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.add_argument("--role", required=True, choices=("reader", "sensor", "operator", "admin"))
    q.add_argument("--name", help="a name recorded with every event the key submits")
    q.set_defaults(func=cmd_keys_create)
    q = ksub.add_parser("list", help="list keys", description=cmd_keys_list.__doc__)
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.set_defaults(func=cmd_keys_list)
    q = ksub.add_parser("revoke", help="revoke a key", description=cmd_keys_revoke.__doc__)
    q.add_argument("key", help="key id or name")
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("regions", help="list region sets and locate points")
    rsub = p.add_subparsers(dest="regions_command", metavar="SUBCOMMAND", required=True)
    q = rsub.add_parser("list", help="list the regions of a set",
                        description=cmd_regions_list.__doc__)
    q.add_argument("--set", default=DEFAULT_REGION_SET, help="region set name or GeoJSON path")
    q.add_argument("--level", help="only this level (oblast, raion, hromada, …)")
    q.set_defaults(func=cmd_regions_list)
    q = rsub.add_parser("locate", help="the regions containing a point",
                        description=cmd_regions_locate.__doc__)
    q.add_argument("lat", type=_latitude, help="latitude (WGS84)")
    q.add_argument("lon", type=_longitude, help="longitude (WGS84)")
    q.add_argument("--set", default=DEFAULT_REGION_SET, help="region set name or GeoJSON path")
    q.set_defaults(func=cmd_regions_locate)

    p = sub.add_parser("verify", help="check the log's Merkle tree and signed tree heads",
                       description=cmd_verify.__doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", help="check this data directory offline")
    where.add_argument("--url", help="check a live server, e.g. http://127.0.0.1:8080")
    p.add_argument("--public-key", metavar="KEY",
                   help="offline: the log's public key, a PEM file or base64 (default: the "
                        "data directory's log-signing.key)")
    p.add_argument("--state", metavar="FILE",
                   help="online: where the pinned key and last head are kept "
                        "(default ~/.tocsin-verify.json)")
    p.add_argument("--check-entries", type=int, default=16, metavar="N",
                   help="online: prove inclusion of N entries chosen at random (default 16)")
    p.add_argument("--latest", action="store_true",
                   help="online: check the latest N entries instead of random ones")
    p.add_argument("--full", action="store_true",
                   help="online: download every entry and rebuild the whole tree")
    p.add_argument("--timeout", type=float, default=30.0, help="online: seconds per request")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("history", help="import past alerts from an outside record")
    hsub = p.add_subparsers(dest="history_command", metavar="SUBCOMMAND", required=True)
    q = hsub.add_parser("import", help="import the official air-raid alert record",
                        description=cmd_history_import.__doc__)
    q.add_argument("file", metavar="FILE",
                   help="official_data_en.csv or official_data_uk.csv (or .csv.gz)")
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.set_defaults(func=cmd_history_import)

    p = sub.add_parser("audit", help="impacts and recorded attacks against alerts",
                       description=cmd_audit.__doc__)
    p.add_argument("--data-dir", required=True, help="the data directory to audit")
    p.add_argument("--attacks", metavar="FILE",
                   help="attack table (missile_attacks_daily.csv, plain or gzipped)")
    p.add_argument("--tolerance", type=_duration, default=1800.0,
                   help="widen each attack window by this much on both sides (default 30m)")
    p.add_argument("--out", required=True, help="directory for summary.json, cases.csv and "
                                                "report.html")
    p.add_argument("--regions", help="region set to locate impacts (default: the log's)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("cap", help="CAP 1.2 alerts from other authorities")
    csub = p.add_subparsers(dest="cap_command", metavar="SUBCOMMAND", required=True)
    q = csub.add_parser("import", help="take a CAP alert into a data directory's log",
                        description=cmd_cap_import.__doc__)
    q.add_argument("file", metavar="FILE", help="a CAP 1.2 XML document ('-' reads stdin)")
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.add_argument("--regions", help="region set for a new data directory (default: the log's)")
    q.add_argument("--mode", choices=("actual", "exercise", "test"),
                   help="deployment mode: Exercise and Test messages act only in their mode")
    q.add_argument("--force", action="store_true",
                   help="go ahead although the log looks open by another process")
    q.set_defaults(func=cmd_cap_import)

    p = sub.add_parser("sirens", help="the siren registry")
    ssub = p.add_subparsers(dest="sirens_command", metavar="SUBCOMMAND", required=True)
    q = ssub.add_parser("import", help="add or replace sirens from a CSV file",
                        description=cmd_sirens_import.__doc__)
    q.add_argument("file", metavar="CSV", help="columns id, lat, lon and optionally name")
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.add_argument("--regions", help="region set for a new data directory (default: the log's)")
    q.set_defaults(func=cmd_sirens_import)
    q = ssub.add_parser("list", help="list registered sirens", description=cmd_sirens_list.__doc__)
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.set_defaults(func=cmd_sirens_list)

    p = sub.add_parser("siren-sim", help="run simulated MQTT sirens (demos, tests, benchmarks)",
                       description=cmd_siren_sim.__doc__)
    p.add_argument("--count", type=int, help="how many sirens (default 1000, or all of --ids-from)")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="MQTT broker URL")
    p.add_argument("--fail-rate", type=float, default=0.0,
                   help="share of sirens that never acknowledge (default 0)")
    p.add_argument("--ids-from", metavar="CSV", help="take the siren ids from a registry CSV")
    p.add_argument("--prefix", default="sim-", help="id prefix of generated sirens (sim-00001…)")
    p.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    p.add_argument("--seed", type=int, default=1, help="seed choosing the failing sirens")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_siren_sim)

    _add_store_options(parser)
    return parser


# Commands whose --data-dir holds something kept per node, not in a cluster's shared store.
_PER_NODE = {
    "verify": "check a cluster as outsiders do: tocsin verify --url http://<any node>:<port>",
    "audit": "audit a cluster's log from a node's API, or copy it to a data directory first",
    "history": "imported history is kept per node: import into each node's --data-dir",
    "cap": "POST the file to /api/v1/cap on any node of the cluster",
}


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    """`--store URL` next to every `--data-dir`; `serve` also gets the cluster's options."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for name, command in getattr(action, "choices", {}).items():
            if name == "serve":
                command.add_argument("--bus", metavar="URL",
                                     help="NATS JetStream of a cluster, e.g. "
                                          "nats://127.0.0.1:4222 (needs --store)")
                command.add_argument("--node-id", help="this node's name in the cluster "
                                                       "(default: host name and port)")
                command.add_argument("--cluster-name",
                                     help="names the cluster's JetStream streams (default tocsin)")
            nested = [command]
            if command._subparsers is not None:
                nested = [c for a in command._subparsers._group_actions
                          for c in getattr(a, "choices", {}).values()]
            for leaf in nested:
                if any("--data-dir" in a.option_strings for a in leaf._actions):
                    leaf.add_argument(
                        "--store", metavar="URL",
                        help="a cluster's shared store, postgresql://user@host:5432/db "
                             "(instead of the SQLite files of --data-dir)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tocsin` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT
    if getattr(args, "store", None) and args.command in _PER_NODE:
        _err(f"--store: {_PER_NODE[args.command]}")
        return EXIT_INPUT
    try:
        result: int = args.func(args)
        return result
    except (RegionSetError, PolicyError, ValidationError) as exc:
        _err(str(exc))
        return EXIT_INPUT
    except StoreError as exc:
        _err(f"log: {exc}")
        return EXIT_STORE
    except TocsinError as exc:
        _err(str(exc))
        return EXIT_CHECK
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
