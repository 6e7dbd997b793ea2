"""`tocsin audit counterfactual`: generated record days through the engine, against the
official alerts of the same hours."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tocsin.cli.common import EXIT_INPUT, EXIT_OK, err
from tocsin.cli.scenario import attacks_path, day_arg

if TYPE_CHECKING:
    from tocsin.audit.cf_pool import Inputs

COMMAND = "audit-counterfactual"


def cmd_audit_counterfactual(args: argparse.Namespace) -> int:
    """For each attack day inside the official record: generate the day, run it through the
    engine, compare with what the official system alerted (hromada-alert-hours, impacts under
    alert, lead times). Writes summary.json, days.csv and report.html; while it runs,
    progress.json and days.jsonl (each day as it finishes, for --resume)."""
    from tocsin.audit.cf_pool import DayLog, Inputs, ProgressFile, load_inputs, run_days
    from tocsin.audit.cf_report import write_counterfactual
    from tocsin.audit.counterfactual import DayResult, eligible_days, sample_days, summarise
    from tocsin.audit.report import OBLAST_NAMES
    from tocsin.engine.policy import load_policy

    path = attacks_path(args.attacks)
    if path is None:
        return EXIT_INPUT
    history = Path(args.history)
    if not history.is_file():
        err(f"--history: {history}: no such file")
        return EXIT_INPUT
    if args.sample is not None and args.sample < 1:
        err("--sample: give at least 1 day")
        return EXIT_INPUT
    if args.from_ and args.to and args.to < args.from_:
        err("--to is before --from")
        return EXIT_INPUT
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        err("--jobs: give at least 1")
        return EXIT_INPUT
    began = time.perf_counter()
    cpu_began = _cpu_s()
    load_before = _load()
    policy = load_policy(args.policy)
    inputs = Inputs(attacks=str(path), history=str(history), regions=args.regions,
                    policy=policy.to_dict(), seed=args.seed, report_s=args.report_s)
    loaded = load_inputs(inputs)
    if not loaded.read:
        err(f"--history: {history}: no alert could be read (not the official record?)")
        return EXIT_INPUT
    days = eligible_days(loaded.rows, loaded.official, args.from_, args.to)
    chosen = sample_days(days, args.sample)
    if not chosen:
        err("no attack day of the record lies inside the official record in that range")
        return EXIT_INPUT
    out = Path(args.out)
    try:
        log = DayLog(out / "days.jsonl", _log_settings(inputs), resume=args.resume)
    except ValueError as exc:
        err(f"--resume: {exc}")
        return EXIT_INPUT
    jobs = min(jobs, len(chosen))
    progress = ProgressFile(out / "progress.json", len(chosen), jobs)
    wanted = {d.isoformat() for d in chosen}
    for day_iso, earlier in sorted(log.done.items()):
        if day_iso in wanted:
            progress.day(day_iso, earlier)
    try:
        with track_days(len(chosen), progress.state["done_days"]) as advance:
            def on_day(day_iso: str, result: DayResult | str) -> None:
                log.append(day_iso, result)
                progress.day(day_iso, result)
                advance(day_iso)

            results, skipped = run_days(inputs, chosen, jobs=jobs, loaded=loaded,
                                        on_day=on_day, done=log.done)
    except KeyboardInterrupt:
        progress.finish("interrupted")
        raise
    except BaseException:
        progress.finish("failed")
        raise
    regions = loaded.regions
    names = {r.id: r.name for r in regions.regions.values() if r.parent is None}
    taken = set(OBLAST_NAMES.values())
    # Kyiv city would share the name of Kyiv oblast's exonym
    names = {k: f"{v} (city)" if v in taken and k not in OBLAST_NAMES else v
             for k, v in names.items()}
    names.update(OBLAST_NAMES)
    summary: dict[str, Any] = summarise(results, names)
    summary["settings"] = {
        "attacks": path.name, "history": history.name, "from": str(args.from_ or days[0]),
        "to": str(args.to or days[-1]), "eligible_days": len(days), "sample": args.sample,
        "seed": args.seed, "report_s": args.report_s, "regions": args.regions,
        "policy": policy.to_dict(),
    }
    summary["history_rows_unread"] = loaded.unread
    summary["skipped_days"] = skipped
    # how the run went, not what it found: these differ from run to run
    summary["run"] = {"jobs": jobs, "wall_s": round(time.perf_counter() - began, 1),
                      "cpu_s": round(_cpu_s() - cpu_began, 1),
                      "load_average_before": load_before, "load_average_after": _load()}
    summary["wall_s"] = summary["run"]["wall_s"]
    write_counterfactual(results, summary, out)
    progress.finish()
    ratio = "n/a" if summary["ratio"] is None else f"{summary['ratio']:.3f}"
    share = ("n/a" if summary["share_alerted"] is None
             else f"{100 * summary['share_alerted']:.1f} %")
    lead = ("n/a" if summary["median_lead_s"] is None
            else f"{summary['median_lead_s'] / 60:.0f} min")
    print(f"{summary['days']} days: official {summary['official_alert_hours']:,.0f} "
          f"hromada-alert-hours, tocsin {summary['tocsin_alert_hours']:,.0f} (ratio {ratio}); "
          f"{summary['impacts']} impacts, {summary['impacts_alerted']} alerted ({share}), "
          f"median lead {lead}; {summary['wall_s']:.0f} s with {jobs} job(s); wrote "
          f"{args.out}/summary.json, days.csv, report.html")
    return EXIT_OK


def _log_settings(inputs: Inputs) -> dict[str, Any]:
    """What a day's figures depend on: a log made with other settings cannot be resumed."""
    import hashlib

    def digest(name: str) -> str:
        return hashlib.sha256(Path(name).read_bytes()).hexdigest()

    return {"attacks": digest(inputs.attacks), "history": digest(inputs.history),
            "regions": inputs.regions, "policy": dict(inputs.policy), "seed": inputs.seed,
            "report_s": inputs.report_s}


def _cpu_s() -> float:
    # this process and the workers it has waited for
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


@contextlib.contextmanager
def track_days(total: int, completed: int = 0) -> Iterator[Callable[[str], None]]:
    """A rich bar over the days, on a terminal only (progress.json says the same anywhere)."""
    if not sys.stderr.isatty():
        yield lambda _day: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("days"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.description}"))
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("", total=total, completed=completed)
        yield lambda day: bar.update(task, advance=1, description=day)


def add_parser(sub: Any) -> None:
    """`audit-counterfactual`, reached as `tocsin audit counterfactual` (see `main`)."""
    from tocsin.geo import DEFAULT_REGION_SET

    p = sub.add_parser(COMMAND, description=cmd_audit_counterfactual.__doc__,
                       prog="tocsin audit counterfactual")
    p.add_argument("--attacks", metavar="FILE",
                   help="attack table, missile_attacks_daily.csv (default $TOCSIN_ATTACKS)")
    p.add_argument("--history", required=True, metavar="FILE",
                   help="the official alert record, official_data_en.csv (plain or gzipped)")
    p.add_argument("--from", dest="from_", type=day_arg, metavar="D",
                   help="first day, YYYY-MM-DD (default: the first day inside the record)")
    p.add_argument("--to", type=day_arg, metavar="D", help="last day, YYYY-MM-DD")
    p.add_argument("--sample", type=int, metavar="N",
                   help="only N days spread evenly over the range")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="worker processes (default: the number of CPUs); the figures are the "
                        "same whatever N is")
    p.add_argument("--resume", action="store_true",
                   help="keep the days an interrupted run with the same settings logged in "
                        "DIR/days.jsonl and run only the rest")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--report-s", type=float, default=60.0,
                   help="seconds between a track's sensor reports (default 60)")
    p.add_argument("--regions", default=DEFAULT_REGION_SET,
                   help="region set (default ua-hromadas; alert-hours are per leaf)")
    p.add_argument("--policy", help="policy file (JSON or TOML) to try instead of the defaults")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="directory for summary.json, days.csv and report.html")
    p.set_defaults(func=cmd_audit_counterfactual)


def rewrite_argv(argv: list[str]) -> list[str]:
    """`audit counterfactual …` → `audit-counterfactual …` (`audit` itself takes options)."""
    if len(argv) >= 2 and argv[0] == "audit" and argv[1] == "counterfactual":
        return [COMMAND, *argv[2:]]
    return argv

