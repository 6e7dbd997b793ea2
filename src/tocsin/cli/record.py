"""`tocsin verify`, `history import` and `audit`: the public record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tocsin.cli.common import (
    EXIT_CHECK,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_STORE,
    err,
    progress,
)
from tocsin.errors import (
    TocsinError,
)


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the log's Merkle tree and signed tree heads, offline (a data directory) or online
    (a live server, as any outsider can); exit 1 naming the first bad leaf index."""
    from tocsin.anchor import load_anchor
    from tocsin.logkey import LEGACY_KEY_FILE, PUBLIC_KEY_FILE
    from tocsin.store.readonly import open_readonly
    from tocsin.verify import count_entries, load_public_key, verify_data_dir, verify_store

    if args.url:
        if args.head or args.witness_key:
            err("--head and --witness-key check a data directory or a store (use them with "
                "--data-dir or --store)")
            return EXIT_INPUT
        return _verify_url(args)
    store: str | None = args.store
    data_dir = Path(args.data_dir) if store is None else None
    key_source = args.public_key
    for name in (PUBLIC_KEY_FILE, LEGACY_KEY_FILE):
        if key_source is None and data_dir is not None and (data_dir / name).is_file():
            key_source = str(data_dir / name)
    try:
        public = load_public_key(key_source) if key_source else None
    except (ValueError, TocsinError) as exc:
        err(f"--public-key: {exc}")
        return EXIT_INPUT
    if public is None and store is not None:
        with open_readonly(store=store) as tables:
            public = tables.stored_public_key()
        if public is not None:
            print("note: the public key is the one the store keeps (--public-key checks the "
                  "store against a key kept elsewhere)", file=sys.stderr)
    try:
        witnesses = [load_public_key(k) for k in args.witness_key or ()]
    except (ValueError, TocsinError) as exc:
        err(f"--witness-key: {exc}")
        return EXIT_INPUT
    try:
        anchor = load_anchor(Path(args.head)) if args.head else None
    except ValueError as exc:
        err(f"--head: {exc}")
        return EXIT_INPUT
    total = count_entries(data_dir, store)
    with progress(total, "verify") as advance:
        if store is not None:
            report = verify_store(store, public, progress=advance, anchor=anchor,
                                  witness_keys=witnesses)
        else:
            assert data_dir is not None
            report = verify_data_dir(data_dir, public, progress=advance, anchor=anchor,
                                     witness_keys=witnesses)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    rate = report.entries / report.seconds if report.seconds else 0.0
    if not report.ok:
        first = report.first_bad_index
        if first is not None:
            err(f"the log fails verification; first bad index {first} (seq {first + 1})")
        else:
            err("the log fails verification")
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
        err(f"{url}: the log fails verification"
             + ("" if first is None else f"; first bad index {first}"))
        for problem in report.problems[:50]:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CHECK
    print(f"{url}: signed tree head verified (tree_size {report.tree_size}, root "
          f"{report.root_hash}); {report.proofs} proof(s) and {report.entries} entries checked; "
          f"state in {state}")
    return EXIT_OK


def cmd_witness(args: argparse.Namespace) -> int:
    """Witness a tocsin log: poll its signed tree heads, check each new one extends the last
    one seen (consistency proof), co-sign it and post the cosignature to the server. Exit 1 and
    say where the views split if the log forks or is rewound."""
    import base64
    import logging
    import signal
    import threading

    import httpx

    from tocsin.audit import key_id, public_key_raw
    from tocsin.logkey import public_key_pem
    from tocsin.store.merkle import load_signing_key
    from tocsin.verify import load_public_key
    from tocsin.witness import SplitView, Witness

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    key_path = Path(args.key)
    made = not key_path.exists()
    try:
        key = load_signing_key(key_path, create=True)
        log_key = load_public_key(args.log_public_key) if args.log_public_key else None
    except (ValueError, TocsinError) as exc:
        err(str(exc))
        return EXIT_INPUT
    raw = public_key_raw(key)
    if made:
        pub = key_path.with_name(key_path.name + ".pub")
        pub.write_bytes(public_key_pem(raw))
        print(f"made witness key {key_path} (public key in {pub}); give the log's operator "
              f"this line for their witnesses file:\n{base64.b64encode(raw).decode()} "
              f"{args.name or key_path.stem}", file=sys.stderr)
    if args.interval < 1 or args.timeout <= 0:
        err("--interval must be at least 1 s and --timeout positive")
        return EXIT_INPUT
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    url = args.url.rstrip("/")
    with httpx.Client(base_url=url, timeout=args.timeout) as client:
        try:
            witness = Witness(client, url, Path(args.state), key, log_public_key=log_key)
        except TocsinError as exc:
            err(str(exc))
            return EXIT_INPUT
        print(f"witness {key_id(raw)} watching {url}", file=sys.stderr, flush=True)
        try:
            if args.once:
                head = witness.step()
                last = witness.last
                print("no new head" if head is None else
                      f"co-signed tree_size {head.tree_size}", "" if last is None else
                      f"(witnessed up to tree_size {last.tree_size})")
                return EXIT_OK
            witness.run(args.interval, stop, lambda h: print(
                f"co-signed tree_size {h.tree_size} ({h.timestamp})", flush=True))
        except SplitView as exc:
            err(f"{url}: {exc}")
            return EXIT_CHECK
        except TocsinError as exc:
            err(f"{url}: {exc}")
            return EXIT_STORE
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
    from tocsin.store import open_history
    from tocsin.store.history import HistoryAlert

    path = Path(args.file)
    started = time.perf_counter()
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8-sig")
    except OSError as exc:
        err(f"{path}: {exc.strerror or exc}")
        return EXIT_INPUT
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        err(f"{path}: not UTF-8 CSV text ({exc})")
        return EXIT_INPUT
    total = text.count("\n")
    store = open_history(args.store, args.data_dir)
    rows = added = 0
    problems: list[RowProblem] = []
    repaired = 0
    try:
        batch: list[HistoryAlert] = []
        with progress(total, "import") as advance:
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
            err(f"{path}: {problems[0].reason}")
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

    if args.data_dir is None and args.store is None:
        err("give --data-dir or --store")
        return EXIT_INPUT
    attacks = Path(args.attacks) if args.attacks else None
    if attacks is not None and not attacks.is_file():
        err(f"{attacks}: no such file")
        return EXIT_INPUT
    result = run_audit(None if args.data_dir is None else Path(args.data_dir), attacks,
                       args.tolerance, region_set=args.regions, store=args.store)
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


