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
    log: EventLog = open_log(args.data_dir) if args.data_dir else MemoryLog()
    if log.max_seq():
        _err(f"{args.data_dir} already holds a log; simulate needs an empty data directory")
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
    db = Path(args.data_dir) / "tocsin.db"
    if not db.is_file():
        _err(f"{args.data_dir}: no log here (expected {db})")
        return EXIT_INPUT
    log = open_log(args.data_dir)
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
    server.run()
    return EXIT_OK


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
    from tocsin.store.admin import AdminStore

    return AdminStore(Path(args.data_dir) / "admin.db")


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
    p.add_argument("--data-dir", required=True, help="the data directory holding tocsin.db")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tocsin` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
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
