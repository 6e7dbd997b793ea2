"""The engine as it was before material transitions: a reference for the property tests.

This is the previous decision logic, kept verbatim apart from this docstring: every change of
causes emitted an `alert_updated`, each re-decision walked every track covering the region, and
each track kept one timer scanning all its regions for the next severity crossing. It is slow on
mass attacks, which is why it was replaced, but what it decides is the definition the current
engine is checked against (`test_properties.py`): the same (region, alert type) pairs under
alert at the same severity at every instant, and the same transitions once those that only
changed causes are left out.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import singledispatchmethod
from typing import Any

from tocsin.engine.policy import Policy
from tocsin.engine.states import SEVERITY_RANK, AlertPhase, Trigger, step
from tocsin.errors import EventRejected, FieldError
from tocsin.geo import RegionSet
from tocsin.model import (
    ALERT_TYPES,
    SEVERITIES,
    Detection,
    Event,
    Impact,
    OperatorAlert,
    SirenStatus,
    ThreatLevel,
    Tick,
    TrackEnd,
    Transition,
    format_time,
)
from tocsin.threats.catalog import PROFILES, Catalog, load_catalog
from tocsin.threats.tracks import GEOD
from tocsin.threats.tracks import Track as _Track


@dataclass(slots=True)
class Track(_Track):
    """The production track, with the per-region coverage and timer this engine keeps."""

    coverage: dict[str, float] = field(default_factory=dict)
    escalate_at: int = 0

__all__ = ["ReferenceEngine"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
AIR_RAID = "air_raid"


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (dt - EPOCH) // _US


def from_us(us: int) -> datetime:
    """The UTC datetime of `us` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)


@dataclass(slots=True)
class Alert:
    """The live state of one (region, alert type) that is not idle."""

    phase: AlertPhase
    severity: str
    causes: tuple[str, ...]
    eta_s: float | None
    started_at: int
    cause_seq: int
    hold_until: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What one event did: the transitions (in log order) and notes for the submitter."""

    transitions: list[Transition] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class ReferenceEngine:
    """The previous engine: every change of causes is a transition."""

    def __init__(
        self,
        regions: RegionSet,
        catalog: Catalog | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.regions = regions
        self.catalog = catalog if catalog is not None else load_catalog()
        self.policy = policy if policy is not None else Policy()
        self._shelter = {
            leaf: float(regions.get(leaf).shelter_s or self.policy.shelter_s)
            for leaf in regions.leaves
        }
        # per-profile `alert_s`, looked up for every covering track of every re-decided region
        self._alert_s = {p: self.policy.horizon(p).alert_s for p in PROFILES}
        self._stamp: tuple[int, datetime] = (0, EPOCH)  # the last transition time made
        self.clock_us: int | None = None
        self.tick_us: int | None = None
        self.tracks: dict[str, Track] = {}
        self.alerts: dict[tuple[str, str], Alert] = {}
        self.levels: dict[str, int] = {}
        self.sirens: dict[str, str] = {}  # siren id -> last status other than ok
        self._covered_by: dict[str, set[str]] = {}
        self._operators: dict[tuple[str, str], set[str]] = {}
        self._suppressed: dict[tuple[str, str], set[str]] = {}
        self._timers: list[tuple[int, int, str, Any]] = []
        self._timer_n = 0
        self._crossing: dict[str, list[str]] = {}  # track -> leaves its escalate timer re-decides
        self._serial = 0
        self._serials: dict[str, int] = {}
        # scratch of the event being applied
        self._seq = 0
        self._out: list[Transition] = []
        self._notes: list[str] = []

    # --- public --------------------------------------------------------------------------------

    @property
    def clock(self) -> datetime | None:
        """The engine's time: the latest event or timer it has processed."""
        return None if self.clock_us is None else from_us(self.clock_us)

    def check(self, event: Event) -> None:
        """Raise `EventRejected` if the engine would refuse `event`; changes nothing."""
        if not isinstance(event, Tick) and self.tick_us is not None:
            ahead = (to_us(event.time) - self.tick_us) / 1e6
            if ahead > self.policy.max_future_s:
                raise EventRejected(
                    FieldError(
                        "time",
                        f"{ahead:.0f} s ahead of the clock ({format_time(from_us(self.tick_us))});"
                        f" the limit is {self.policy.max_future_s:.0f} s",
                    )
                )
        if isinstance(event, OperatorAlert | ThreatLevel):
            bad = [
                FieldError(f"regions[{i}]", f"unknown region {rid!r}")
                for i, rid in enumerate(event.regions)
                if rid not in self.regions.regions
            ]
            if bad:
                raise EventRejected(bad)
        if isinstance(event, SirenStatus) and event.region not in self.regions.regions:
            raise EventRejected(FieldError("region", f"unknown region {event.region!r}"))

    def apply(self, event: Event, seq: int, *, checked: bool = False) -> Step:
        """Apply the event logged at `seq`; its transitions take seq+1, seq+2, …
        (`checked`: as `Engine.apply`; this one checks every event regardless)."""
        self.check(event)
        t = to_us(event.time)
        now = t if self.clock_us is None else max(self.clock_us, t)
        self._seq, self._out, self._notes = seq, [], []
        self._run_timers(now)
        self.clock_us = now
        if isinstance(event, Tick):
            self.tick_us = now if self.tick_us is None else max(self.tick_us, now)
        self._on(event)
        return Step(self._out, self._notes)

    def next_deadline(self) -> datetime | None:
        """When the earliest pending timer fires, or None when nothing is pending."""
        while self._timers and not self._live(self._timers[0]):
            heapq.heappop(self._timers)
        return from_us(self._timers[0][0]) if self._timers else None

    def active_alerts(self) -> list[dict[str, Any]]:
        """Every active (or holding) alert, sorted by region then type."""
        out = []
        for (region, atype), a in sorted(self.alerts.items()):
            out.append(
                {
                    "region": region,
                    "alert_type": atype,
                    "severity": a.severity,
                    "started_at": format_time(from_us(a.started_at)),
                    "causes": list(a.causes),
                    "eta_s": self._eta_now(region, a),
                    "holding": a.phase is AlertPhase.HOLDING,
                    "cause_seq": a.cause_seq,
                }
            )
        return out

    def covering(self, region: str, alert_type: str = AIR_RAID) -> tuple[str, ...]:
        """Sorted ids of the live tracks that cover a leaf now and no operator cleared there."""
        if alert_type != AIR_RAID:
            return ()
        cleared = self._suppressed.get((region, alert_type), ())
        return tuple(sorted(t for t in self._covered_by.get(region, ()) if t not in cleared))

    def _eta_now(self, region: str, alert: Alert) -> float | None:
        best: float | None = None
        for tid in self._covered_by.get(region, ()):
            tr = self.tracks[tid]
            eta = max(0.0, tr.coverage[region] - (self._now - tr.t_cov) / 1e6)
            best = eta if best is None or eta < best else best
        return None if best is None else round(best, 1)

    # --- dispatch ------------------------------------------------------------------------------

    @property
    def _now(self) -> int:
        assert self.clock_us is not None
        return self.clock_us

    @singledispatchmethod
    def _on(self, event: Event) -> None:
        raise TypeError(f"unknown event {type(event).__name__}")

    @_on.register
    def _(self, event: Tick) -> None:
        return None

    @_on.register
    def _(self, event: Detection) -> None:
        res = self.catalog.resolve(event.weapon, event.object)
        if res.note:
            self._notes.append(f"track {event.track}: {res.note}")
        carrier = res.weapon.profile == "carrier"
        measured = 0.0 if carrier or event.speed_kmh is None else event.speed_kmh
        speed = max(measured, res.reach_speed_kmh) / 3.6
        t_obs = to_us(event.time)
        pos = event.position
        tr = self.tracks.get(event.track)
        if tr is None:
            tr = Track(
                id=event.track, object=event.object, resolved=res,
                affiliation=event.affiliation, lat=pos.lat, lon=pos.lon,
                heading_deg=event.heading_deg, speed_mps=speed, t_fix=t_obs,
                phase=event.phase, last_news=t_obs,
            )
            self.tracks[tr.id] = tr
            self._serial += 1
            self._serials[tr.id] = self._serial
            redraw = True
        elif t_obs < tr.t_fix:
            self._notes.append(
                f"track {tr.id}: detection older than the last fix; logged, not used"
            )
            return
        else:
            _, _, moved = GEOD.inv(tr.lon, tr.lat, pos.lon, pos.lat)
            tr.flown_m += float(moved)
            redraw = self._needs_redraw(tr, event, res.weapon.id, speed)
            tr.object, tr.resolved, tr.affiliation = event.object, res, event.affiliation
            tr.lat, tr.lon, tr.heading_deg = pos.lat, pos.lon, event.heading_deg
            tr.speed_mps, tr.t_fix, tr.phase = speed, t_obs, event.phase
            tr.last_news = max(tr.last_news, t_obs)
        if redraw:
            self._draw(tr)
        if tr.id in self.tracks:
            self._schedule_track(tr)

    @_on.register
    def _(self, event: TrackEnd) -> None:
        tr = self.tracks.get(event.track)
        if tr is None:
            self._notes.append(f"track {event.track}: not live; nothing to end")
            return
        self._end_track(tr)

    @_on.register
    def _(self, event: Impact) -> None:
        pos = event.position
        leaf = self.regions.locate(pos.lat, pos.lon)
        if leaf is None:
            self._notes.append("impact outside the loaded regions")
        elif not any((leaf, atype) in self.alerts for atype in ALERT_TYPES):
            position: dict[str, float] = {"lat": pos.lat, "lon": pos.lon}
            self._emit(
                "silent_impact", leaf, AIR_RAID, None,
                (event.track,) if event.track else (), None,
                (("impact", event.id), ("kind", event.kind), ("position", position),
                 ("source", event.source)),
            )
        tr = self.tracks.get(event.track) if event.track else None
        if tr is not None:
            self._end_track(tr)

    @_on.register
    def _(self, event: OperatorAlert) -> None:
        who = f"operator:{event.operator}"
        for leaf in self._leaves(event.regions):
            key = (leaf, event.alert_type)
            if event.action == "raise":
                self._operators.setdefault(key, set()).add(event.operator)
                self._suppressed.pop(key, None)
                self._evaluate(leaf, event.alert_type)
                continue
            self._operators.pop(key, None)
            if event.alert_type == AIR_RAID:
                covering = self._covered_by.get(leaf, set())
                self._suppressed.setdefault(key, set()).update(covering)
            alert = self.alerts.get(key)
            if alert is not None:
                _, kind = step(alert.phase, Trigger.CLEAR, changed=True)
                if kind:
                    del self.alerts[key]
                    self._emit(kind, leaf, event.alert_type, alert.severity, (who,), None)

    @_on.register
    def _(self, event: ThreatLevel) -> None:
        who = (f"operator:{event.operator}",)
        for leaf in self._leaves(event.regions):
            old = self.levels.get(leaf, 0)
            if old == event.level:
                continue
            if event.level:
                self.levels[leaf] = event.level
            else:
                del self.levels[leaf]
            self._emit(
                "level_changed", leaf, None, None, who, None,
                (("level", event.level), ("previous_level", old)),
            )

    @_on.register
    def _(self, event: SirenStatus) -> None:
        # A fault is reported once when it starts and once when the siren recovers; repeated
        # reports of the same state are no news.
        previous = self.sirens.get(event.siren, "ok")
        if event.status == previous:
            return
        if event.status == "ok":
            del self.sirens[event.siren]
            status = "recovered"
        else:
            self.sirens[event.siren] = event.status
            status = event.status
        extra: tuple[tuple[str, Any], ...] = (("siren", event.siren), ("status", status))
        if event.reason:
            extra += (("reason", event.reason),)
        for leaf in self._leaves([event.region]):
            self._emit("siren_fault", leaf, None, None, (f"siren:{event.siren}",), None,
                       tuple(sorted(extra)))

    # --- tracks --------------------------------------------------------------------------------

    def _needs_redraw(self, tr: Track, ev: Detection, weapon_id: str, speed: float) -> bool:
        lat0, lon0, head0, speed0 = tr.anchor
        if weapon_id != tr.weapon_id or ev.object != tr.object or ev.phase != tr.phase:
            return True
        if (ev.heading_deg is None) != (head0 is None):
            return True
        if ev.heading_deg is not None and head0 is not None:
            turn = abs((ev.heading_deg - head0 + 180.0) % 360.0 - 180.0)
            if turn >= self.policy.recompute_deg:
                return True
        if speed0 <= 0 or abs(speed - speed0) / speed0 >= self.policy.recompute_speed_ratio:
            return True
        _, _, dist = GEOD.inv(lon0, lat0, ev.position.lon, ev.position.lat)
        threshold = max(self.policy.recompute_km * 1000.0,
                        self.policy.recompute_fraction * tr.fp_length_m)
        return float(dist) >= threshold

    def _draw(self, tr: Track) -> None:
        """Recompute the track's footprint at the current time and re-decide its regions."""
        now = self._now
        if tr.spent(now):
            self._notes.append(f"track {tr.id}: flew its whole range; ended")
            self._end_track(tr)
            return
        horizon = self.policy.horizon(tr.profile)
        fp, minus = tr.footprint(now, horizon.pre_alert_s)
        speed = tr.speed_mps
        new = {leaf: max(0.0, dist / speed - minus) for leaf, dist in self.regions.hits(fp)}
        old, old_t = tr.coverage, tr.t_cov
        tr.coverage, tr.t_cov, tr.fp_length_m = new, now, fp.length_m
        tr.anchor = (tr.lat, tr.lon, tr.heading_deg, tr.speed_mps)
        for leaf in old.keys() - new.keys():
            covering = self._covered_by[leaf]
            covering.discard(tr.id)
            if not covering:
                del self._covered_by[leaf]
        for leaf in new:
            self._covered_by.setdefault(leaf, set()).add(tr.id)
        # The state of every region equals what `_evaluate` would decide now, and a redraw moves
        # only this track's ETAs; where this track was already a cause and its strict and lenient
        # ranks there did not change, re-deciding would change nothing, so it is skipped.
        tid = tr.id
        alert_s = self._alert_s[tr.resolved.weapon.profile]
        margin = self.policy.downgrade_margin_s
        alerts, shelter = self.alerts, self._shelter
        elapsed = (now - old_t) / 1e6
        for leaf in sorted(old.keys() | new.keys()):
            if leaf in old and leaf in new:
                alert = alerts.get((leaf, AIR_RAID))
                if alert is not None and alert.phase is AlertPhase.ACTIVE and tid in alert.causes:
                    s = shelter[leaf]
                    e0 = max(0.0, old[leaf] - elapsed)
                    e1 = new[leaf]
                    r0 = 2 if e0 <= s else 1 if e0 <= alert_s else 0
                    r1 = 2 if e1 <= s else 1 if e1 <= alert_s else 0
                    if r0 == r1:
                        e0 -= margin
                        e1 -= margin
                        r0 = 2 if e0 <= s else 1 if e0 <= alert_s else 0
                        r1 = 2 if e1 <= s else 1 if e1 <= alert_s else 0
                        if r0 == r1:
                            continue
            self._evaluate(leaf, AIR_RAID)
        tr.escalate_at, self._crossing[tr.id] = self._next_crossing(tr, now)
        if tr.escalate_at:
            self._push(tr.escalate_at, "escalate", (tr.id, self._serials[tr.id]))

    def _next_crossing(self, tr: Track, now: int) -> tuple[int, list[str]]:
        """When the next ETA of this track crosses a severity threshold (0: never), and where.

        Only the leaves crossing then can change severity when the timer fires: every other
        leaf's ETAs stay on the same side of every threshold, so they are not re-decided.
        """
        alert_s = self.policy.horizon(tr.profile).alert_s
        elapsed = (now - tr.t_cov) / 1e6
        best = math.inf
        where: list[str] = []
        for leaf, eta0 in tr.coverage.items():
            eta = eta0 - elapsed
            for threshold in (self._shelter[leaf], alert_s):
                if eta > threshold:
                    wait = math.ceil((eta - threshold) * 1e6)
                    if wait < best:
                        best, where = wait, [leaf]
                    elif wait == best and where[-1] != leaf:
                        where.append(leaf)
        if best is math.inf:
            return 0, []
        # one microsecond past the crossing, so the ETA is at or below the threshold then
        return now + int(best) + 1, where

    def _schedule_track(self, tr: Track) -> None:
        key = (tr.id, self._serials[tr.id])
        silence = int(tr.resolved.weapon.max_silence_s * 1e6)
        tr.expire_at = max(tr.last_news + silence, self._now)
        self._push(tr.expire_at, "expire", key)
        tr.reckon_at = self._now + int(self.policy.reckon_s * 1e6)
        self._push(tr.reckon_at, "reckon", key)

    def _end_track(self, tr: Track) -> None:
        del self.tracks[tr.id]
        del self._serials[tr.id]
        self._crossing.pop(tr.id, None)
        old, tr.coverage = tr.coverage, {}
        for leaf in sorted(old):
            covering = self._covered_by[leaf]
            covering.discard(tr.id)
            if not covering:
                del self._covered_by[leaf]
            self._evaluate(leaf, AIR_RAID)
        for key, tracks in list(self._suppressed.items()):
            if tr.id in tracks:
                tracks.discard(tr.id)
                if not tracks:
                    del self._suppressed[key]

    # --- regions -------------------------------------------------------------------------------

    def _leaves(self, region_ids: Iterable[str]) -> list[str]:
        seen: set[str] = set()
        for rid in region_ids:
            seen.update(self.regions.leaves_under(rid))
        return sorted(seen)

    def _evaluate(self, leaf: str, atype: str) -> None:
        """Re-decide one (region, alert type) from what covers it now."""
        key = (leaf, atype)
        now = self._now
        rank = lenient = -1
        eta: float | None = None
        track_causes: list[str] = []
        covering = self._covered_by.get(leaf) if atype == AIR_RAID else None
        if covering:
            suppressed = self._suppressed.get(key, ())
            shelter = self._shelter[leaf]
            margin = self.policy.downgrade_margin_s
            for tid in covering:
                if tid in suppressed:
                    continue
                tr = self.tracks[tid]
                e = tr.coverage[leaf] - (now - tr.t_cov) / 1e6
                e = 0.0 if e < 0 else e
                alert_s = self._alert_s[tr.resolved.weapon.profile]
                r = 2 if e <= shelter else 1 if e <= alert_s else 0
                rank = r if r > rank else rank
                e2 = e - margin
                r = 2 if e2 <= shelter else 1 if e2 <= alert_s else 0
                lenient = r if r > lenient else lenient
                eta = e if eta is None or e < eta else eta
                track_causes.append(tid)
        operators = self._operators.get(key)
        if operators:
            rank = lenient = max(rank, SEVERITY_RANK["alert"])
        causes = tuple(sorted(track_causes)) + tuple(
            sorted(f"operator:{o}" for o in operators or ())
        )
        alert = self.alerts.get(key)
        phase = alert.phase if alert is not None else AlertPhase.IDLE
        if not causes:
            nxt, _ = step(phase, Trigger.UNCOVERED, changed=False)
            if alert is not None and nxt is AlertPhase.HOLDING and alert.hold_until is None:
                alert.phase = nxt
                alert.hold_until = now + int(self.policy.hold_s * 1e6)
                self._push(alert.hold_until, "hold", key)
            return
        if alert is not None and SEVERITY_RANK[alert.severity] > rank:
            # hysteresis: a redrawn footprint may nudge an ETA back over a threshold; only a
            # clear margin lowers the severity, so sirens do not flap
            rank = max(rank, min(SEVERITY_RANK[alert.severity], lenient))
        severity = SEVERITIES[rank]
        eta_out = None if eta is None else round(eta, 1)
        changed = alert is None or alert.severity != severity or alert.causes != causes
        nxt, kind = step(phase, Trigger.COVERED, changed=changed)
        if alert is None:
            self.alerts[key] = Alert(nxt, severity, causes, eta_out, now, self._seq)
        else:
            alert.phase, alert.hold_until = nxt, None
            if kind:
                alert.severity, alert.causes, alert.eta_s = severity, causes, eta_out
        if kind:
            self._emit(kind, leaf, atype, severity, causes, eta_out)

    # --- timers --------------------------------------------------------------------------------

    def _push(self, due: int, kind: str, key: Any) -> None:
        self._timer_n += 1
        heapq.heappush(self._timers, (due, self._timer_n, kind, key))

    def _live(self, timer: tuple[int, int, str, Any]) -> bool:
        due, _, kind, key = timer
        if kind == "hold":
            alert = self.alerts.get(key)
            return alert is not None and alert.hold_until == due
        tid, serial = key
        tr = self.tracks.get(tid)
        if tr is None or self._serials.get(tid) != serial:
            return False
        if kind == "expire":
            return tr.expire_at == due
        if kind == "reckon":
            return tr.reckon_at == due
        return tr.escalate_at == due

    def _run_timers(self, until: int) -> None:
        while self._timers and self._timers[0][0] <= until:
            timer = heapq.heappop(self._timers)
            if not self._live(timer):
                continue
            due, _, kind, key = timer
            if self.clock_us is None or due > self.clock_us:
                self.clock_us = due
            if kind == "hold":
                self._fire_hold(key)
                continue
            tr = self.tracks[key[0]]
            if kind == "expire":
                self._notes.append(f"track {tr.id}: no news; expired")
                self._end_track(tr)
            elif kind == "reckon":
                self._draw(tr)
                if tr.id in self.tracks:
                    tr.reckon_at = self._now + int(self.policy.reckon_s * 1e6)
                    self._push(tr.reckon_at, "reckon", key)
            else:
                for leaf in sorted(self._crossing[tr.id]):
                    self._evaluate(leaf, AIR_RAID)
                tr.escalate_at, self._crossing[tr.id] = self._next_crossing(tr, self._now)
                if tr.escalate_at:
                    self._push(tr.escalate_at, "escalate", key)

    def _fire_hold(self, key: tuple[str, str]) -> None:
        alert = self.alerts[key]
        _, kind = step(alert.phase, Trigger.HOLD_EXPIRED, changed=True)
        if kind:
            del self.alerts[key]
            self._emit(kind, key[0], key[1], alert.severity, alert.causes, None)

    # --- output --------------------------------------------------------------------------------

    def _emit(
        self,
        kind: str,
        region: str,
        alert_type: str | None,
        severity: str | None,
        causes: tuple[str, ...],
        eta_s: float | None,
        extra: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        if self._stamp[0] != self._now:
            self._stamp = (self._now, from_us(self._now))
        self._out.append(
            Transition(
                type=kind,
                region=region,
                time=self._stamp[1],
                cause_seq=self._seq,
                seq=self._seq + 1 + len(self._out),
                alert_type=alert_type,
                severity=severity,
                causes=causes,
                eta_s=eta_s,
                extra=extra,
            )
        )
