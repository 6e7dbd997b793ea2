"""`tocsin scenario record`: a day of the public attack record as an event file."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from tocsin.cli.common import EXIT_INPUT, EXIT_OK, err

ATTACKS_ENV = "TOCSIN_ATTACKS"
PROGRESS_TRACKS = 200  # tracks before a progress bar is worth drawing


def day_arg(text: str) -> date:
    """A YYYY-MM-DD date (argparse type)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def attacks_path(given: str | None) -> Path | None:
    """The attack table: --attacks, else $TOCSIN_ATTACKS; None (with a message) when neither
    names a readable file."""
    name = given or os.environ.get(ATTACKS_ENV)
    if not name:
        err(f"give --attacks FILE (missile_attacks_daily.csv, plain or gzipped) or set "
            f"{ATTACKS_ENV}")
        return None
    path = Path(name)
    if not path.is_file():
        err(f"{name}: no such file")
        return None
    return path


def read_rows(path: Path) -> list[tuple[int, Mapping[str, str]]]:
    """(line, row) pairs of the attack table."""
    from tocsin.audit.report import read_attacks

    return list(read_attacks(path))


@contextlib.contextmanager
def track_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich bar over the tracks of a long day, on a terminal only."""
    if not sys.stderr.isatty():
        yield lambda _n, _total: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task: list[Any] = []

        def advance(n: int, total: int) -> None:
            if total < PROGRESS_TRACKS:
                return
            if not task:
                task.append(bar.add_task(label, total=total))
            bar.update(task[0], completed=n)

        yield advance


def cmd_scenario_record(args: argparse.Namespace) -> int:
    """Turn the attack record's rows of one day into a deterministic event file: one simulated
    track per launched weapon (see docs/scenarios.md); the same seed gives the same bytes."""
    from tocsin.geo import load_region_set
    from tocsin.scenarios.record import RecordError, build_day
    from tocsin.threats import load_catalog

    path = attacks_path(args.attacks)
    if path is None:
        return EXIT_INPUT
    try:
        rows = read_rows(path)
    except (UnicodeDecodeError, OSError) as exc:
        err(f"{path}: cannot read the attack table ({exc})")
        return EXIT_INPUT
    if rows and "time_start" not in rows[0][1]:
        err(f"{path}: not the attack table (no time_start column)")
        return EXIT_INPUT
    regions = load_region_set(args.regions)
    try:
        with track_progress(f"record {args.day}") as advance:
            result = build_day(rows, args.day, catalog=load_catalog(), regions=regions,
                               seed=args.seed, report_s=args.report_s, progress=advance)
    except RecordError as exc:
        err(str(exc))
        return EXIT_INPUT
    from tocsin.model import dumps

    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for ev in result.events:
            fh.write(dumps(ev) + "\n")
    tmp.replace(out)
    print_summary(result.summary, out)
    return EXIT_OK


def print_summary(s: Mapping[str, Any], out: Path) -> None:
    """The generated day against the record, as a few rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"{s['day']}: {s['rows']} rows of the record, window "
                  f"{s['window_utc'][0]} … {s['window_utc'][1]}; wrote {s['events']} events to "
                  f"{out}")
    t = Table("record model", "launched", "destroyed", "not reached", title="The record")
    for model, v in s["record"].items():
        t.add_row(model, str(v["launched"]), str(v["destroyed"]), str(v["not_reach_goal"]))
    tot = s["record_totals"]
    t.add_row("total", str(tot["launched"]), str(tot["destroyed"]), str(tot["not_reach_goal"]))
    console.print(t)
    g = Table("weapon", "tracks", "median flight", "longest flight", title="Generated tracks")
    for wid, v in s["by_weapon"].items():
        g.add_row(wid, str(v["tracks"]), _mins(v["flight_s_median"]), _mins(v["flight_s_max"]))
    o = s["outcomes"]
    g.add_row("total", str(s["tracks"]), "", "")
    console.print(g)
    console.print(f"outcomes: {o['destroyed']} intercepted, {o['lost']} lost, {o['impact']} "
                  f"impacts; {s['interceptors']} own interceptors, "
                  f"{s['impacts']['debris']} debris impacts")
    unknown = s["unknown_places"]
    console.print(f"launch places not in the gazetteer (class default used): "
                  f"{sum(unknown.values())} tracks"
                  + (": " + ", ".join(f"{k} ×{v}" for k, v in unknown.items()) if unknown
                     else ""))
    if s["unknown_targets"]:
        console.print("targets read as the whole country: "
                      + ", ".join(f"{k} ×{v}" for k, v in s["unknown_targets"].items()))
    if s["moved_for_range"]:
        console.print(f"launches moved closer to fit the weapon's range: {s['moved_for_range']}")


def _mins(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def add_parsers(sub: Any) -> None:
    """The `scenario` command group."""
    from tocsin.geo import DEFAULT_REGION_SET

    p = sub.add_parser("scenario", help="build scenarios from the public attack record")
    ssub = p.add_subparsers(dest="scenario_command", metavar="SUBCOMMAND", required=True)
    q = ssub.add_parser("record", help="one day of the attack record as an event file",
                        description=cmd_scenario_record.__doc__)
    q.add_argument("--day", required=True, type=day_arg, help="the day, YYYY-MM-DD (Kyiv time)")
    q.add_argument("--attacks", metavar="FILE",
                   help=f"attack table, missile_attacks_daily.csv (default ${ATTACKS_ENV})")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--report-s", type=float, default=30.0,
                   help="seconds between a track's sensor reports (default 30)")
    q.add_argument("--regions", default=DEFAULT_REGION_SET,
                   help="region set the targets are drawn in (default ua-hromadas)")
    q.add_argument("--out", required=True, metavar="F.jsonl", help="the event file to write")
    q.set_defaults(func=cmd_scenario_record)
