"""Helpers shared by the commands: exit codes, errors, progress bars, argument types."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import DEFAULT_REGION_SET, RegionSet
from tocsin.store import open_log

EXIT_OK, EXIT_CHECK, EXIT_INPUT, EXIT_STORE = 0, 1, 2, 3
PROGRESS_MIN = 20_000  # lines or entries before a progress bar is worth drawing



def err(msg: str) -> None:
    print(f"tocsin: {msg}", file=sys.stderr)


@contextlib.contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr for long runs; a no-op otherwise."""
    if total < PROGRESS_MIN or not sys.stderr.isatty():
        yield lambda _n: None
        return
    from rich.progress import Progress

    # A bar a thousand steps long: each update takes the bar's lock, and a replay calls this
    # once per entry (an update each would cost more than a second over 250,000 entries).
    step = max(1, total // 1000)
    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        shown = 0

        def advance(n: int) -> None:
            nonlocal shown
            if n - shown >= step or n >= total:
                shown = n
                bar.update(task, completed=n)

        yield advance


def engine_factory(regions: RegionSet, policy: Policy) -> Callable[[], Engine]:
    from tocsin.threats import load_catalog

    catalog = load_catalog()
    return lambda: Engine(regions, catalog, policy)


def latitude(text: str) -> float:
    value = float(text)
    if not -90 <= value <= 90:
        raise argparse.ArgumentTypeError(f"latitude out of range: {text}")
    return value


def longitude(text: str) -> float:
    value = float(text)
    if not -180 <= value <= 180:
        raise argparse.ArgumentTypeError(f"longitude out of range: {text}")
    return value


def duration(text: str) -> float:
    """A duration such as 30m, 1h, 90s or 45 (seconds)."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|min|h)?", text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 30m, 1h, 90s): {text!r}")
    return float(m.group(1)) * {"h": 3600, "m": 60, "min": 60}.get(m.group(2) or "s", 1)


def log_region_set(data_dir: Path, fallback: str | None, store: str | None = None) -> str:
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


def admin_store(args: argparse.Namespace) -> Any:
    from tocsin.store import open_admin

    return open_admin(args.store, args.data_dir)


