"""A day of the public attack record as a scenario: one simulated track per launched weapon.

`build_day(rows, day, …)` takes the record's rows dated `day` (Kyiv local time, the date of
`time_start`) and returns the events a sensor network would have reported, sorted by time, with
a summary to set against the record. The model (docs/scenarios.md):

- launch places from the gazetteer (`places.py`); a blank or unknown place falls back to the
  class default (`DEFAULT_LAUNCH`) and is counted; a place beyond the weapon's range is moved
  towards the target until the route fits, and counted;
- a target point sampled inside the area the row's `target` names: a hromada drawn uniformly
  among the area's leaves, then a point drawn uniformly inside it;
- routes by the catalog's flight profile: drones with 1–3 turns, cruise missiles with 1–2
  waypoints, ballistic missiles and glide bombs straight; cruise speed a share of the catalog's;
- launch times in waves over the row's reporting window, salvos within a wave;
- outcomes from the row's figures: `destroyed` → intercepted on the route (an own interceptor
  track flies to the intercept, and some intercepts drop debris), `not_reach_goal` → lost, the
  rest → impact at the target;
- a detection every `report_s` seconds with position, heading and speed noise; ballistic
  missiles are first reported at launch with no heading.

Pure: no clock, no files; the same rows, day, seed and report interval give the same events.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
import shapely
from pyproj import Geod

from tocsin.audit.coverage import KYIV, parse_report_time
from tocsin.errors import TocsinError
from tocsin.geo import RegionSet
from tocsin.model import format_time
from tocsin.scenarios.places import (
    DEFAULT_LAUNCH,
    Place,
    TargetArea,
    resolve_launch,
    resolve_target,
    split_places,
)
from tocsin.threats import Catalog, Weapon

__all__ = [
    "MAX_TRACKS",
    "DayRecord",
    "RecordError",
    "build_day",
    "day_rows",
    "day_window",
    "record_days",
    "weapon_for",
]

GEOD: Final = Geod(ellps="WGS84")
MAX_TRACKS: Final = 5000  # per day; the record's largest day launched about 800
MAX_PER_ROW: Final = 2000
MAX_REPORTS: Final = 2_000_000  # detections per day, whatever --report-s asks for

# Flight by catalog profile: share of catalog speed (low, high), lateral spread of the route's
# turns as a share of its length and its cap in metres, number of turns, altitude, position
# noise (m, 1 sigma), heading noise (deg), the letter of its track ids.
_FLIGHT: Final[Mapping[str, tuple[float, float, float, float, int, float, float, float, str]]] = {
    "drone": (0.75, 0.95, 0.12, 80_000, 3, 1000, 200, 6, "D"),
    "cruise": (0.75, 0.95, 0.08, 50_000, 2, 100, 300, 4, "C"),
    "ballistic": (0.55, 0.75, 0.0, 0, 0, 40_000, 1000, 3, "B"),
    "glide_bomb": (0.4, 0.6, 0.0, 0, 0, 5000, 300, 4, "G"),
    "unknown": (0.75, 0.95, 0.08, 50_000, 2, 1000, 300, 6, "U"),
}
_INTERCEPTOR: Final = "default-interceptor"
DEBRIS_SHARE: Final = 0.3  # intercepts that drop reported debris
DRONE_INTERCEPTOR_SHARE: Final = 0.25  # drones are mostly downed by guns and fighters
SOURCE: Final = "sim-radar"
AIR_DEFENCE: Final = "sim-air-defence"

# Models the catalog does not name, by what they are (`missiles_and_uavs.csv`'s categories).
_MODEL_RULES: Final = (
    (re.compile(r"kn-23|ballistic", re.I), "iskander-m"),
    (re.compile(r"uav|orlan|zala|supercam|lancet|merlin|mohajer|orion|forpost|eleron|granat|"
                r"kub|молнія|картограф|привет|фенікс", re.I), "default-drone"),
    (re.compile(r"bomb|gbu", re.I), "kab"),
)


class RecordError(TocsinError):
    """The record cannot give the day asked for (no rows, or too many weapons)."""


@dataclass
class DayRecord:
    """What `build_day` returns: events in time order and a summary."""

    events: list[dict[str, Any]]
    summary: dict[str, Any]


@dataclass
class _Track:
    id: str
    weapon: Weapon
    profile: str
    launch_t: float  # epoch seconds
    points: list[tuple[float, float]]  # (lon, lat) waypoints, launch to target
    speed_ms: float
    outcome: str  # destroyed, lost, impact
    end_frac: float
    row: int
    model: str
    events: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)


def weapon_for(model: str, catalog: Catalog) -> list[Weapon]:
    """The catalog rows for a record `model`; a combined model ("A and B") gives several."""
    out: list[Weapon] = []
    for part in (p.strip() for p in model.split(" and ")):
        w = catalog.get(part)
        if w is None:
            for pattern, wid in _MODEL_RULES:
                if pattern.search(part):
                    w = catalog.get(wid)
                    break
        out.append(w or catalog.default_for("cruise_missile"))
    return out


def _number(text: str) -> int:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return 0
    return int(value) if math.isfinite(value) and value > 0 else 0


def _local(text: str, *, end: bool) -> datetime | None:
    moment = parse_report_time(text)
    if moment is not None:
        return moment
    try:
        d = date.fromisoformat(text.strip())
    except ValueError:
        return None
    # a date-only row stands for the whole local day
    base = datetime(d.year, d.month, d.day, tzinfo=KYIV)
    return base + timedelta(days=1) if end else base


def day_rows(rows: Iterable[tuple[int, Mapping[str, str]]], day: date) -> list[
        tuple[int, Mapping[str, str]]]:
    """The (line, row) pairs of the record dated `day` (the date of `time_start`)."""
    key = day.isoformat()
    return [(n, r) for n, r in rows if (r.get("time_start") or "").strip()[:10] == key]


def record_days(rows: Iterable[tuple[int, Mapping[str, str]]]) -> list[date]:
    """Every date the record has a row for, in order."""
    days: set[date] = set()
    for _n, r in rows:
        try:
            days.add(date.fromisoformat((r.get("time_start") or "").strip()[:10]))
        except ValueError:
            continue
    return sorted(days)


def day_window(rows: Iterable[tuple[int, Mapping[str, str]]]) -> tuple[datetime, datetime]:
    """The comparison window of a day's rows: earliest `time_start` to latest `time_end`, in UTC.

    A date-only time stands for the whole local day; a row whose end is missing or before its
    start ends where it starts.
    """
    starts: list[datetime] = []
    ends: list[datetime] = []
    for _n, r in rows:
        s = _local(r.get("time_start") or "", end=False)
        if s is None:
            continue
        e = _local(r.get("time_end") or "", end=True)
        starts.append(s)
        ends.append(e if e is not None and e >= s else s)
    if not starts:
        raise RecordError("no row of the day has a usable time_start")
    return min(starts).astimezone(UTC), max(ends).astimezone(UTC)


def _row_window(r: Mapping[str, str]) -> tuple[float, float]:
    s = _local(r.get("time_start") or "", end=False)
    assert s is not None
    e = _local(r.get("time_end") or "", end=True)
    lo, hi = s.timestamp(), (e.timestamp() if e is not None else s.timestamp())
    if hi - lo < 1800:
        # a single moment is when the report was made: the launches came before it
        lo = min(lo, hi) - 3600
    return lo, max(hi, lo + 1800)


class _Sampler:
    """Points inside target areas, with the areas' geometry looked up once."""

    def __init__(self, regions: RegionSet, rng: random.Random) -> None:
        self.regions = regions
        self.rng = rng

    def point(self, area: TargetArea) -> tuple[float, float]:
        rng = self.rng
        if area.point is not None:
            az = rng.uniform(0, 360)
            dist = area.radius_m * math.sqrt(rng.random())
            lon, lat, _ = GEOD.fwd(area.point.lon, area.point.lat, az, dist)
            return float(lon), float(lat)
        leaf = self.regions.get(area.leaves[rng.randrange(len(area.leaves))])
        geom = leaf.geometry
        minx, miny, maxx, maxy = geom.bounds
        for _ in range(200):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if shapely.contains_xy(geom, x, y):
                return x, y
        p = geom.representative_point()
        return float(p.x), float(p.y)


def build_day(
    rows: Sequence[tuple[int, Mapping[str, str]]],
    day: date,
    *,
    catalog: Catalog,
    regions: RegionSet,
    seed: int = 0,
    report_s: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> DayRecord:
    """Generate the events of `day` from its rows of the record (see the module docstring)."""
    if not 1 <= report_s <= 3600:
        raise RecordError(f"report interval {report_s} s: give 1 to 3600 seconds")
    mine = day_rows(rows, day)
    if not mine:
        raise RecordError(f"the record has no row dated {day.isoformat()}")
    window = day_window(mine)
    rng = random.Random(f"tocsin-record:{day.isoformat()}:{seed}")
    sampler = _Sampler(regions, rng)
    tracks: list[_Track] = []
    counters: Counter[str] = Counter()
    record: dict[str, dict[str, int]] = {}
    unknown_places: Counter[str] = Counter()
    unknown_targets: Counter[str] = Counter()
    seq_by_letter: Counter[str] = Counter()
    for line, r in mine:
        model = (r.get("model") or "").strip() or "unknown"
        launched = min(_number(r.get("launched", "")), MAX_PER_ROW)
        destroyed = min(_number(r.get("destroyed", "")), launched)
        lost = min(_number(r.get("not_reach_goal", "")), launched - destroyed)
        rec = record.setdefault(model, {"launched": 0, "destroyed": 0, "not_reach_goal": 0})
        rec["launched"] += launched
        rec["destroyed"] += destroyed
        rec["not_reach_goal"] += lost
        if not launched:
            continue
        if len(tracks) + launched > MAX_TRACKS:
            raise RecordError(f"{day.isoformat()}: more than {MAX_TRACKS} weapons in one day")
        weapons = weapon_for(model, catalog)
        places = split_places(r.get("launch_place") or "")
        areas = resolve_target(r.get("target") or "", regions)
        for a in areas:
            if not a.known:
                unknown_targets[a.text or "(blank)"] += 1
        outcomes = ["destroyed"] * destroyed + ["lost"] * lost
        outcomes += ["impact"] * (launched - len(outcomes))
        rng.shuffle(outcomes)
        lo, hi = _row_window(r)
        launch_times = _waves(rng, launched, lo, hi, weapons[0].profile)
        for i in range(launched):
            w = weapons[i % len(weapons)]
            profile = w.profile if w.profile in _FLIGHT else "unknown"
            text = places[i % len(places)] if places else ""
            place = resolve_launch(text) if text else None
            if place is None:
                unknown_places[text or "(blank)"] += 1
                place = resolve_launch(DEFAULT_LAUNCH[profile])
                assert place is not None
            area = areas[i % len(areas)]
            if not area.leaves and area.point is None:
                area = resolve_target("Ukraine", regions)[0]
            target = sampler.point(area)
            points, moved = _route(rng, place, target, w, profile)
            counters["moved_for_range"] += moved
            lo_s, hi_s, *_ = _FLIGHT[profile]
            letter = _FLIGHT[profile][8]
            seq_by_letter[letter] += 1
            tracks.append(_Track(
                id=f"{letter}{seq_by_letter[letter]:04d}", weapon=w, profile=profile,
                launch_t=launch_times[i], points=points,
                speed_ms=w.speed_kmh / 3.6 * rng.uniform(lo_s, hi_s),
                outcome=outcomes[i],
                end_frac=(1.0 if outcomes[i] == "impact" else rng.uniform(0.35, 0.97)
                          if outcomes[i] == "destroyed" else rng.uniform(0.3, 0.9)),
                row=line, model=model,
            ))
    interceptor = catalog.get(_INTERCEPTOR) or catalog.default_for("interceptor")
    timeline: list[tuple[float, int, dict[str, Any]]] = []
    order = 0
    flights: dict[str, list[float]] = {}
    reports = 0
    for n, tr in enumerate(tracks, 1):
        made = _fly(rng, tr, report_s, interceptor, seq_by_letter)
        for t, ev in made:
            timeline.append((t, order, ev))
            order += 1
            reports += ev["type"] == "detection"
        if reports > MAX_REPORTS:
            raise RecordError(f"{day.isoformat()}: more than {MAX_REPORTS} reports; "
                              "give a longer report interval")
        flights.setdefault(tr.weapon.id, []).append(_flight_s(tr))
        counters[tr.outcome] += 1
        if progress is not None:
            progress(n, len(tracks))
    timeline.sort(key=lambda item: (item[0], item[1]))
    events: list[dict[str, Any]] = []
    tag = day.strftime("%Y%m%d")
    for k, (t, _o, ev) in enumerate(timeline, 1):
        out = {"id": f"r{tag}-{k:07d}", "type": ev.pop("type"),
               "time": format_time(datetime.fromtimestamp(round(t, 1), UTC))}
        out.update(ev)
        events.append(out)
    by_type = Counter(e["type"] for e in events)
    impacts = Counter(e["kind"] for e in events if e["type"] == "impact")
    summary: dict[str, Any] = {
        "day": day.isoformat(),
        "seed": seed,
        "report_s": report_s,
        "rows": len(mine),
        "window_utc": [format_time(window[0]), format_time(window[1])],
        "record": record,
        "record_totals": {k: sum(v[k] for v in record.values())
                          for k in ("launched", "destroyed", "not_reach_goal")},
        "tracks": len(tracks),
        "interceptors": seq_by_letter["I"],
        "outcomes": {k: counters[k] for k in ("destroyed", "lost", "impact")},
        "impacts": {"explosion": impacts["explosion"], "debris": impacts["debris"]},
        "events": len(events),
        "events_by_type": dict(sorted(by_type.items())),
        "by_weapon": {
            wid: {"tracks": len(v), "flight_s_median": round(statistics.median(v)),
                  "flight_s_max": round(max(v))}
            for wid, v in sorted(flights.items())
        },
        "unknown_places": dict(sorted(unknown_places.items(), key=lambda kv: (-kv[1], kv[0]))),
        "unknown_targets": dict(sorted(unknown_targets.items(), key=lambda kv: (-kv[1], kv[0]))),
        "moved_for_range": counters["moved_for_range"],
    }
    return DayRecord(events, summary)


def _waves(rng: random.Random, n: int, lo: float, hi: float, profile: str) -> list[float]:
    """Launch times: a few waves over the window's first part, launches spread within each."""
    span = hi - lo
    waves = 1 + min(3, n // 40)
    # drones fly for hours and must still arrive inside the window; missiles take minutes
    reach = 0.5 if profile == "drone" else 0.85
    centres = sorted(lo + rng.uniform(0, reach) * span for _ in range(waves))
    sigma = 600.0 if profile == "drone" else 120.0
    out = []
    for _ in range(n):
        c = centres[rng.randrange(waves)]
        out.append(min(hi, max(lo, rng.gauss(c, sigma))))
    return sorted(out)


def _route(rng: random.Random, place: Place, target: tuple[float, float], w: Weapon,
           profile: str) -> tuple[list[tuple[float, float]], int]:
    """Waypoints from launch to target, and 1 when the launch had to move closer for range."""
    lon0, lat0 = place.lon, place.lat
    lon1, lat1 = target
    az, back, dist = GEOD.inv(lon0, lat0, lon1, lat1)
    spread, cap, turns = _FLIGHT[profile][2], _FLIGHT[profile][3], _FLIGHT[profile][4]
    # room for the turns: a lateral offset of s over a leg adds about s²/leg to its length
    limit = 0.95 * w.range_km * 1000 / (1 + 2 * spread * spread)
    moved = 0
    if dist > limit:
        lon0, lat0, _ = GEOD.fwd(lon1, lat1, back, limit)
        az, back, dist = GEOD.inv(lon0, lat0, lon1, lat1)
        moved = 1
    if dist < 1000:
        # a launch at the target itself (a place inside the target area): start 30 km out
        lon0, lat0, _ = GEOD.fwd(lon1, lat1, rng.uniform(0, 360), 30_000)
        az, back, dist = GEOD.inv(lon0, lat0, lon1, lat1)
    points = [(float(lon0), float(lat0))]
    k = rng.randint(1, turns) if turns else 0
    for f in sorted(rng.uniform(0.15, 0.85) for _ in range(k)):
        blon, blat, baz = GEOD.fwd(lon0, lat0, az, f * dist)
        offset = max(-cap, min(cap, rng.gauss(0, spread * dist)))
        plon, plat, _ = GEOD.fwd(blon, blat, baz + 90, offset)
        points.append((float(plon), float(plat)))
    points.append((float(lon1), float(lat1)))
    return points, moved


def _legs(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lons = np.array([p[0] for p in points])
    lats = np.array([p[1] for p in points])
    az, _back, dist = GEOD.inv(lons[:-1], lats[:-1], lons[1:], lats[1:])
    cum = np.concatenate([[0.0], np.cumsum(dist)])
    return np.asarray(az), np.asarray(dist), cum


def _flight_s(tr: _Track) -> float:
    _az, _d, cum = _legs(tr.points)
    return float(cum[-1]) * tr.end_frac / tr.speed_ms


def _at(points: list[tuple[float, float]], az: np.ndarray, cum: np.ndarray,
        s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions and headings at distances `s` along the route."""
    idx = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(az) - 1)
    lons = np.array([points[i][0] for i in idx])
    lats = np.array([points[i][1] for i in idx])
    lon, lat, back = GEOD.fwd(lons, lats, az[idx], s - cum[idx])
    heading = (np.asarray(back) + 180.0) % 360.0
    return np.asarray(lon), np.asarray(lat), heading


def _fly(rng: random.Random, tr: _Track, report_s: float, interceptor: Weapon,
         seq_by_letter: Counter[str]) -> list[tuple[float, dict[str, Any]]]:
    """A track's events: its detections, its end, its impact or intercept (and debris)."""
    az, _dist, cum = _legs(tr.points)
    length = float(cum[-1]) * tr.end_frac
    flight = length / tr.speed_ms
    end_t = tr.launch_t + flight
    first = rng.uniform(0, min(report_s, flight) * 0.25)
    times = np.arange(first, flight, report_s)
    if times.size == 0:
        times = np.array([0.0])
    s = np.minimum(times * tr.speed_ms, length)
    lon, lat, heading = _at(tr.points, az, cum, s)
    *_x, alt, pos_sigma, head_sigma, _letter = _FLIGHT[tr.profile]
    out: list[tuple[float, dict[str, Any]]] = []
    kmh = tr.speed_ms * 3.6
    for j in range(times.size):
        t = tr.launch_t + float(times[j])
        la, lo = _noisy(rng, float(lat[j]), float(lon[j]), pos_sigma)
        ev: dict[str, Any] = {
            "type": "detection", "source": SOURCE, "track": tr.id, "object": tr.weapon.object,
            "weapon": tr.weapon.id,
            "position": {"lat": la, "lon": lo, "alt_m": alt},
        }
        if j == 0 and tr.profile == "ballistic":
            ev["phase"] = "launch"  # a launch is seen before its heading is known
        else:
            ev["heading_deg"] = _deg(float(heading[j]) + rng.gauss(0, head_sigma))
            ev["speed_kmh"] = round(kmh * rng.uniform(0.95, 1.05))
            ev["phase"] = "terminal" if s[j] > 0.9 * float(cum[-1]) else (
                "launch" if j == 0 else "cruise")
        ev["confidence"] = 0.9
        ev["record_row"] = tr.row
        out.append((t, ev))
    (elon,), (elat,), _h = _at(tr.points, az, cum, np.array([length]))
    end_lat, end_lon = round(float(elat), 5), round(float(elon), 5)
    if tr.outcome == "impact":
        out.append((end_t, {"type": "impact", "source": SOURCE, "track": tr.id,
                            "kind": "explosion",
                            "position": {"lat": end_lat, "lon": end_lon, "alt_m": 0}}))
        # an impact naming its track ends the track: no separate track_end
    elif tr.outcome == "lost":
        out.append((end_t, {"type": "track_end", "source": SOURCE, "track": tr.id,
                            "reason": "lost"}))
    else:
        out.append((end_t, {"type": "track_end", "source": SOURCE, "track": tr.id,
                            "reason": "intercepted"}))
        if tr.profile != "drone" or rng.random() < DRONE_INTERCEPTOR_SHARE:
            out.extend(_interceptor(rng, tr, end_t, end_lat, end_lon, report_s, interceptor,
                                    seq_by_letter))
        if rng.random() < DEBRIS_SHARE:
            la, lo = _noisy(rng, end_lat, end_lon, 1500)
            out.append((end_t + rng.uniform(20, 90), {
                "type": "impact", "source": SOURCE, "track": tr.id, "kind": "debris",
                "position": {"lat": la, "lon": lo, "alt_m": 0}}))
    return out


def _interceptor(rng: random.Random, tr: _Track, end_t: float, lat: float, lon: float,
                 report_s: float, w: Weapon, seq_by_letter: Counter[str],
                 ) -> list[tuple[float, dict[str, Any]]]:
    """An own interceptor from a site 10–40 km from the intercept, flying straight to it."""
    seq_by_letter["I"] += 1
    tid = f"I{seq_by_letter['I']:04d}"
    dist = rng.uniform(10_000, 40_000)
    slon, slat, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360), dist)
    speed = w.speed_kmh / 3.6 * rng.uniform(0.4, 0.6)
    flight = dist / speed
    launch = end_t - flight
    out: list[tuple[float, dict[str, Any]]] = []
    az, _b, _d = GEOD.inv(slon, slat, lon, lat)
    t = 0.0
    while t < flight:
        plon, plat, _ = GEOD.fwd(slon, slat, az, speed * t)
        out.append((launch + t, {
            "type": "detection", "source": AIR_DEFENCE, "track": tid, "object": "interceptor",
            "weapon": w.id, "affiliation": "own",
            "position": {"lat": round(float(plat), 5), "lon": round(float(plon), 5),
                         "alt_m": 3000},
            "heading_deg": _deg(float(az)), "speed_kmh": round(speed * 3.6),
            "phase": "launch" if t == 0 else "terminal", "confidence": 0.99,
            "record_row": tr.row,
        }))
        t += report_s
    out.append((end_t, {"type": "track_end", "source": AIR_DEFENCE, "track": tid,
                        "reason": "intercepted"}))
    return out


def _deg(value: float) -> float:
    """A heading in [0, 360) at 0.1 degree (rounding 359.96 must not give 360.0)."""
    return round(value % 360, 1) % 360


def _noisy(rng: random.Random, lat: float, lon: float, sigma_m: float) -> tuple[float, float]:
    dlat = rng.gauss(0, sigma_m) / 111_320
    dlon = rng.gauss(0, sigma_m) / (111_320 * max(0.1, math.cos(math.radians(lat))))
    return round(lat + dlat, 5), round(lon + dlon, 5)
