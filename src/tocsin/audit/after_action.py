"""After-action report of a stretch of a log: what was alerted where, what fell, what failed.

`analyse(entries, lo, hi, locate)` folds a log's entries (in seq order, from the start, so that
alerts already in force at `lo` are known) into:

- the timeline of air-raid alerts by top-level region (oblast): spans of time when any of its
  leaves was under alert, clipped to the window;
- impacts in the window with their lead time (impact − start of the alert in force in their
  leaf), and the silent ones;
- siren faults;
- detection → publish latency: for each detection that caused a transition, the time from the
  sensor's reported time to the moment the node logged it (its transitions are logged and
  published in the same batch), as percentiles.

`render_html` writes the offline page; the figures come from `tocsin.audit.plots`.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tocsin.audit import plots
from tocsin.audit.coverage import ImpactAuditor, ImpactResult, quantiles
from tocsin.model import parse_time
from tocsin.store.base import LogEntry

__all__ = ["AfterAction", "analyse", "render_html"]

AIR_RAID = "air_raid"


@dataclass
class AfterAction:
    """The report's content."""

    lo: float
    hi: float
    timeline: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    impacts: list[ImpactResult] = field(default_factory=list)
    siren_faults: list[dict[str, Any]] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    transitions: int = 0
    events: int = 0

    def summary(self, names: Mapping[str, str]) -> dict[str, Any]:
        """The JSON summary."""
        leads = [i.lead_s for i in self.impacts if i.lead_s is not None]
        lq = quantiles(leads, (0.1, 0.5, 0.9))
        q = quantiles(self.latencies_s, (0.5, 0.9, 0.99))
        return {
            "from": _iso(self.lo), "to": _iso(self.hi),
            "events": self.events, "transitions": self.transitions,
            "alert_hours_by_region": {
                names.get(k, k): round(sum(b - a for a, b in v) / 3600, 3)
                for k, v in sorted(self.timeline.items())
            },
            "impacts": len(self.impacts),
            "impacts_alerted": sum(i.covered for i in self.impacts),
            "silent_impacts": sum(i.silent for i in self.impacts),
            "lead_s": {"p10": lq[0], "p50": lq[1], "p90": lq[2]},
            "siren_faults": len(self.siren_faults),
            "detection_to_publish_s": {"n": len(self.latencies_s), "p50": q[0], "p90": q[1],
                                       "p99": q[2], "max": max(self.latencies_s, default=None)},
        }


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def analyse(entries: Iterable[LogEntry], lo: float, hi: float,
            locate: Callable[[float, float], str | None], top: Callable[[str], str]) -> AfterAction:
    """Fold the log's entries (all of them up to `hi`) into the report of [lo, hi]."""
    out = AfterAction(lo, hi)
    auditor = ImpactAuditor(locate)
    open_leaf: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    caused: set[int] = set()
    detections: dict[int, tuple[float, str | None]] = {}
    for entry in entries:
        if entry.kind == "transition":
            t = json.loads(entry.body)
            when = parse_time(t["time"]).timestamp()
            if when > hi:
                break
            if t.get("cause_seq") is not None:
                caused.add(int(t["cause_seq"]))
            if when >= lo:
                out.transitions += 1
            kind = t.get("type")
            if kind == "siren_fault" and when >= lo:
                out.siren_faults.append(t)
            if t.get("alert_type") != AIR_RAID:
                auditor.feed([entry])
                continue
            if kind == "alert_started":
                open_leaf[t["region"]] = when
            elif kind == "alert_ended":
                start = open_leaf.pop(t["region"], None)
                if start is not None and when > lo:
                    spans[top(t["region"])].append((max(start, lo), when))
            auditor.feed([entry])
            continue
        body = json.loads(entry.body)
        try:
            when = parse_time(body.get("time", "")).timestamp()
        except (TypeError, ValueError):
            continue
        if when > hi:
            break
        if when >= lo:
            out.events += 1
            if body.get("type") == "detection" and entry.recorded_at:
                detections[entry.seq] = (when, entry.recorded_at)
        before = len(auditor.results)
        auditor.feed([entry])
        if len(auditor.results) > before and when < lo:
            auditor.results.pop()
    for region, start in open_leaf.items():
        spans[top(region)].append((max(start, lo), hi))
    out.timeline = {k: _union(v) for k, v in spans.items()}
    out.impacts = auditor.results
    for seq, (when, recorded) in detections.items():
        if seq in caused and recorded:
            try:
                out.latencies_s.append(parse_time(recorded).timestamp() - when)
            except ValueError:
                continue
    return out


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def render_html(report: AfterAction, names: Mapping[str, str], title: str,
                top: Callable[[str], str]) -> str:
    """The offline page: no scripts, nothing fetched."""
    from tocsin.audit.report import CSS

    e = html.escape
    s = report.summary(names)
    rows = sorted(report.timeline.items(), key=lambda kv: names.get(kv[0], kv[0]))
    chart = plots.timeline(
        [(names.get(k, k), [((a - report.lo) / 3600, (b - report.lo) / 3600) for a, b in v])
         for k, v in rows],
        title="Air-raid alerts by region",
        marks=[(names.get(top(i.region), ""), (parse_time(i.time).timestamp()
                - report.lo) / 3600, "#cf222e" if i.silent else "#1a7f37")
               for i in report.impacts if i.region],
    )
    leads = [i.lead_s / 60 for i in report.impacts if i.lead_s is not None]
    hist = plots.histogram(leads, title="Lead time at impacts",
                           xlabel="minutes between the alert's start and the impact")
    lat = s["detection_to_publish_s"]
    summary_rows = [
        ("Window", f"{s['from']} – {s['to']}"),
        ("Events / transitions", f"{s['events']} / {s['transitions']}"),
        ("Impacts", str(s["impacts"])),
        ("… under alert", str(s["impacts_alerted"])),
        ("Silent impacts", str(s["silent_impacts"])),
        ("Median lead time", _mins(s["lead_s"]["p50"])),
        ("Siren faults", str(s["siren_faults"])),
        ("Detection → publish p50 / p90 / p99",
         " / ".join(_secs(lat[k]) for k in ("p50", "p90", "p99")) + f" (n = {lat['n']})"),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary_rows)
    silent = [i for i in report.impacts if i.silent]
    silent_rows = "".join(
        f"<tr><td>{i.seq}</td><td>{e(i.time)}</td><td>{e(str(i.region))}</td>"
        f"<td>{e(i.kind)}</td><td>{e(i.id)}</td></tr>" for i in silent[:200])
    faults = "".join(
        f"<tr><td>{e(str(f.get('time')))}</td><td>{e(str(f.get('region')))}</td>"
        f"<td>{e(json.dumps({k: v for k, v in f.items() if k not in ('time', 'region')}))}"
        "</td></tr>" for f in report.siren_faults[:200])
    hours = "".join(f"<tr><td>{e(k)}</td><td>{v:.1f}</td></tr>"
                    for k, v in s["alert_hours_by_region"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>
<body><h1>{e(title)}</h1>
<table>{table}</table>
<h2>Timeline</h2>
{chart}
<p class="note">A bar is a stretch when any hromada of the region was under air-raid alert;
triangles are impacts (green: under alert, red: silent).</p>
<table><tr><th>Region</th><th>hours with an alert somewhere in it</th></tr>{hours}</table>
<h2>Impacts</h2>
{hist}
{"<h3>Silent impacts</h3><table><tr><th>Seq</th><th>Time</th><th>Region</th><th>Kind</th>"
 "<th>Event</th></tr>" + silent_rows + "</table>" if silent_rows else
 "<p>No silent impact in the window.</p>"}
<h2>Siren faults</h2>
{"<table><tr><th>Time</th><th>Region</th><th>Detail</th></tr>" + faults + "</table>"
 if faults else "<p>No siren fault in the window.</p>"}
<p class="note">Latency runs from a detection's own time (as the sensor reported it) to the
moment this node logged it with the transitions it caused, which are published in the same
batch; a sensor's clock error shows up in it.</p>
</body></html>
"""


def _mins(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.0f} min"


def _secs(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.3f} s"
