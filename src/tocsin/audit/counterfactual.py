"""What tocsin would have done on the days of the attack record, against the official alerts.

For each attack day inside the official record: generate the day (`tocsin.scenarios.record`),
run it through the engine, and compare with what the official system alerted that day:

- **alert-hours**: hromada-hours under air-raid alert. An official oblast or raion alert counts
  for every hromada in it; overlapping alerts on one hromada count once. Both sides are clipped
  to the day's comparison window (earliest `time_start` to latest `time_end` of the day's rows,
  Kyiv time; a date-only row stands for the whole local day). tocsin's figure counts an alert of
  any severity, pre-alerts included; `tocsin_alert_hours_no_pre` leaves pre-alerts out.
- **protection**: the share of simulated impacts whose hromada had an alert in force at the
  moment of impact (not one the impact itself raised), and the lead time (impact − start of
  that alert); silent impacts are listed. Debris of intercepts — the own-interceptor case — is
  reported on its own.

Pure apart from the engine it drives: no files, no clock.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import numpy as np

from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import RegionSet
from tocsin.ledger import tick_event
from tocsin.model import parse_event, parse_time
from tocsin.scenarios.record import RecordError, build_day, day_rows, day_window, record_days
from tocsin.store.history import HistoryAlert
from tocsin.threats import Catalog

__all__ = [
    "DayResult",
    "OfficialIndex",
    "eligible_days",
    "run_day",
    "sample_days",
    "summarise",
    "union_hours",
]

AIR_RAID: Final = "air_raid"
MAX_SILENT_LISTED: Final = 500
CLASSES: Final = ("drone", "cruise_missile", "ballistic_missile", "glide_bomb", "unknown")
LEAD_QUANTILES: Final = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
LEAD_NAMES: Final = ("min", "p5", "p10", "p25", "p50", "p75", "p90", "max")


def union_hours(spans: Iterable[tuple[float, float]], lo: float, hi: float) -> float:
    """Hours covered by the union of `spans` (Unix seconds) clipped to [lo, hi]."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in spans if b > lo and a < hi)
    total = 0.0
    cur_a = cur_b = None
    for a, b in clipped:
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None and cur_b is not None:
        total += cur_b - cur_a
    return total / 3600.0


class OfficialIndex:
    """The official record's alerts, looked up by time, expanded to the set's leaves."""

    def __init__(self, alerts: Iterable[HistoryAlert], regions: RegionSet) -> None:
        kept = [a for a in alerts if a.alert_type == AIR_RAID and a.region in regions]
        self._regions = regions
        self._codes = [a.region for a in kept]
        self._start = np.array([a.started_s for a in kept], dtype=np.int64)
        self._end = np.array([a.ended_s for a in kept], dtype=np.int64)
        self._leaves: dict[str, tuple[str, ...]] = {}
        self.first = int(self._start.min()) if kept else 0
        self.last = int(self._end.max()) if kept else 0

    def __len__(self) -> int:
        return len(self._codes)

    def spans(self, lo: float, hi: float) -> dict[str, list[tuple[float, float]]]:
        """Per leaf, the official alerts overlapping [lo, hi]."""
        out: dict[str, list[tuple[float, float]]] = defaultdict(list)
        hit = np.nonzero((self._start < hi) & (self._end > lo))[0]
        for i in hit.tolist():
            code = self._codes[i]
            leaves = self._leaves.get(code)
            if leaves is None:
                leaves = self._leaves[code] = self._regions.leaves_under(code)
            span = (float(self._start[i]), float(self._end[i]))
            for leaf in leaves:
                out[leaf].append(span)
        return out


def eligible_days(rows: Sequence[tuple[int, Mapping[str, str]]], official: OfficialIndex,
                  first: date | None, last: date | None) -> list[date]:
    """Days of the record in [first, last] whose comparison window lies inside the official
    record."""
    out: list[date] = []
    for d in record_days(rows):
        if (first and d < first) or (last and d > last):
            continue
        try:
            lo, hi = day_window(day_rows(rows, d))
        except RecordError:
            continue
        if official.first <= lo.timestamp() and hi.timestamp() <= official.last:
            out.append(d)
    return out


def sample_days(days: Sequence[date], n: int | None) -> list[date]:
    """`n` days spread evenly over `days` (all of them when n is None or not smaller)."""
    if n is None or n >= len(days):
        return list(days)
    if n <= 0:
        return []
    step = len(days) / n
    return [days[int(i * step + step / 2)] for i in range(n)]


@dataclass
class Impact:
    """One simulated impact and whether its hromada was warned."""

    day: str
    time: str
    kind: str  # explosion, debris
    object: str  # the weapon class of the track that fell
    weapon: str
    region: str | None
    alerted: bool
    lead_s: float | None


@dataclass
class DayResult:
    """One day's comparison."""

    day: str
    window: tuple[float, float]
    tracks: int
    events: int
    transitions: int
    official_alert_hours: float
    tocsin_alert_hours: float
    tocsin_alert_hours_no_pre: float
    by_oblast: dict[str, tuple[float, float]]  # top region -> (official, tocsin) hours
    impacts: list[Impact] = field(default_factory=list)
    engine_s: float = 0.0
    interceptor_alert_hours: float = 0.0
    cpu_s: float = 0.0  # the whole day's processor time (generation, engine, comparison)

    @property
    def ratio(self) -> float | None:
        return (self.tocsin_alert_hours / self.official_alert_hours
                if self.official_alert_hours else None)


class _Alerts:
    """tocsin's air-raid alerts per leaf as they happen: open spans and closed ones."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[float, str, int, tuple[str, ...]]] = {}
        self.spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.strong: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._strong_since: dict[str, float] = {}
        self.interceptor_only: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def feed(self, t: Any) -> None:
        if t.alert_type != AIR_RAID or t.region is None:
            return
        when = t.time.timestamp()
        region = t.region
        if t.type == "alert_started":
            self.open[region] = (when, t.severity, t.cause_seq, tuple(t.causes))
            if t.severity != "pre_alert":
                self._strong_since[region] = when
        elif t.type == "alert_updated" and region in self.open:
            start, _sev, cause, causes = self.open[region]
            self.open[region] = (start, t.severity, cause, tuple(t.causes))
            if t.severity == "pre_alert":
                since = self._strong_since.pop(region, None)
                if since is not None:
                    self.strong[region].append((since, when))
            else:
                self._strong_since.setdefault(region, when)
        elif t.type == "alert_ended":
            opened = self.open.pop(region, None)
            if opened is not None:
                self.spans[region].append((opened[0], when))
                if opened[3] and all(c.startswith("I") for c in opened[3]):
                    self.interceptor_only[region].append((opened[0], when))
            since = self._strong_since.pop(region, None)
            if since is not None:
                self.strong[region].append((since, when))

    def close_all(self, when: float) -> None:
        for region, opened in list(self.open.items()):
            self.spans[region].append((opened[0], when))
        for region, since in self._strong_since.items():
            self.strong[region].append((since, when))
        self.open.clear()
        self._strong_since.clear()


def run_day(
    rows: Sequence[tuple[int, Mapping[str, str]]],
    day: date,
    official: OfficialIndex,
    *,
    regions: RegionSet,
    catalog: Catalog,
    policy: Policy,
    seed: int = 0,
    report_s: float = 60.0,
    clock: Callable[[], float] = time.perf_counter,
) -> DayResult:
    """Generate `day`, run it through a fresh engine, compare with the official alerts."""
    built = build_day(rows, day, catalog=catalog, regions=regions, seed=seed, report_s=report_s)
    lo, hi = (parse_time(t).timestamp() for t in built.summary["window_utc"])
    started = clock()
    engine = Engine(regions, catalog, policy)
    alerts = _Alerts()
    objects: dict[str, tuple[str, str]] = {}
    impacts: list[Impact] = []
    seq = 1
    transitions = 0
    for raw in built.events:
        event = parse_event(raw)
        step = engine.apply(event, seq)
        for t in step.transitions:
            alerts.feed(t)
        transitions += len(step.transitions)
        if raw["type"] == "detection":
            objects.setdefault(raw["track"], (raw["object"], raw.get("weapon", "")))
        elif raw["type"] == "impact":
            impacts.append(_impact(raw, seq, alerts, objects, regions, day))
        seq += 1 + len(step.transitions)
    last = engine.clock
    while (deadline := engine.next_deadline()) is not None:
        step = engine.apply(parse_event(tick_event(deadline)), seq)
        for t in step.transitions:
            alerts.feed(t)
        transitions += len(step.transitions)
        seq += 1 + len(step.transitions)
        last = engine.clock
    alerts.close_all(last.timestamp() if last is not None else hi)
    engine_s = clock() - started
    official_spans = official.spans(lo, hi)
    by_oblast: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    off_total = 0.0
    for leaf, spans in official_spans.items():
        h = union_hours(spans, lo, hi)
        off_total += h
        by_oblast[_top(regions, leaf)][0] += h
    tocsin_total = 0.0
    for leaf, spans in alerts.spans.items():
        h = union_hours(spans, lo, hi)
        tocsin_total += h
        by_oblast[_top(regions, leaf)][1] += h
    strong = sum(union_hours(s, lo, hi) for s in alerts.strong.values())
    own = sum(union_hours(s, lo, hi) for s in alerts.interceptor_only.values())
    return DayResult(
        day=day.isoformat(), window=(lo, hi), tracks=built.summary["tracks"],
        events=len(built.events), transitions=transitions,
        official_alert_hours=off_total, tocsin_alert_hours=tocsin_total,
        tocsin_alert_hours_no_pre=strong,
        by_oblast={k: (v[0], v[1]) for k, v in sorted(by_oblast.items())},
        impacts=impacts, engine_s=engine_s, interceptor_alert_hours=own,
    )


def _top(regions: RegionSet, leaf: str) -> str:
    return regions.chain(leaf)[-1].id


def _impact(raw: Mapping[str, Any], seq: int, alerts: _Alerts,
            objects: Mapping[str, tuple[str, str]], regions: RegionSet, day: date) -> Impact:
    pos = raw["position"]
    region = regions.locate(pos["lat"], pos["lon"])
    when = parse_time(raw["time"]).timestamp()
    opened = alerts.open.get(region) if region is not None else None
    # an alert the impact itself raised was not a warning
    alerted = opened is not None and opened[2] != seq
    obj, weapon = objects.get(raw.get("track") or "", ("unknown", ""))
    return Impact(
        day=day.isoformat(), time=raw["time"], kind=raw["kind"], object=obj, weapon=weapon,
        region=region, alerted=alerted,
        lead_s=(when - opened[0]) if alerted and opened is not None else None,
    )


def _group(impacts: Sequence[Impact]) -> dict[str, Any]:
    located = [i for i in impacts if i.region is not None]
    alerted = [i for i in located if i.alerted]
    leads = [i.lead_s for i in alerted if i.lead_s is not None]
    return {
        "impacts": len(located),
        "impacts_alerted": len(alerted),
        "share_alerted": len(alerted) / len(located) if located else None,
        "median_lead_s": statistics.median(leads) if leads else None,
        "lead_s": _quantiles(leads),
        "outside_regions": len(impacts) - len(located),
    }


def _quantiles(values: Sequence[float]) -> dict[str, float] | None:
    """The lead-time distribution: minimum, deciles that matter, maximum (seconds)."""
    if not values:
        return None
    q = np.quantile(np.asarray(values, dtype=float), LEAD_QUANTILES)
    return {name: round(float(v), 1) for name, v in zip(LEAD_NAMES, q, strict=True)}


def day_row(r: DayResult) -> dict[str, Any]:
    """A day as a row of days.csv."""
    g = _group(r.impacts)
    return {
        "day": r.day, "tracks": r.tracks, "events": r.events, "transitions": r.transitions,
        "official_alert_hours": round(r.official_alert_hours, 3),
        "tocsin_alert_hours": round(r.tocsin_alert_hours, 3),
        "tocsin_alert_hours_no_pre": round(r.tocsin_alert_hours_no_pre, 3),
        "ratio": "" if r.ratio is None else round(r.ratio, 4),
        "impacts": g["impacts"], "impacts_alerted": g["impacts_alerted"],
        "median_lead_s": "" if g["median_lead_s"] is None else round(g["median_lead_s"]),
        "interceptor_alert_hours": round(r.interceptor_alert_hours, 3),
        "engine_s": round(r.engine_s, 2),
        "cpu_s": round(r.cpu_s, 2),
    }


def summarise(results: Sequence[DayResult], names: Mapping[str, str]) -> dict[str, Any]:
    """Totals over the days: alert-hours, ratio, protection overall, by class and for debris."""
    off = sum(r.official_alert_hours for r in results)
    toc = sum(r.tocsin_alert_hours for r in results)
    strong = sum(r.tocsin_alert_hours_no_pre for r in results)
    impacts = [i for r in results for i in r.impacts]
    explosions = [i for i in impacts if i.kind == "explosion"]
    debris = [i for i in impacts if i.kind == "debris"]
    overall = _group(impacts)
    by_class = {c: _group([i for i in explosions if i.object == c]) for c in CLASSES}
    drones_cruise = _group([i for i in explosions
                            if i.object in ("drone", "cruise_missile")])
    oblasts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in results:
        for k, (o, t) in r.by_oblast.items():
            oblasts[k][0] += o
            oblasts[k][1] += t
    silent = [i for i in impacts if i.region is not None and not i.alerted]
    return {
        "days": len(results),
        "official_alert_hours": round(off, 3),
        "tocsin_alert_hours": round(toc, 3),
        "tocsin_alert_hours_no_pre": round(strong, 3),
        "ratio": round(toc / off, 4) if off else None,
        "ratio_no_pre": round(strong / off, 4) if off else None,
        "impacts": overall["impacts"],
        "impacts_alerted": overall["impacts_alerted"],
        "share_alerted": overall["share_alerted"],
        "median_lead_s": overall["median_lead_s"],
        "explosions": _group(explosions),
        "drones_and_cruise_missiles": drones_cruise,
        "by_class": by_class,
        "debris": _group(debris),
        "interceptor_only_alert_hours": round(sum(r.interceptor_alert_hours for r in results),
                                              3),
        "by_oblast": {
            k: {"name": names.get(k, k), "official_alert_hours": round(v[0], 3),
                "tocsin_alert_hours": round(v[1], 3),
                "ratio": round(v[1] / v[0], 4) if v[0] else None}
            for k, v in sorted(oblasts.items())
        },
        "silent_impacts": [
            {"day": i.day, "time": i.time, "kind": i.kind, "object": i.object,
             "weapon": i.weapon, "region": i.region}
            for i in silent[:MAX_SILENT_LISTED]
        ],
        "silent_impacts_total": len(silent),
        "engine_s": round(sum(r.engine_s for r in results), 2),
        "cpu_s": round(sum(r.cpu_s for r in results), 2),
        "events": sum(r.events for r in results),
        "tracks": sum(r.tracks for r in results),
    }
