"""How one region's alert is decided, and how transitions are made: the engine's per-region rules.

`Engine` (in `core`) keeps tracks, timers and events; this base holds what it decides per
region and the state that decision reads: the alerts, what covers each leaf (`Field`), the
operators' raises. See `core` for the theory of operation.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tocsin.engine.field import NO_DUE, Field
from tocsin.engine.micros import from_us
from tocsin.engine.policy import Policy
from tocsin.engine.states import SEVERITY_RANK, AlertPhase, Trigger, step
from tocsin.geo import RegionSet
from tocsin.geo.kernel import fieldcore
from tocsin.model import SEVERITIES, Transition

__all__ = ["AIR_RAID", "Alert", "RegionRules"]

AIR_RAID = "air_raid"
# Below this many regions to re-decide, one `_evaluate` each costs less than the array step's
# fixed overhead (region sets of oblasts, a drone's narrow cone).
_FEW = 6
# From this many leaves to evaluate, their covering tracks are read for all at once.
_MANY = 64


@dataclass(slots=True)
class Alert:
    """The live state of one (region, alert type) that is not idle.

    `causes` and `eta_s` are those of its last transition (while holding: the causes it last
    had); `Engine.active_alerts()` gives the current ones.
    """

    phase: AlertPhase
    severity: str
    causes: tuple[str, ...]
    eta_s: float | None
    started_at: int
    cause_seq: int
    hold_until: int | None = None


class RegionRules:
    """Per-region decisions and transitions; `Engine` sets every attribute named here."""

    regions: RegionSet
    policy: Policy
    alerts: dict[tuple[str, str], Alert]
    clock_us: int | None
    _field: Field
    _leaf_pos: dict[str, int]
    _shelter: dict[str, float]
    _shelter_arr: NDArray[np.float64]
    _operators: dict[tuple[str, str], set[str]]
    _cleared: dict[str, set[int]]
    _timers: list[tuple[int, int, str, Any]]
    _timer_n: int
    _stamp: tuple[int, datetime]
    _seq: int
    _out: list[Transition]

    @property
    def _now(self) -> int:
        assert self.clock_us is not None
        return self.clock_us

    def covering(self, region: str, alert_type: str = AIR_RAID) -> tuple[str, ...]:
        """Sorted ids of the live tracks that cover a leaf now and no operator cleared there."""
        pos = self._leaf_pos.get(region)
        if alert_type != AIR_RAID or pos is None:
            return ()
        return tuple(self._field.covering(pos))

    def _causes(self, leaf: str, atype: str,
                tracks: tuple[str, ...] | None = None) -> tuple[str, ...]:
        if tracks is None:
            tracks = self.covering(leaf, atype)
        operators = self._operators.get((leaf, atype))
        if not operators:
            return tracks
        return tracks + tuple(sorted(f"operator:{o}" for o in operators))

    # --- regions -------------------------------------------------------------------------------

    def _leaves(self, region_ids: Iterable[str]) -> list[str]:
        seen: set[str] = set()
        for rid in region_ids:
            seen.update(self.regions.leaves_under(rid))
        return sorted(seen)

    def _decide_many(self, leaves: NDArray[np.intp], gone: str) -> None:
        """`_evaluate` the sorted leaf positions for `air_raid`, as one array step where it can.

        Where the region stays under the same severity (most of a salvo's regions, each new
        missile moving their ETA) only its timer moves; the rest, in order, go to `_evaluate`.
        """
        if leaves.size <= _FEW:
            ids = self.regions.leaves
            for p in leaves.tolist():
                self._evaluate(ids[p], AIR_RAID, gone)
            return
        field_ = self._field
        now = self._now
        quiet: NDArray[np.bool_]
        if fieldcore is not None:
            # the compiled kernel (tocsin.geo.kernel): the same steps, the same timers
            flags, covered_n = fieldcore.settle(
                field_.eta, field_.t_us, field_.off, field_.min_a, field_.arg_a, field_.arg_b,
                self._shelter_arr, field_.op, field_.rank, field_.hold, field_.esc,
                np.ascontiguousarray(leaves, np.intp), now, self.policy.downgrade_margin_s)
            quiet = np.frombuffer(flags, dtype=np.bool_)
            if covered_n:
                field_.dues_moved()
            self._decide_rest(leaves[~quiet], gone)
            return
        covered = field_.min_a[leaves] != np.inf
        pos = leaves[covered]
        quiet = np.zeros(leaves.size, dtype=np.bool_)
        if pos.size:
            sa, sb = field_.arg_a[pos], field_.arg_b[pos]
            # the same IEEE steps as `_evaluate`, so the same decisions and timers
            e = field_.eta[pos, sa] - (now - field_.t_us[sa]) / 1e6
            eb = field_.eta[pos, sb] - (now - field_.t_us[sb]) / 1e6
            shelter, alert_s = self._shelter_arr[pos], field_.off[sb]
            margin = self.policy.downgrade_margin_s
            rank = np.where(e <= shelter, 2, np.where(eb <= alert_s, 1, 0))
            lenient = np.where(e - margin <= shelter, 2, np.where(eb - margin <= alert_s, 1, 0))
            due = np.where(rank < 2, now + np.ceil((e - shelter) * 1e6).astype(np.int64) + 1,
                           NO_DUE)
            due = np.where(rank < 1, np.minimum(
                due, now + np.ceil((eb - alert_s) * 1e6).astype(np.int64) + 1), due)
            op = field_.op[pos]
            rank = np.where(op, np.maximum(rank, 1), rank)
            lenient = np.where(op, np.maximum(lenient, 1), lenient)
            cur = field_.rank[pos]
            final = np.where(cur > rank, np.maximum(rank, np.minimum(cur, lenient)), rank)
            same = (final == cur) & ~field_.hold[pos]
            field_.set_dues(pos[same], due[same])
            quiet[np.flatnonzero(covered)[same]] = True
        self._decide_rest(leaves[~quiet], gone)

    def _decide_rest(self, rest: NDArray[np.intp], gone: str) -> None:
        """`_evaluate` each of the sorted leaf positions the array step did not settle."""
        ids = self.regions.leaves
        if rest.size < _MANY:
            for p in rest.tolist():
                self._evaluate(ids[p], AIR_RAID, gone)
            return
        tracks = self._covering_many(rest)
        for i, p in enumerate(rest.tolist()):
            self._evaluate(ids[p], AIR_RAID, gone, tracks[i])

    def _covering_many(self, leaves: NDArray[np.intp]) -> list[tuple[str, ...]]:
        """`covering` of each leaf: a salvo covers many leaves with the same tracks, so each
        distinct set of slots is named and sorted once."""
        field_ = self._field
        rows = np.packbits(field_.eta[leaves, : field_.used] != np.inf, axis=1)
        if not rows.size:
            return [()] * leaves.size
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        names = [tuple(field_.covering(int(leaves[i]))) for i in first.tolist()]
        return [names[k] for k in inverse.reshape(-1).tolist()]

    def _sync(self, leaf: str) -> None:
        """Mirror a leaf's air-raid alert into the field, for `_decide_many`."""
        pos = self._leaf_pos[leaf]
        alert = self.alerts.get((leaf, AIR_RAID))
        self._field.rank[pos] = -1 if alert is None else SEVERITY_RANK[alert.severity]
        self._field.hold[pos] = alert is not None and alert.phase is AlertPhase.HOLDING

    def _uncleared(self, tid: str, pos: int) -> None:
        cleared = self._cleared.get(tid)
        if cleared is not None:
            cleared.discard(pos)
            if not cleared:
                del self._cleared[tid]

    def _evaluate(self, leaf: str, atype: str, gone: str | None = None,
                  tracks: tuple[str, ...] | None = None) -> None:
        """Re-decide one (region, alert type) from what covers it now.

        `gone` is the track whose leaving may have uncovered the region: the causes its alert
        last had, if it goes into hold.
        """
        self._decide(leaf, atype, gone, tracks)
        if atype == AIR_RAID:
            self._sync(leaf)

    def _decide(self, leaf: str, atype: str, gone: str | None,
                tracks: tuple[str, ...] | None = None) -> None:
        key = (leaf, atype)
        now = self._now
        rank = lenient = -1
        eta: float | None = None
        covered = False
        if atype == AIR_RAID:
            field_ = self._field
            pos = self._leaf_pos[leaf]
            covered = field_.covered(pos)
            due = 0
            if covered:
                # the earliest arrival decides the ETA and `imminent`, the earliest alert point
                # whether it is `alert` (see `engine.field`)
                shelter = self._shelter[leaf]
                margin = self.policy.downgrade_margin_s
                e = field_.eta_of(pos, int(field_.arg_a[pos]), now)
                sb = int(field_.arg_b[pos])
                alert_s = float(field_.off[sb])
                eb = field_.eta_of(pos, sb, now)
                rank = 2 if e <= shelter else 1 if eb <= alert_s else 0
                lenient = 2 if e - margin <= shelter else 1 if eb - margin <= alert_s else 0
                eta = 0.0 if e < 0 else e
                # one microsecond past the next crossing, so the ETA is at or below it then
                if rank < 2:
                    due = now + math.ceil((e - shelter) * 1e6) + 1
                if rank < 1:
                    due = min(due, now + math.ceil((eb - alert_s) * 1e6) + 1)
            field_.set_due(pos, due or NO_DUE)
        operators = self._operators.get(key)
        if operators:
            rank = lenient = max(rank, SEVERITY_RANK["alert"])
        alert = self.alerts.get(key)
        phase = alert.phase if alert is not None else AlertPhase.IDLE
        if not covered and not operators:
            nxt, _ = step(phase, Trigger.UNCOVERED, changed=False)
            if alert is not None and nxt is AlertPhase.HOLDING and alert.hold_until is None:
                alert.phase = nxt
                if gone is not None:
                    alert.causes = (gone,)
                alert.hold_until = now + int(self.policy.hold_s * 1e6)
                self._push(alert.hold_until, "hold", key)
            return
        if alert is not None and SEVERITY_RANK[alert.severity] > rank:
            # hysteresis: a redrawn footprint may nudge an ETA back over a threshold; only a
            # clear margin lowers the severity, so sirens do not flap
            rank = max(rank, min(SEVERITY_RANK[alert.severity], lenient))
        severity = SEVERITIES[rank]
        eta_out = None if eta is None else round(eta, 1)
        # Material transitions only: a start, an end or a change of severity. A cause joining
        # or leaving at the same severity is kept in the state and rides on the next one.
        changed = alert is None or alert.severity != severity
        nxt, kind = step(phase, Trigger.COVERED, changed=changed)
        if alert is not None:
            alert.phase, alert.hold_until = nxt, None
        if not kind:
            return
        causes = self._causes(leaf, atype, tracks)
        if alert is None:
            self.alerts[key] = Alert(nxt, severity, causes, eta_out, now, self._seq)
        else:
            alert.severity, alert.causes, alert.eta_s = severity, causes, eta_out
        self._emit(kind, leaf, atype, severity, causes, eta_out)

    def _push(self, due: int, kind: str, key: Any) -> None:
        self._timer_n += 1
        heapq.heappush(self._timers, (due, self._timer_n, kind, key))

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


