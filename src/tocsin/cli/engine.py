"""`tocsin simulate`, `replay` and `regions`: the engine and regions from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from tocsin.cli.common import (
    EXIT_CHECK,
    EXIT_INPUT,
    EXIT_OK,
    engine_factory,
    err,
    progress,
)
from tocsin.engine.policy import Policy, load_policy
from tocsin.errors import (
    Conflict,
    IntegrityError,
    ReplayMismatch,
    ValidationError,
)
from tocsin.geo import DEFAULT_REGION_SET, RegionSet, load_region_set
from tocsin.ledger import Ledger
from tocsin.model import Event, Tick, parse_event
from tocsin.store import EventLog, MemoryLog, open_log
from tocsin.store.merkle import check_canonical
from tocsin.trust import admit, load_json


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
            raw = load_json(line, "(line)")
        except ValidationError as exc:
            errors.extend(f"line {lineno}: {e.reason}" for e in exc.errors)
            continue
        try:
            event = parse_event(raw, region_known=known)
            check_canonical(raw)  # what the log could not hash is refused here, not mid-apply
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
            err(f"no bundled scenario {args.scenario!r}; have: {', '.join(_bundled_scenarios())}")
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
            err(f"{args.events}: {exc.strerror}")
            return EXIT_INPUT
        except UnicodeDecodeError as exc:
            err(f"{args.events}: not UTF-8 text ({exc.reason})")
            return EXIT_INPUT
    else:
        err("give an EVENTS.jsonl file, '-' for stdin, or --scenario NAME")
        return EXIT_INPUT
    if errors:
        for msg in errors[:50]:
            print(msg, file=sys.stderr)
        if len(errors) > 50:
            print(f"... and {len(errors) - 50} more errors", file=sys.stderr)
        err(f"{len(errors)} invalid line(s); nothing was applied")
        return EXIT_INPUT
    where = args.store or args.data_dir
    log: EventLog = open_log(where) if where else MemoryLog()
    try:
        if log.max_seq():
            err(f"{where} already holds a log; simulate needs an empty data directory")
            return EXIT_INPUT
        # The whole file is applied in memory first, so a line the engine refuses (or an id
        # repeated with another body) leaves the data directory untouched and writes no output.
        staged = MemoryLog()
        ledger = Ledger(staged, engine_factory(regions, policy))
        errors = _apply(ledger, rows)
        if errors:
            for msg in errors[:50]:
                print(msg, file=sys.stderr)
            err(f"{len(errors)} line(s) refused; nothing was applied")
            return EXIT_INPUT
        ledger.drain()
        entries = list(staged.read())
        hashes = [leaf for _, leaf in staged.leaf_hashes(1, staged.max_seq())]
        log.set_meta("regions", args.regions)
        log.set_meta("policy", json.dumps(policy.to_dict(), sort_keys=True))
        log.append(entries, hashes)  # one transaction: all of the file or nothing
        out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
        try:
            out.writelines(e.body + "\n" for e in entries if e.kind == "transition")
        finally:
            if out is not sys.stdout:
                out.close()
    finally:
        log.close()
    return EXIT_OK


def _apply(ledger: Ledger, rows: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Apply the checked lines in order; the lines refused at apply time, as messages."""
    errors: list[str] = []
    log = ledger.log

    def body_at(seq: int) -> Any:
        return next((e.obj() for e in log.read(seq, seq)), None)

    def check(events: Sequence[Event]) -> None:
        admit(None, events, live=ledger.engine.track_sources, find=log.find_event,
              body_at=body_at)

    with progress(len(rows), "simulate") as advance:
        for n, (lineno, raw) in enumerate(rows, 1):
            try:
                (res,) = ledger.submit([raw], admit=check)
            except ValidationError as exc:  # refused before anything was applied
                errors.extend(f"line {lineno}: {e.field}: {e.reason}" for e in exc.errors)
                continue
            except Conflict as exc:
                logged, sent = exc.details["logged_digest"], exc.details["submitted_digest"]
                errors.append(f"line {lineno}: {exc} (logged {logged}, this line {sent})")
                continue
            if res.duplicate:
                print(f"line {lineno}: duplicate of event {res.source}/{res.id} "
                      f"(seq {res.seq}); not applied", file=sys.stderr)
            for note in res.notes:
                print(f"line {lineno}: {note}", file=sys.stderr)
            advance(n)
    return errors


def cmd_replay(args: argparse.Namespace) -> int:
    """Rebuild state from a log and check it reproduces every logged transition."""
    if args.store is None:
        if args.data_dir is None:
            err("give --data-dir or --store")
            return EXIT_INPUT
        db = Path(args.data_dir) / "tocsin.db"
        if not db.is_file():
            err(f"{args.data_dir}: no log here (expected {db})")
            return EXIT_INPUT
    log = open_log(args.store or args.data_dir)
    try:
        region_name = args.regions or log.get_meta("regions") or DEFAULT_REGION_SET
        stored_policy = log.get_meta("policy")
        policy = (
            load_policy(args.policy) if args.policy
            else load_policy(json.loads(stored_policy)) if stored_policy else Policy()
        )
        ledger = Ledger(log, engine_factory(load_region_set(region_name), policy))
        total = log.max_seq()
        with progress(total, "replay") as advance:
            last = ledger.recover(progress=advance)
    except ReplayMismatch as exc:
        err(f"replay differs from the log at seq {exc.seq}")
        print(f"  logged:   {exc.expected}", file=sys.stderr)
        print(f"  replayed: {exc.got}", file=sys.stderr)
        return EXIT_CHECK
    except IntegrityError as exc:
        # a row missing from the middle of the log is a failed check of its history, not an
        # unreadable log: it is what `replay` exists to catch
        err(f"replay found the log broken: {exc}")
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
        err(f"({args.lat}, {args.lon}) is in no region of {args.set}")
        return EXIT_CHECK
    for r in regions.chain(leaf):
        uid = f"\talerts.in.ua:{r.alerts_uid}" if r.alerts_uid is not None else ""
        print(f"{r.level}\t{r.id}\t{r.name}{uid}")
    return EXIT_OK


