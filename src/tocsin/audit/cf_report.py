"""Outputs of `tocsin audit counterfactual`: summary.json, days.csv and one offline report.html."""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tocsin.audit import plots
from tocsin.audit.counterfactual import DayResult, day_row
from tocsin.audit.report import CSS

__all__ = ["DAY_COLUMNS", "write_counterfactual"]

MAX_DAY_BARS = 40

DAY_COLUMNS = (
    "day", "tracks", "events", "transitions", "official_alert_hours", "tocsin_alert_hours",
    "tocsin_alert_hours_no_pre", "ratio", "impacts", "impacts_alerted", "median_lead_s",
    "interceptor_alert_hours", "engine_s", "cpu_s",
)


def write_counterfactual(results: Sequence[DayResult], summary: Mapping[str, Any],
                         out: Path) -> None:
    """Write summary.json, days.csv and report.html into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (out / "days.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, DAY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(day_row(r) for r in results)
    (out / "report.html").write_text(render(results, summary), encoding="utf-8")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _mins(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.0f} min"


def _num(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _group_rows(label: str, g: Mapping[str, Any]) -> str:
    e = html.escape
    q = g.get("lead_s") or {}
    return (f"<tr><td>{e(label)}</td><td>{g['impacts']}</td><td>{g['impacts_alerted']}</td>"
            f"<td>{_pct(g['share_alerted'])}</td><td>{_mins(q.get('min'))}</td>"
            f"<td>{_mins(q.get('p10'))}</td><td>{_mins(g['median_lead_s'])}</td>"
            f"<td>{_mins(q.get('p90'))}</td></tr>")


def _per_period(results: Sequence[DayResult]) -> str:
    """Official against tocsin hromada-alert-hours per day, or per month over a long run (a
    bar per day of a year and a half cannot be read)."""
    by_month = len(results) > MAX_DAY_BARS
    totals: dict[str, list[float]] = {}
    for r in results:
        t = totals.setdefault(r.day[:7] if by_month else r.day, [0.0, 0.0])
        t[0] += r.official_alert_hours
        t[1] += r.tocsin_alert_hours
    labels = list(totals)
    return plots.grouped_bars(
        labels, [("official", [v[0] for v in totals.values()], "#8c959f"),
                 ("tocsin", [v[1] for v in totals.values()], "#0969da")],
        title=f"Hromada-alert-hours per {'month' if by_month else 'day'}",
        ylabel="hromada-hours", rotate=len(labels) > 8)


def render(results: Sequence[DayResult], s: Mapping[str, Any]) -> str:
    """The report page: self-contained, no scripts, nothing fetched."""
    e = html.escape
    settings = s.get("settings", {})
    rows = [
        ("Days compared", str(s["days"])),
        ("Official hromada-alert-hours", _num(s["official_alert_hours"])),
        ("tocsin hromada-alert-hours (pre-alerts included)", _num(s["tocsin_alert_hours"])),
        ("tocsin ÷ official", _num(s["ratio"], 3)),
        ("tocsin hromada-alert-hours without pre-alerts", _num(s["tocsin_alert_hours_no_pre"])),
        ("… ÷ official", _num(s["ratio_no_pre"], 3)),
        ("Simulated impacts in the regions", str(s["impacts"])),
        ("… with an alert in force at impact", str(s["impacts_alerted"])),
        ("Share alerted", _pct(s["share_alerted"])),
        ("Median lead time", _mins(s["median_lead_s"])),
        ("Silent impacts", str(s["silent_impacts_total"])),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    class_rows = _group_rows("drones and cruise missiles", s["drones_and_cruise_missiles"])
    class_rows += "".join(_group_rows(k.replace("_", " "), v)
                          for k, v in s["by_class"].items() if v["impacts"])
    class_rows += _group_rows("debris of intercepts (own interceptors' case)", s["debris"])
    oblasts = sorted(s["by_oblast"].values(), key=lambda v: -v["official_alert_hours"])
    oblast_rows = "".join(
        f"<tr><td>{e(v['name'])}</td><td>{_num(v['official_alert_hours'])}</td>"
        f"<td>{_num(v['tocsin_alert_hours'])}</td><td>{_num(v['ratio'], 2)}</td></tr>"
        for v in oblasts)
    silent = s["silent_impacts"][:100]
    silent_rows = "".join(
        f"<tr><td>{e(i['time'])}</td><td>{e(i['kind'])}</td><td>{e(i['object'])}</td>"
        f"<td>{e(i['weapon'])}</td><td>{e(str(i['region']))}</td></tr>" for i in silent)
    per_day = _per_period(results)
    leads = [i.lead_s / 60 for r in results for i in r.impacts
             if i.kind == "explosion" and i.lead_s is not None]
    hist = plots.histogram(leads, title="Lead time at simulated impacts",
                           xlabel="minutes between the alert's start and the impact",
                           negative_red=False)
    top = oblasts[:27]
    by_oblast = plots.grouped_bars(
        [v["name"] for v in top],
        [("official", [v["official_alert_hours"] for v in top], "#8c959f"),
         ("tocsin", [v["tocsin_alert_hours"] for v in top], "#0969da")],
        title="Hromada-alert-hours by oblast", ylabel="hromada-hours")
    skipped = s.get("skipped_days") or {}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tocsin counterfactual audit</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>
<body><h1>What tocsin would have done: the counterfactual audit</h1>
<p><strong>The threats are generated, the official alerts are real.</strong> Each day's
weapons — how many of each model, launched from where, aimed at which area, how many destroyed
and how many lost — come from the public attack record; their routes, times, sensor reports,
intercept points and impact points are drawn by tocsin's scenario generator (seed
{e(str(settings.get('seed')))}, a report every {e(str(settings.get('report_s')))} s). The
official alerts are the record of Ukraine's air-raid alert system for the same hours.</p>
<p class="note">What this shows: how many hromada-hours tocsin's trajectory-following alerts
would have kept people under alert for threats of that day's size and shape, against what the
official system did, and whether the simulated impacts fell where an alert was in force. What it
does not show: that tocsin would have protected anyone on that day. The simulated tracks are
not the real ones; the official system alerted for threats the record does not list
(aircraft, artillery, glide bombs, reconnaissance); real sensors miss, mistake and delay. A
ratio below 1 is a claim about the method on plausible traffic, not about the real night.</p>
<h2>Summary</h2>
<table>{table}</table>
<p class="note">Window of each day: earliest time_start to latest time_end of its rows (Kyiv
time; a date-only row stands for the whole local day); both sides clipped to it; an official
oblast or raion alert counts for every hromada in it; overlapping alerts count once.
Days: {e(str(settings.get('from')))} to {e(str(settings.get('to')))}
{f"(a sample of {settings.get('sample')})" if settings.get('sample') else ""};
days that could not be built: {len(skipped)}. Engine time: {s['engine_s']:.0f} s for
{s['events']:,} events.</p>
{per_day}
<h2>Protection</h2>
<table><tr><th>Impacts</th><th>in the regions</th><th>alerted</th><th>share</th>
<th>shortest lead</th><th>lead, 10th percentile</th><th>median lead</th>
<th>lead, 90th percentile</th></tr>{class_rows}</table>
{hist}
<h2>By oblast</h2>
{by_oblast}
<table><tr><th>Oblast</th><th>official h</th><th>tocsin h</th><th>ratio</th></tr>
{oblast_rows}</table>
{"<h2>Silent impacts</h2><table><tr><th>Time</th><th>Kind</th><th>Object</th><th>Weapon</th>"
 "<th>Region</th></tr>" + silent_rows + "</table>" if silent_rows else ""}
</body></html>
"""
