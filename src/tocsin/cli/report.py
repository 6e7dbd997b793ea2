"""`tocsin report`: the after-action report of any stretch of a node's log."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tocsin.cli.common import EXIT_INPUT, EXIT_OK, err, log_region_set


def moment(text: str) -> datetime:
    """An RFC 3339 time, or a date (its 00:00 UTC) (argparse type)."""
    from tocsin.model import parse_time

    value = text.strip()
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        return parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time (2026-11-25T21:00:00Z) or a date (2026-11-25): {text!r}") from None


def cmd_report(args: argparse.Namespace) -> int:
    """After-action report of a stretch of the log: alerts by oblast over time, lead times at
    impacts, silent impacts, siren faults, detection → publish latency. Writes summary.json and
    an offline report.html."""
    from tocsin.audit.after_action import analyse, render_html
    from tocsin.geo import load_region_set
    from tocsin.store import open_log

    data_dir = Path(args.data_dir)
    if not (data_dir / "tocsin.db").is_file():
        err(f"{data_dir}: no log here (expected {data_dir / 'tocsin.db'})")
        return EXIT_INPUT
    lo, hi = args.from_.timestamp(), args.to.timestamp()
    if hi <= lo:
        err("--to must be after --from")
        return EXIT_INPUT
    regions = load_region_set(log_region_set(data_dir, args.regions))

    def top(region: str) -> str:
        return regions.chain(region)[-1].id if region in regions else region

    log = open_log(data_dir)
    try:
        report = analyse(log.read(), lo, hi, regions.locate, top)
    finally:
        log.close()
    names = {r.id: r.name for r in regions.regions.values() if r.parent is None}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = report.summary(names)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    title = f"tocsin after-action report, {summary['from']} – {summary['to']}"
    (out / "report.html").write_text(render_html(report, names, title, top), encoding="utf-8")
    print(f"{summary['events']} events, {summary['transitions']} transitions; "
          f"{summary['impacts']} impacts ({summary['silent_impacts']} silent), "
          f"{summary['siren_faults']} siren faults; wrote {out}/summary.json, report.html")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The `report` command."""
    p = sub.add_parser("report", help="after-action report of a stretch of the log",
                       description=cmd_report.__doc__)
    p.add_argument("--data-dir", required=True, help="the data directory holding tocsin.db")
    p.add_argument("--from", dest="from_", required=True, type=moment, metavar="T",
                   help="start, RFC 3339 or YYYY-MM-DD (UTC)")
    p.add_argument("--to", required=True, type=moment, metavar="T",
                   help="end, RFC 3339 or YYYY-MM-DD (UTC)")
    p.add_argument("--regions", help="region set (default: the log's)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="directory for summary.json and report.html")
    p.set_defaults(func=cmd_report)
