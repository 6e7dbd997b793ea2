"""What covers every leaf for `air_raid`: one array over leaves × live tracks, and its minima.

Theory of operation. A track's contribution to a leaf is its ETA there as of the moment its
footprint was drawn (`t_cov`); its *arrival* is `t_cov / 1e6 + eta`, and its *alert point* the
arrival minus the `alert_s` of its flight profile. ETAs count down one second per second, so
between redraws the order of the covering tracks by arrival never changes, and a region's
decision depends on two of them only: the earliest arrival (its ETA and whether it is
`imminent`) and the earliest alert point (whether it is at least `alert`).

`eta[leaf, slot]` holds every live track's ETAs (`inf` where it does not cover the leaf, or an
operator cleared it there), one column per track. Per leaf, the two minima and the slots that
give them are cached. A new or redrawn footprint is one numpy step over the leaves it touches:
its arrivals are compared with the cached minima all at once, and only the leaves where the
track gave a minimum and moved (or left) are searched again, one row of `eta` each, over the
live slots. No Python runs per (track, leaf) pair, so a disc over all 1,769 hromadas costs
about what a narrow cone does. Ties go to the smaller track id, as a sort by (arrival, id)
would.

Each leaf also keeps its next severity crossing (`esc`), the moment its ETA will cross its time
to shelter or its alert point will pass: one timer per leaf, read with an `argmin`.

Memory is leaves × slots × 8 bytes (14 KB per live track over the bundled hromadas); slots are
reused lowest first, and the array grows by doubling, so it holds at most twice the most tracks
ever live at once.
"""

from __future__ import annotations

import heapq

import numpy as np
from numpy.typing import NDArray

from tocsin.geo.kernel import fieldcore

__all__ = ["NO_DUE", "Field"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
DueArray = NDArray[np.int64]

NO_DUE = int(np.iinfo(np.int64).max)  # a leaf with no severity crossing ahead
_INF = float("inf")
# Up to this many slots a row is read in Python: cheaper than numpy's fixed cost per call.
_SCAN = 64


class Field:
    """ETAs of every live track at every leaf, with each leaf's deciding tracks and timer."""

    def __init__(self, leaves: int) -> None:
        self.leaves = leaves
        cap = 8
        self.eta: FloatArray = np.full((leaves, cap), _INF)
        self.t_us: DueArray = np.zeros(cap, dtype=np.int64)  # each slot's t_cov
        self.t_s: FloatArray = np.zeros(cap)  # t_cov / 1e6, as the arrivals use it
        self.off: FloatArray = np.zeros(cap)  # each slot's alert_s
        self.tid: list[str] = [""] * cap
        # each slot's place in the order of the live track ids (ties go to the smaller id),
        # made again when first needed after a track comes or goes
        self._order: NDArray[np.intp] = np.zeros(cap, dtype=np.intp)
        self._order_stale = False
        self.used = 0  # slots below this may be live; above it all are free
        self._free: list[int] = []
        self.min_a: FloatArray = np.full(leaves, _INF)
        self.arg_a: IntArray = np.full(leaves, -1, dtype=np.intp)
        self.min_b: FloatArray = np.full(leaves, _INF)
        self.arg_b: IntArray = np.full(leaves, -1, dtype=np.intp)
        self.esc: DueArray = np.full(leaves, NO_DUE, dtype=np.int64)
        # the earliest crossing, kept while writes cannot have moved it (every event asks for
        # it, most often with nothing due; an argmin over all leaves each time)
        self._next: tuple[int, int] | None = None
        self._next_known = True
        # the air-raid alert of each leaf as the engine last left it: its severity rank (-1 for
        # none), whether it holds, whether an operator raised it
        self.rank: NDArray[np.int8] = np.full(leaves, -1, dtype=np.int8)
        self.hold: NDArray[np.bool_] = np.zeros(leaves, dtype=np.bool_)
        self.op: NDArray[np.bool_] = np.zeros(leaves, dtype=np.bool_)
        self._mark: NDArray[np.bool_] = np.zeros(leaves, dtype=np.bool_)  # scratch, kept all False

    # --- slots ---------------------------------------------------------------------------------

    def alloc(self, tid: str) -> int:
        """A free slot for a new track."""
        if self._free:
            slot = heapq.heappop(self._free)
        else:
            slot = self.used
            if slot == len(self.tid):
                self._grow()
            self.used += 1
        self.tid[slot] = tid
        self._order_stale = True
        return slot

    def release(self, slot: int) -> None:
        """Free a slot whose track's column is already all `inf`."""
        self.tid[slot] = ""
        self._order_stale = True
        heapq.heappush(self._free, slot)
        if slot == self.used - 1:
            # lower the high-water mark past the free slots at the top, so searches span
            # only slots that may be live
            while self.used and not self.tid[self.used - 1]:
                self.used -= 1
            self._free = [s for s in self._free if s < self.used]
            heapq.heapify(self._free)

    def _grow(self) -> None:
        cap = 2 * len(self.tid)
        eta = np.full((self.leaves, cap), _INF)
        eta[:, : len(self.tid)] = self.eta
        self.eta = eta
        self.t_us = np.concatenate((self.t_us, np.zeros(cap - len(self.tid), dtype=np.int64)))
        self.t_s = np.concatenate((self.t_s, np.zeros(cap - len(self.tid))))
        self.off = np.concatenate((self.off, np.zeros(cap - len(self.tid))))
        self.tid.extend([""] * (cap - len(self.tid)))
        self._order = np.zeros(cap, dtype=np.intp)
        self._order_stale = True

    # --- contributions -------------------------------------------------------------------------

    def redraw(
        self,
        slot: int,
        old: IntArray,
        new: IntArray,
        eta: FloatArray,
        t_us: int,
        off: float,
    ) -> IntArray:
        """Replace a track's contribution (`old` leaves) by `eta` at `new` leaves, drawn at
        `t_us`; the sorted leaves whose deciding arrival or alert point moved.

        Either may be empty: a new track has no `old`, an ended one no `new`. Both ascend.
        """
        if fieldcore is not None:
            # the compiled kernel (tocsin.geo.kernel): the same steps, the same numbers
            t_s = t_us / 1e6
            self.t_us[slot], self.t_s[slot], self.off[slot] = t_us, t_s, off
            moved: IntArray = np.frombuffer(fieldcore.redraw(
                self.eta, self.t_s, self.off, self.min_a, self.arg_a, self.min_b, self.arg_b,
                self.order(), np.ascontiguousarray(old, np.intp),
                np.ascontiguousarray(new, np.intp), np.ascontiguousarray(eta, np.float64),
                slot, self.used, t_s, off), dtype=np.intp)
            return moved
        if old.size:
            # where the track gave a minimum, it must be found again once the column is written
            lost = old[(self.arg_a[old] == slot) | (self.arg_b[old] == slot)]
            self.eta[old, slot] = _INF
        else:
            lost = old
        if new.size:
            self.eta[new, slot] = eta
        self.t_us[slot], self.t_s[slot], self.off[slot] = t_us, t_us / 1e6, off
        if not new.size:
            return self._refind(lost)
        if lost.size:
            # the new leaves that are searched again anyway
            mark = self._mark
            mark[lost] = True
            keep = ~mark[new]
            mark[lost] = False
            new, eta = new[keep], eta[keep]
        arrival = t_us / 1e6 + eta
        alert = arrival - off
        min_a, min_b = self.min_a[new], self.min_b[new]
        arg_a, arg_b = self.arg_a[new], self.arg_b[new]
        better_a = arrival < min_a
        better_b = alert < min_b
        tie_a = arrival == min_a
        tie_b = alert == min_b
        if (tie_a | tie_b).any():
            order = self.order()
            mine = order[slot]
            better_a |= tie_a & (mine < order[arg_a])
            better_b |= tie_b & (mine < order[arg_b])
        self.min_a[new] = np.where(better_a, arrival, min_a)
        self.arg_a[new] = np.where(better_a, slot, arg_a)
        self.min_b[new] = np.where(better_b, alert, min_b)
        self.arg_b[new] = np.where(better_b, slot, arg_b)
        moved = new[better_a | better_b]
        found = self._refind(lost)
        if not found.size:
            return moved
        if not moved.size:
            return found
        both = np.concatenate((moved, found))
        both.sort()
        return both

    def order(self) -> NDArray[np.intp]:
        """Each slot's place among the live track ids, in sorted order."""
        if self._order_stale:
            used = self.used
            by_id = sorted(range(used), key=self.tid.__getitem__)
            self._order[np.array(by_id, dtype=np.intp)] = np.arange(used, dtype=np.intp)
            self._order_stale = False
        return self._order

    def _refind(self, leaves: IntArray) -> IntArray:
        """Search the minima of `leaves` again over the live slots; returns `leaves`."""
        if not leaves.size:
            return leaves
        used = self.used
        if not used:
            self.min_a[leaves] = self.min_b[leaves] = _INF
            self.arg_a[leaves] = self.arg_b[leaves] = -1
            return leaves
        arrival = self.eta[leaves, :used] + self.t_s[:used]
        # both minima in one search: the arrivals' rows, then the alert points'
        low, arg = self._first(np.concatenate((arrival, arrival - self.off[:used])))
        n = leaves.size
        self.min_a[leaves], self.arg_a[leaves] = low[:n], arg[:n]
        self.min_b[leaves], self.arg_b[leaves] = low[n:], arg[n:]
        return leaves

    def _first(self, rows: FloatArray) -> tuple[FloatArray, IntArray]:
        """Each row's minimum and the slot giving it (the smaller id on a tie; -1 if none)."""
        arg = rows.argmin(axis=1)
        low = rows.min(axis=1)
        at_low = rows == low[:, None]
        # each row has its minimum once unless it ties (an empty row ties everywhere, and is
        # told apart below when there is only one slot)
        if rows.shape[1] == 1 or np.count_nonzero(at_low) > rows.shape[0]:
            empty = low == _INF
            tied = (at_low.sum(axis=1) > 1) & ~empty
            if tied.any():
                order = self.order()[: rows.shape[1]]
                ranks = np.where(at_low[tied], order, rows.shape[1])
                arg[tied] = ranks.argmin(axis=1)
            arg[empty] = -1
        return low, arg

    def put(self, leaf: int, slot: int, eta: float) -> None:
        """Add one track's contribution to one leaf (drawn at the slot's own `t_cov`)."""
        self.eta[leaf, slot] = eta
        self._refind(np.array([leaf], dtype=np.intp))

    def clear(self, leaf: int) -> list[str]:
        """Remove every contribution to one leaf; the sorted ids of the tracks that were there."""
        row = self.eta[leaf, : self.used]
        slots = np.flatnonzero(row != _INF).tolist()
        row[:] = _INF
        self.min_a[leaf] = self.min_b[leaf] = _INF
        self.arg_a[leaf] = self.arg_b[leaf] = -1
        self.set_due(leaf, NO_DUE)
        return sorted(self.tid[s] for s in slots)

    # --- reading -------------------------------------------------------------------------------

    def covered(self, leaf: int) -> bool:
        """Whether any track covers the leaf."""
        return bool(self.min_a[leaf] != _INF)

    def covering(self, leaf: int) -> list[str]:
        """The sorted ids of the tracks covering one leaf."""
        row = self.eta[leaf, : self.used]
        tid = self.tid
        if self.used <= _SCAN:
            return sorted([tid[s] for s, v in enumerate(row.tolist()) if v != _INF])
        return sorted([tid[s] for s in np.flatnonzero(row != _INF).tolist()])

    def eta_of(self, leaf: int, slot: int, now: int) -> float:
        """A slot's ETA at a leaf as of `now` (seconds; may be negative)."""
        return float(self.eta[leaf, slot]) - (now - int(self.t_us[slot])) / 1e6

    def next_escalation(self) -> tuple[int, int] | None:
        """The earliest severity crossing (due µs, leaf), the lowest leaf on a tie."""
        if self._next_known:
            return self._next
        self._next_known = True
        self._next = None
        if self.leaves:
            leaf = int(self.esc.argmin())
            due = int(self.esc[leaf])
            if due != NO_DUE:
                self._next = (due, leaf)
        return self._next

    # --- writing timers ------------------------------------------------------------------------

    def set_due(self, leaf: int, due: int) -> None:
        """Set one leaf's next crossing (`NO_DUE` for none)."""
        self.esc[leaf] = due
        if not self._next_known:
            return
        nxt = self._next
        if nxt is None:
            if due != NO_DUE:
                self._next = (due, leaf)
        elif due < nxt[0] or (due == nxt[0] and leaf < nxt[1]):
            self._next = (due, leaf)
        elif leaf == nxt[1] and due != nxt[0]:
            self._next_known = False  # the earliest moved later: another may be first now

    def set_dues(self, leaves: IntArray, due: DueArray) -> None:
        """Set the next crossings of several leaves."""
        self.esc[leaves] = due
        self._next_known = False

    def dues_moved(self) -> None:
        """Crossings were written into `esc` directly (by the compiled kernel)."""
        self._next_known = False
