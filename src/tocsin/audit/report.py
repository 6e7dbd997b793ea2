"""`tocsin audit`: read a data directory (and an attack table), write the impact audit.

Writes to the output directory:

- `summary.json`: totals (`attacks_considered`, `covered`, `coverage`, `median_lead_s`,
  `tolerance_s`, quantiles, per oblast and per year) and the log's own impacts;
- `cases.csv`: one row per case: every logged impact (`kind` = impact) and every (attack row,
  oblast) pair (`kind` = attack);
- `report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched); its
  figures are drawn with matplotlib when the `report` extra is installed (`tocsin.audit.plots`);
- `lead_times.svg`, `coverage_by_oblast.svg`: the page's two figures on their own.

The computations are in `tocsin.audit.coverage`; this module only reads, formats and writes.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tocsin.audit import plots
from tocsin.audit.coverage import (
    OBLASTS,
    AlertSpan,
    CaseResult,
    ImpactAuditor,
    ImpactResult,
    attack_cases,
    cover,
    summarise_cases,
    summarise_impacts,
)
from tocsin.audit.svg import svg_bars, svg_histogram
from tocsin.errors import OperationalError
from tocsin.store import EventLog, open_history, open_log

__all__ = ["OBLAST_NAMES", "AuditResult", "read_attacks", "run_audit", "svg_bars",
           "svg_histogram", "write_outputs"]

OBLAST_NAMES: dict[str, str] = {}
for _name, _code in OBLASTS.items():
    OBLAST_NAMES.setdefault(_code, _name)


@dataclass
class AuditResult:
    """Everything `write_outputs` writes."""

    summary: dict[str, Any]
    cases: list[CaseResult]
    impacts: list[ImpactResult]


def _open_text(path: Path) -> IO[str]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return io.StringIO(raw.decode("utf-8-sig"), newline="")


def read_attacks(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of an attack table (CSV, plain or gzipped)."""
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            yield reader.line_num, row


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_audit(
    data_dir: Path | None, attacks: Path | None, tolerance_s: float, *,
    region_set: str | None = None, store: str | None = None,
) -> AuditResult:
    """Audit a data directory's (or a cluster store's) logged impacts and, given a table,
    recorded attacks against the imported history."""
    if store is None:
        if data_dir is None:
            raise OperationalError("give a data directory or a store")
        db = data_dir / "tocsin.db"
        if not db.is_file():
            raise OperationalError(f"{data_dir}: no log here (expected {db})")
    where = store or data_dir
    assert where is not None
    log = open_log(where)
    try:
        impacts = _log_impacts(log, region_set)
    finally:
        log.close()
    summary: dict[str, Any] = {"tolerance_s": tolerance_s}
    results: list[CaseResult] = []
    history = open_history(store, where)
    try:
        span = history.span()
        summary["history"] = {
            "alerts": history.count(), "first_start": _iso(span[0]) if span else None,
            "last_end": _iso(span[1]) if span else None, "imports": history.imports(),
        }
        if attacks is not None:
            cases, skipped = attack_cases(read_attacks(attacks), span)
            spans = [AlertSpan(a.region, a.started_s, a.ended_s) for a in history.alerts()]
            results = cover(cases, spans, tolerance_s)
            summary.update(summarise_cases(results, tolerance_s, OBLAST_NAMES))
            summary["attack_table"] = {"file": attacks.name, "rows_skipped": dict(skipped)}
        else:
            summary.update({"attacks_considered": 0, "covered": 0, "coverage": None,
                            "median_lead_s": None})
    finally:
        history.close()
    summary["impacts"] = summarise_impacts(impacts)
    return AuditResult(summary, results, impacts)


def _log_impacts(log: EventLog, region_set: str | None) -> list[ImpactResult]:
    """Impacts of the log; the region set (slow to load) only when there are impacts."""
    from tocsin.geo import DEFAULT_REGION_SET, RegionSet, load_region_set

    loaded: list[RegionSet] = []

    def locate(lat: float, lon: float) -> str | None:
        if not loaded:
            loaded.append(load_region_set(region_set or log.get_meta("regions")
                                          or DEFAULT_REGION_SET))
        return loaded[0].locate(lat, lon)

    auditor = ImpactAuditor(locate)
    auditor.feed(log.read())
    return auditor.results


# --- outputs --------------------------------------------------------------------------------------

CASE_COLUMNS = (
    "kind", "ref", "oblast", "name", "time_start", "time_end", "start_utc", "end_utc", "model",
    "target", "covered", "silent", "lead_s", "alerts", "first_alert_start_utc",
    "first_alert_region",
)


def _case_rows(result: AuditResult) -> Iterator[dict[str, Any]]:
    for imp in result.impacts:
        yield {
            "kind": "impact", "ref": imp.seq, "oblast": imp.region or "", "name": imp.id,
            "time_start": imp.time, "start_utc": imp.time, "model": imp.kind,
            "covered": int(imp.covered), "silent": int(imp.silent),
            "lead_s": "" if imp.lead_s is None else round(imp.lead_s, 3),
            "alerts": len(imp.alert_types), "first_alert_start_utc": imp.alert_started_at or "",
            "first_alert_region": imp.region if imp.covered else "",
        }
    for r in result.cases:
        c = r.case
        yield {
            "kind": "attack", "ref": c.line, "oblast": c.oblast,
            "name": OBLAST_NAMES.get(c.oblast, c.oblast), "time_start": c.time_start,
            "time_end": c.time_end, "start_utc": _iso(c.start_s), "end_utc": _iso(c.end_s),
            "model": c.model, "target": c.target, "covered": int(r.covered), "silent": "",
            "lead_s": "" if r.lead_s is None else round(r.lead_s),
            "alerts": r.alerts, "first_alert_start_utc": _iso(r.first_alert_s),
            "first_alert_region": r.first_alert_region or "",
        }


def write_outputs(result: AuditResult, out: Path, *, title: str = "tocsin impact audit") -> None:
    """Write summary.json, cases.csv, report.html and the two SVG figures."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(
        json.dumps(result.summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (out / "cases.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, CASE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_case_rows(result))
    leads = [r.lead_s / 3600 for r in result.cases if r.lead_s is not None]
    hist = plots.histogram(leads, title="Lead time of covered attack cases",
                           xlabel="hours before the reported start (red: alert began after it)")
    bars = plots.bars(
        [(v["name"], v["covered"], v["cases"])
         for v in result.summary.get("by_oblast", {}).values()],
        title="Attack cases covered by an alert, by oblast",
    )
    (out / "lead_times.svg").write_text(hist + "\n", encoding="utf-8")
    (out / "coverage_by_oblast.svg").write_text(bars + "\n", encoding="utf-8")
    (out / "report.html").write_text(render_html(result, hist, bars, title), encoding="utf-8")


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = round(abs(seconds) / 60)
    sign = "−" if seconds < 0 and minutes else ""
    if minutes < 60:
        return f"{sign}{minutes} min"
    return f"{sign}{minutes // 60} h {minutes % 60:02d} min"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1b1f24;
padding:0 1rem}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .6rem;border-bottom:1px solid
#d0d7de;text-align:right}th:first-child,td:first-child{text-align:left}
.note{color:#57606a;font-size:.9rem}svg{max-width:100%;height:auto}
""".strip()


def render_html(result: AuditResult, hist: str, bars: str, title: str) -> str:
    """The report page."""
    s = result.summary
    imp = s["impacts"]
    e = html.escape
    rows = [
        ("Attack cases considered (row × oblast)", str(s.get("attacks_considered", 0))),
        ("Covered by an alert", str(s.get("covered", 0))),
        ("Coverage", _pct(s.get("coverage"))),
        ("Median lead time", _fmt_duration(s.get("median_lead_s"))),
        ("Tolerance", _fmt_duration(s.get("tolerance_s"))),
    ]
    q = s.get("lead_s_quantiles") or {}
    rows += [(f"Lead time {k}", _fmt_duration(v)) for k, v in q.items()]
    summary_table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    oblast_rows = "".join(
        f"<tr><td>{e(v['name'])}</td><td>{v['cases']}</td><td>{v['covered']}</td>"
        f"<td>{_pct(v['coverage'])}</td><td>{_fmt_duration(v['median_lead_s'])}</td></tr>"
        for v in sorted(s.get("by_oblast", {}).values(), key=lambda v: -v["cases"])
    )
    year_rows = "".join(
        f"<tr><td>{e(y)}</td><td>{v['cases']}</td><td>{v['covered']}</td>"
        f"<td>{_pct(v['coverage'])}</td></tr>" for y, v in s.get("by_year", {}).items()
    )
    silent = [i for i in result.impacts if i.silent][-50:]
    silent_rows = "".join(
        f"<tr><td>{i.seq}</td><td>{e(i.time)}</td><td>{e(i.region or '')}</td>"
        f"<td>{e(i.id)}</td></tr>" for i in reversed(silent)
    )
    hist_info = s.get("history", {})
    skipped = (s.get("attack_table") or {}).get("rows_skipped", {})
    skipped_text = ", ".join(f"{v} {e(k)}" for k, v in skipped.items()) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>
<body><h1>{e(title)}</h1>
<p class="note">Imported alert history: {hist_info.get('alerts', 0)} alerts from
{e(str(hist_info.get('first_start')))} to {e(str(hist_info.get('last_end')))}.
Attack rows left out: {skipped_text}.</p>
<h2>Recorded attacks against past alerts</h2>
<table>{summary_table}</table>
{hist}
<h2>By oblast</h2>
{bars}
<table><tr><th>Oblast</th><th>Cases</th><th>Covered</th><th>Coverage</th>
<th>Median lead</th></tr>{oblast_rows}</table>
<h2>By year</h2>
<table><tr><th>Year</th><th>Cases</th><th>Covered</th><th>Coverage</th></tr>{year_rows}</table>
<h2>Impacts in the log</h2>
<table><tr><th>Impacts</th><td>{imp['impacts']}</td></tr>
<tr><th>Under alert</th><td>{imp['covered']}</td></tr>
<tr><th>Silent (no alert in force)</th><td>{imp['silent']}</td></tr>
<tr><th>Outside the regions</th><td>{imp['outside_regions']}</td></tr>
<tr><th>Median lead time</th><td>{_fmt_duration(imp['median_lead_s'])}</td></tr></table>
{"<h3>Latest silent impacts</h3><table><tr><th>Seq</th><th>Time</th><th>Region</th>"
 "<th>Event</th></tr>" + silent_rows + "</table>" if silent_rows else ""}
<p class="note">Report windows are as published (often rounded to the half hour or longer);
targets are the regions attacked, not where anything hit. A case is covered when any alert in
its oblast, at any level, overlaps the window widened by the tolerance.</p>
</body></html>
"""
