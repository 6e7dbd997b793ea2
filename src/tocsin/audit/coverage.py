"""Impacts against alerts: was the region under alert, with how much lead time? Pure functions.

Two questions, one module (no files, no network, no clock: callers pass everything in):

1. **Impacts in the log.** `ImpactAuditor` walks log entries in seq order, keeps the alerts in
   force per leaf region from the logged transitions, and for every `impact` event records the
   leaf containing it, whether any alert (any type) was in force there when the event was logged
   (the state the engine decided on), the lead time (impact time minus the start of the earliest
   such alert) and, when none was, a *silent impact*.
2. **Recorded attacks.** `attack_cases` turns rows of the daily attack table (Ukrainian Air
   Force reports, see `../shared/data/missile_attacks/SOURCE.md`) into one case per (row,
   Ukrainian oblast named in its `target`); `cover` checks each case against past alerts in
   that oblast: covered when any alert (any level) intersects [start - tolerance, end +
   tolerance]; lead time = start - the earliest start among those alerts.
"""

from __future__ import annotations

import bisect
import json
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tocsin.model import parse_time
from tocsin.store.base import LogEntry

__all__ = [
    "OBLASTS",
    "AlertSpan",
    "AttackCase",
    "CaseResult",
    "ImpactAuditor",
    "ImpactResult",
    "attack_cases",
    "cover",
    "oblast_of",
    "oblasts_in_target",
    "parse_report_time",
    "quantiles",
    "summarise_cases",
    "summarise_impacts",
]

# English exonyms of the 24 oblasts (as the Air Force reports and most English media write them,
# with common variants) to their KATOTTG codes. Crimea, Kyiv and Sevastopol are not oblasts.
OBLASTS: Final[Mapping[str, str]] = {
    "Cherkasy": "UA71000000000010357",
    "Chernihiv": "UA74000000000025378",
    "Chernivtsi": "UA73000000000044923",
    "Dnipropetrovsk": "UA12000000000090473",
    "Donetsk": "UA14000000000091971",
    "Ivano-Frankivsk": "UA26000000000069363",
    "Kharkiv": "UA63000000000041885",
    "Kherson": "UA65000000000030969",
    "Khmelnytskyi": "UA68000000000099709",
    "Khmelnytsky": "UA68000000000099709",
    "Kirovohrad": "UA35000000000016081",
    "Kyiv": "UA32000000000030281",
    "Luhansk": "UA44000000000018893",
    "Lviv": "UA46000000000026241",
    "Mykolaiv": "UA48000000000039575",
    "Odesa": "UA51000000000030770",
    "Odessa": "UA51000000000030770",
    "Poltava": "UA53000000000028050",
    "Rivne": "UA56000000000066151",
    "Sumy": "UA59000000000057109",
    "Ternopil": "UA61000000000060328",
    "Vinnytsia": "UA05000000000010236",
    "Volyn": "UA07000000000024379",
    "Zakarpattia": "UA21000000000011690",
    "Zaporizhzhia": "UA23000000000064947",
    "Zaporizhia": "UA23000000000064947",
    "Zhytomyr": "UA18000000000041385",
}
_OBLAST_BY_PREFIX: Final = {code[:4]: code for code in OBLASTS.values()}
_TARGET_PART: Final = re.compile(r"^(?P<name>.+?) oblast$")
_PAREN_TAIL: Final = re.compile(r"\s*\([^()]*\)\s*$")
_REPORT_TIME: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{1,2}):(\d{2})$")


def _kyiv() -> ZoneInfo:
    try:
        return ZoneInfo("Europe/Kyiv")
    except ZoneInfoNotFoundError:  # tz databases before 2022b
        return ZoneInfo("Europe/Kiev")


KYIV: Final = _kyiv()


def oblast_of(region: str) -> str | None:
    """The oblast a KATOTTG-coded region lies in (its first four characters say which)."""
    return _OBLAST_BY_PREFIX.get(region[:4])


def oblasts_in_target(target: str) -> list[str]:
    """The oblasts a `target` names: each " and "-part whose text before its first comma, less a
    trailing parenthetical, is "<Name> oblast" of a Ukrainian oblast. In order, without repeats.
    """
    out: list[str] = []
    for part in target.split(" and "):
        head = _PAREN_TAIL.sub("", part.split(",", 1)[0].strip())
        m = _TARGET_PART.match(head)
        code = OBLASTS.get(m.group("name")) if m else None
        if code is not None and code not in out:
            out.append(code)
    return out


def parse_report_time(text: str) -> datetime | None:
    """A report time "YYYY-MM-DD H:MM" (Kyiv local time) as an aware datetime; None if it has no
    time of day or is not one."""
    m = _REPORT_TIME.match(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute = (int(g) for g in m.groups())
    try:
        return datetime(year, month, day, hour, minute, tzinfo=KYIV)
    except ValueError:
        return None


def quantiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """Linear-interpolated quantiles (None for an empty sample)."""
    if not values:
        return [None for _ in qs]
    ordered = sorted(values)
    out: list[float | None] = []
    for q in qs:
        pos = q * (len(ordered) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        out.append(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
    return out


# --- recorded attacks against imported alerts ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertSpan:
    """An alert in a region from `started_s` to `ended_s` (Unix seconds)."""

    region: str
    started_s: float
    ended_s: float


@dataclass(frozen=True, slots=True)
class AttackCase:
    """One recorded attack on one oblast: a reporting window and what was reported."""

    line: int
    oblast: str
    start_s: float
    end_s: float
    time_start: str
    time_end: str
    model: str
    target: str


@dataclass(frozen=True, slots=True)
class CaseResult:
    """A case's outcome: covered, lead time, and the alerts that covered it."""

    case: AttackCase
    covered: bool
    lead_s: float | None
    alerts: int
    first_alert_s: float | None
    first_alert_region: str | None


def attack_cases(
    rows: Iterable[tuple[int, Mapping[str, str]]], span: tuple[float, float] | None
) -> tuple[list[AttackCase], Counter[str]]:
    """Cases from (line, row) pairs; rows left out are counted by reason.

    A row counts when both `time_start` and `time_end` have a date and a time of day, end >=
    start, and the window lies within `span` (the imported history's first start to last end).
    """
    cases: list[AttackCase] = []
    skipped: Counter[str] = Counter()
    for line, row in rows:
        oblasts = oblasts_in_target(row.get("target") or "")
        if not oblasts:
            skipped["no Ukrainian oblast in target"] += 1
            continue
        start = parse_report_time(row.get("time_start") or "")
        end = parse_report_time(row.get("time_end") or "")
        if start is None or end is None:
            skipped["no time of day"] += 1
            continue
        start_s, end_s = start.timestamp(), end.timestamp()
        if end_s < start_s:
            skipped["end before start"] += 1
            continue
        if span is None or start_s < span[0] or end_s > span[1]:
            skipped["outside the imported history"] += 1
            continue
        for oblast in oblasts:
            cases.append(AttackCase(line, oblast, start_s, end_s, row["time_start"].strip(),
                                    row["time_end"].strip(), row.get("model") or "",
                                    row["target"]))
    return cases, skipped


class _OblastAlerts:
    """One oblast's alerts sorted by start, for interval queries."""

    def __init__(self, spans: Iterable[AlertSpan]) -> None:
        self.spans = sorted(spans, key=lambda a: (a.started_s, a.region))
        self.starts = [a.started_s for a in self.spans]
        self.longest = max((a.ended_s - a.started_s for a in self.spans), default=0.0)

    def overlapping(self, lo: float, hi: float) -> list[AlertSpan]:
        first = bisect.bisect_left(self.starts, lo - self.longest)
        last = bisect.bisect_right(self.starts, hi)
        return [a for a in self.spans[first:last] if a.ended_s >= lo]


def cover(
    cases: Iterable[AttackCase],
    alerts: Iterable[AlertSpan],
    tolerance_s: float,
    oblast: Callable[[str], str | None] = oblast_of,
) -> list[CaseResult]:
    """Check each case against the alerts of its oblast (any level, found by `oblast`)."""
    grouped: dict[str, list[AlertSpan]] = {}
    for a in alerts:
        ob = oblast(a.region)
        if ob is not None:
            grouped.setdefault(ob, []).append(a)
    index = {ob: _OblastAlerts(spans) for ob, spans in grouped.items()}
    empty = _OblastAlerts(())
    out: list[CaseResult] = []
    for case in cases:
        hits = index.get(case.oblast, empty).overlapping(case.start_s - tolerance_s,
                                                         case.end_s + tolerance_s)
        if not hits:
            out.append(CaseResult(case, False, None, 0, None, None))
            continue
        first = min(hits, key=lambda a: (a.started_s, a.region))
        out.append(CaseResult(case, True, case.start_s - first.started_s, len(hits),
                              first.started_s, first.region))
    return out


def summarise_cases(
    results: Sequence[CaseResult], tolerance_s: float, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Totals, coverage, lead-time quantiles, and the same per oblast and per year."""
    leads = [r.lead_s for r in results if r.lead_s is not None]
    covered = sum(r.covered for r in results)
    q = quantiles(leads, (0.1, 0.25, 0.5, 0.75, 0.9))
    by_oblast: dict[str, dict[str, Any]] = {}
    for ob in sorted({r.case.oblast for r in results}):
        rs = [r for r in results if r.case.oblast == ob]
        ls = [r.lead_s for r in rs if r.lead_s is not None]
        n_cov = sum(r.covered for r in rs)
        by_oblast[ob] = {
            "name": (names or {}).get(ob, ob), "cases": len(rs), "covered": n_cov,
            "coverage": n_cov / len(rs),
            "median_lead_s": statistics.median(ls) if ls else None,
        }
    by_year: dict[str, dict[str, Any]] = {}
    for r in results:
        year = r.case.time_start[:4]
        slot = by_year.setdefault(year, {"cases": 0, "covered": 0})
        slot["cases"] += 1
        slot["covered"] += int(r.covered)
    for slot in by_year.values():
        slot["coverage"] = slot["covered"] / slot["cases"]
    return {
        "attacks_considered": len(results),
        "attack_rows": len({r.case.line for r in results}),
        "covered": covered,
        "coverage": covered / len(results) if results else None,
        "median_lead_s": q[2],
        "lead_s_quantiles": {"p10": q[0], "p25": q[1], "p50": q[2], "p75": q[3], "p90": q[4]},
        "negative_leads": sum(1 for x in leads if x < 0),
        "tolerance_s": tolerance_s,
        "by_oblast": by_oblast,
        "by_year": dict(sorted(by_year.items())),
    }


# --- impacts in the log ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImpactResult:
    """One logged impact and whether its region was warned."""

    seq: int
    id: str
    source: str
    time: str
    kind: str
    lat: float
    lon: float
    region: str | None  # the leaf containing it; None when outside the loaded regions
    covered: bool  # an alert of any type was in force in that leaf
    silent: bool  # inside the regions and not covered
    lead_s: float | None  # impact time - start of the earliest alert in force
    alert_types: tuple[str, ...] = ()
    alert_started_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for reports and the API."""
        return {
            "seq": self.seq, "log_index": self.seq - 1, "id": self.id, "source": self.source,
            "time": self.time, "kind": self.kind,
            "position": {"lat": self.lat, "lon": self.lon}, "region": self.region,
            "covered": self.covered, "silent": self.silent, "lead_s": self.lead_s,
            "alert_types": list(self.alert_types), "alert_started_at": self.alert_started_at,
        }


@dataclass
class ImpactAuditor:
    """Impacts of a log fed in seq order (`feed` may be called again with later entries)."""

    locate: Callable[[float, float], str | None]
    last_seq: int = 0
    results: list[ImpactResult] = field(default_factory=list)
    _open: dict[str, dict[str, tuple[str, float]]] = field(default_factory=dict)

    def feed(self, entries: Iterable[LogEntry]) -> None:
        """Fold entries after `last_seq` in."""
        for entry in entries:
            if entry.seq <= self.last_seq:
                continue
            self.last_seq = entry.seq
            if entry.kind == "transition":
                self._transition(json.loads(entry.body))
            elif '"impact"' in entry.body:  # cheap pre-filter; the parse below decides
                body = json.loads(entry.body)
                if body.get("type") == "impact":
                    self._impact(entry.seq, body)

    def _transition(self, t: Mapping[str, Any]) -> None:
        kind = t.get("type")
        if kind == "alert_started":
            started = t["time"]
            self._open.setdefault(t["region"], {})[t["alert_type"]] = (
                started, parse_time(started).timestamp())
        elif kind == "alert_ended":
            self._open.get(t["region"], {}).pop(t["alert_type"], None)

    def _impact(self, seq: int, body: Mapping[str, Any]) -> None:
        pos = body.get("position") or {}
        lat, lon = float(pos.get("lat", 0.0)), float(pos.get("lon", 0.0))
        when = body.get("time", "")
        region = self.locate(lat, lon)
        in_force = self._open.get(region, {}) if region is not None else {}
        lead = started = None
        if in_force:
            started, started_s = min(in_force.values(), key=lambda v: v[1])
            try:
                lead = parse_time(when).timestamp() - started_s
            except (TypeError, ValueError):
                lead = None
        self.results.append(ImpactResult(
            seq, str(body.get("id", "")), str(body.get("source", "")), str(when),
            str(body.get("kind", "")), lat, lon, region, bool(in_force),
            region is not None and not in_force, lead, tuple(sorted(in_force)), started,
        ))


def summarise_impacts(results: Sequence[ImpactResult]) -> dict[str, Any]:
    """Totals of logged impacts: covered, silent, outside the regions, lead times."""
    leads = [r.lead_s for r in results if r.lead_s is not None]
    q = quantiles(leads, (0.1, 0.5, 0.9))
    located = sum(r.region is not None for r in results)
    covered = sum(r.covered for r in results)
    return {
        "impacts": len(results),
        "covered": covered,
        "silent": sum(r.silent for r in results),
        "outside_regions": len(results) - located,
        "coverage": covered / located if located else None,
        "median_lead_s": q[1],
        "lead_s_quantiles": {"p10": q[0], "p50": q[1], "p90": q[2]},
    }
