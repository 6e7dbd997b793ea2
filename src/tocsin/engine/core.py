"""The pure alert engine: ordered events in, transitions out.

Theory of operation. Each live track holds a *coverage*: the leaf regions its footprint touches,
each with the ETA computed when the footprint was drawn (`t_cov`). An ETA then counts down by
itself, so urgency rises without new detections. A `Field` holds every track's ETAs over all
leaves as one array and, per leaf, what decides it (its earliest arrival and alert point), so a
footprint is applied in one numpy step and a region is re-decided only when a change moves what
decides it; most of those re-decisions are one more numpy step too, and only regions whose alert
starts, ends, changes severity or leaves its hold run Python. Each region keeps one timer, at
the next moment its severity rises. Whether a region is under alert is decided by
`states.step` from what covers it now: tracks (unless an operator cleared them for that region)
and operators. Transitions are *material*: an alert starts, changes severity or ends; the causes
and ETA are kept current in the state and ride on the next transition.

Time is an input. Internally it is integer microseconds since the epoch, so replays do the same
arithmetic bit for bit; nothing here reads a clock, a file or the network.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from functools import singledispatchmethod
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tocsin.engine.field import NO_DUE, Field
from tocsin.engine.micros import EPOCH, from_us, to_us
from tocsin.engine.policy import Policy
from tocsin.engine.rules import AIR_RAID, Alert, RegionRules
from tocsin.engine.states import AlertPhase, Trigger, step
from tocsin.errors import EventRejected, FieldError
from tocsin.geo import RegionSet
from tocsin.model import (
    ALERT_TYPES,
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
from tocsin.threats.tracks import GEOD, Track

_NO_POS: NDArray[np.intp] = np.empty(0, dtype=np.intp)
_NO_ETA: NDArray[np.float64] = np.empty(0)
__all__ = ["Alert", "Engine", "Step", "from_us", "to_us"]

@dataclass(frozen=True, slots=True)
class Step:
    """What one event did: the transitions (in log order) and notes for the submitter."""

    transitions: list[Transition] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Engine(RegionRules):
    """Deterministic alert engine over one region set, catalog and policy."""

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
        self._leaf_pos = {leaf: i for i, leaf in enumerate(regions.leaves)}
        self._shelter_arr = np.array([self._shelter[leaf] for leaf in regions.leaves])
        # per-profile `alert_s`, looked up for every covering track of every re-decided region
        self._alert_s = {p: self.policy.horizon(p).alert_s for p in PROFILES}
        self._stamp: tuple[int, datetime] = (0, EPOCH)  # the last transition time made
        self.clock_us: int | None = None
        self.tick_us: int | None = None
        # The latest tick of a server's own clock (`"clock": "server"`): in a server no event
        # moves the engine past it; one dated later is applied as of it (see `apply`).
        self.wall_us: int | None = None
        self._t_event = 0  # the time the event being applied counts as
        self.tracks: dict[str, Track] = {}
        self.alerts: dict[tuple[str, str], Alert] = {}
        self.levels: dict[str, int] = {}
        self.sirens: dict[str, str] = {}  # siren id -> last status other than ok
        self._field = Field(len(regions.leaves))  # what covers each leaf for air raids
        self._operators: dict[tuple[str, str], set[str]] = {}
        self._suppressed: dict[tuple[str, str], set[str]] = {}
        self._cleared: dict[str, set[int]] = {}  # track -> leaf positions cleared for it
        self._timers: list[tuple[int, int, str, Any]] = []
        self._timer_n = 0
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
        self._check(event, to_us(event.time))

    def _check(self, event: Event, t: int) -> None:
        """`check`, with the event's time already in microseconds."""
        if self.tick_us is not None and not isinstance(event, Tick):
            ahead = (t - self.tick_us) / 1e6
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

        `checked`: the caller ran `check(event)` against this engine as it stands now (the
        ledger checks a whole batch before applying any of it), so it is not run twice.
        """
        t = to_us(event.time)
        if not checked:
            self._check(event, t)
        self._seq, self._out, self._notes = seq, [], []
        if isinstance(event, Tick):
            if event.server:
                self.wall_us = t if self.wall_us is None else max(self.wall_us, t)
        elif self.wall_us is not None and t > self.wall_us:
            # Time rule: a sensor's clock never drives the server's. The event keeps its own
            # `time` in the log but counts as of the server's latest tick, so it can neither
            # fire timers (end alerts) early nor freeze a track with a fix from the future.
            self._notes.append(
                f"dated {(t - self.wall_us) / 1e6:.3f} s after the server clock; "
                f"applied as of {format_time(from_us(self.wall_us))}"
            )
            t = self.wall_us
        self._t_event = t
        now = t if self.clock_us is None else max(self.clock_us, t)
        self._run_timers(now)
        self.clock_us = now
        if isinstance(event, Tick):
            self.tick_us = now if self.tick_us is None else max(self.tick_us, now)
        _handler(type(event))(self, event)
        return Step(self._out, self._notes)

    def track_sources(self, track: str) -> frozenset[str] | None:
        """The sources that reported a live track, or None when it is not live."""
        tr = self.tracks.get(track)
        return None if tr is None else frozenset(tr.sources)

    def next_deadline(self) -> datetime | None:
        """When the earliest pending timer fires, or None when nothing is pending."""
        while self._timers and not self._live(self._timers[0]):
            heapq.heappop(self._timers)
        due = [self._timers[0][0]] if self._timers else []
        escalation = self._field.next_escalation()
        if escalation is not None:
            due.append(escalation[0])
        return from_us(min(due)) if due else None

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
                    "causes": list(self._causes_now(region, atype, a)),
                    "eta_s": self._eta_now(region, atype),
                    "holding": a.phase is AlertPhase.HOLDING,
                    "cause_seq": a.cause_seq,
                }
            )
        return out

    def _causes_now(self, region: str, atype: str, alert: Alert) -> tuple[str, ...]:
        """What covers an alert now (its last causes while it holds)."""
        if alert.phase is AlertPhase.HOLDING:
            return alert.causes
        return self._causes(region, atype)

    def _eta_now(self, region: str, atype: str) -> float | None:
        pos = self._leaf_pos.get(region)
        if atype != AIR_RAID or pos is None or not self._field.covered(pos):
            return None
        slot = int(self._field.arg_a[pos])
        return round(max(0.0, self._field.eta_of(pos, slot, self._now)), 1)

    # --- dispatch ------------------------------------------------------------------------------

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
        t_obs = self._t_event
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
            tr.slot = self._field.alloc(tr.id)
            tr.sources.add(event.source)
            self._serial += 1
            self._serials[tr.id] = self._serial
            redraw = True
        elif t_obs < tr.t_fix:
            tr.sources.add(event.source)
            self._notes.append(
                f"track {tr.id}: detection older than the last fix; logged, not used"
            )
            return
        else:
            tr.sources.add(event.source)
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
        air = event.alert_type == AIR_RAID
        field_ = self._field
        for leaf in self._leaves(event.regions):
            key = (leaf, event.alert_type)
            pos = self._leaf_pos[leaf]
            if event.action == "raise":
                self._operators.setdefault(key, set()).add(event.operator)
                if air:
                    field_.op[pos] = True
                for tid in sorted(self._suppressed.pop(key, ())):
                    # tracks cleared here alert here again
                    self._uncleared(tid, pos)
                    tr = self.tracks[tid]
                    i = int(np.searchsorted(tr.cov_pos, pos))
                    if i < tr.cov_pos.size and tr.cov_pos[i] == pos:
                        field_.put(pos, tr.slot, float(tr.cov_eta[i]))
                self._evaluate(leaf, event.alert_type)
                continue
            self._operators.pop(key, None)
            if air:
                field_.op[pos] = False
                # what covers it now is set aside here (tracks already set aside stay so)
                covering = field_.clear(pos)
                self._suppressed.setdefault(key, set()).update(covering)
                for tid in covering:
                    self._cleared.setdefault(tid, set()).add(pos)
            alert = self.alerts.get(key)
            if alert is not None:
                _, kind = step(alert.phase, Trigger.CLEAR, changed=True)
                if kind:
                    del self.alerts[key]
                    if air:
                        self._sync(leaf)
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
        pos, dist = self.regions.hit_positions(fp)
        # One array step for all leaves; the same IEEE operations as `max(0.0, d / v - minus)`,
        # so every ETA is what a per-leaf loop would give.
        eta = dist / tr.speed_mps - minus
        eta = np.where(eta > 0.0, eta, 0.0)
        old = tr.cov_pos
        tr.cov_pos, tr.cov_eta, tr.t_cov, tr.fp_length_m = pos, eta, now, fp.length_m
        tr.anchor = (tr.lat, tr.lon, tr.heading_deg, tr.speed_mps)
        cleared = self._cleared.get(tr.id)
        if cleared:
            keep = ~np.isin(pos, np.fromiter(cleared, dtype=np.intp, count=len(cleared)))
            pos, eta = pos[keep], eta[keep]
        # Only regions where this track moves what decides them (their earliest arrival or
        # alert point) are re-decided; elsewhere nothing a person acts on can change.
        moved = self._field.redraw(tr.slot, old, pos, eta, now, self._alert_s[tr.profile])
        self._decide_many(moved, gone=tr.id)

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
        old, tr.cov_pos, tr.cov_eta = tr.cov_pos, _NO_POS, _NO_ETA
        field_ = self._field
        moved = field_.redraw(tr.slot, old, _NO_POS, _NO_ETA, tr.t_cov, field_.off[tr.slot])
        field_.release(tr.slot)
        self._decide_many(moved, gone=tr.id)
        if self._cleared.pop(tr.id, None) is None:
            return
        for key, tracks in list(self._suppressed.items()):
            if tr.id in tracks:
                tracks.discard(tr.id)
                if not tracks:
                    del self._suppressed[key]

    # --- timers --------------------------------------------------------------------------------

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
        return tr.reckon_at == due

    def _run_timers(self, until: int) -> None:
        field_ = self._field
        while True:
            timers = self._timers
            escalation = field_.next_escalation()
            # at the same microsecond, track and hold timers go before escalations
            if timers and timers[0][0] <= until and (
                escalation is None or timers[0][0] <= escalation[0]
            ):
                timer = heapq.heappop(timers)
            elif escalation is not None and escalation[0] <= until:
                due, pos = escalation
                if self.clock_us is None or due > self.clock_us:
                    self.clock_us = due
                self._evaluate(self.regions.leaves[pos], AIR_RAID)
                if field_.esc[pos] <= due:
                    # a crossing is always ahead of the one that fired; never fire it twice
                    field_.set_due(pos, NO_DUE)
                continue
            else:
                return
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

    def _fire_hold(self, key: tuple[str, str]) -> None:
        alert = self.alerts[key]
        _, kind = step(alert.phase, Trigger.HOLD_EXPIRED, changed=True)
        if kind:
            del self.alerts[key]
            if key[1] == AIR_RAID:
                self._sync(key[0])
            self._emit(kind, key[0], key[1], alert.severity, alert.causes, None)

# `singledispatchmethod` builds a bound wrapper on every call (several µs in 3.11, paid by every
# event); its dispatcher's own lookup is cached per type.
_handler = Engine.__dict__["_on"].dispatcher.dispatch
