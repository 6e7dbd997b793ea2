"""What covers one leaf region for `air_raid`, aggregated so re-deciding it does not walk tracks.

A track's contribution to a leaf is its *arrival*: the time (seconds since the epoch, as a float)
at which its ETA there reaches 0, `t_cov / 1e6 + eta_at_t_cov`. ETAs count down one second per
second, so the order of the covering tracks by arrival never changes between redraws, and the
region's decision depends on two of them only:

- the earliest arrival, which gives the region's ETA and whether it is `imminent` (an ETA at or
  below the region's time to shelter);
- the earliest *alert point* (arrival minus the `alert_s` of the track's profile), which gives
  whether it is at least `alert`.

Both are kept in binary heaps with lazy deletion, and the two minima are cached, so adding,
moving or removing one track's contribution costs O(log n) in the tracks covering the leaf, and
a change that moves neither minimum cannot change the region's severity: the engine then does
not re-decide it at all. The heaps are rebuilt when stale entries outnumber live ones, which
bounds their size by about twice the tracks covering the leaf. New entries wait in a list and
go into the heaps only when a minimum must be found again (pushed one by one, or re-heapified
when they outnumber a quarter of the heap), so a footprint over many leaves whose minima it
does not move pays an append per leaf, not a heap push.
"""

from __future__ import annotations

import heapq
from heapq import heappush

__all__ = ["Cover", "put_many"]

# Stale heap entries tolerated beyond twice the live ones before a rebuild.
_SLACK = 8
_NONE = (float("inf"), "")


class Cover:
    """The covering, not cleared tracks of one leaf, by earliest arrival and alert point."""

    __slots__ = ("_a", "_alert", "_arrive", "_b", "_fresh", "_pend_a", "_pend_b", "escalate_at",
                 "keys")

    def __init__(self) -> None:
        self.keys: dict[str, tuple[float, float]] = {}  # track -> (arrival, alert point)
        self._arrive: list[tuple[float, str]] = []
        self._alert: list[tuple[float, str]] = []
        # entries not yet in the heaps: a footprint adds one to each of up to every leaf, and
        # most leaves never need their heaps (their minimum stays cached), so they go in only
        # when a minimum must be found again
        self._pend_a: list[tuple[float, str]] = []
        self._pend_b: list[tuple[float, str]] = []
        # the cached minima (key, track) of both heaps, valid while `_fresh`
        self._a: tuple[float, str] = _NONE
        self._b: tuple[float, str] = _NONE
        self._fresh = True
        self.escalate_at = 0  # the region's next severity crossing (µs), 0 for none

    def __len__(self) -> int:
        return len(self.keys)

    def first(self) -> tuple[str, str] | None:
        """The tracks with the earliest arrival and the earliest alert point (None if empty)."""
        keys = self.keys
        if not keys:
            return None
        if not self._fresh:
            arrive, alert = self._arrive, self._alert
            if self._pend_a:
                _flush(arrive, self._pend_a)
                _flush(alert, self._pend_b)
            while True:
                key, tid = arrive[0]
                got = keys.get(tid)
                if got is not None and got[0] == key:
                    break
                heapq.heappop(arrive)
            while True:
                key2, tid2 = alert[0]
                got = keys.get(tid2)
                if got is not None and got[1] == key2:
                    break
                heapq.heappop(alert)
            self._a, self._b, self._fresh = (key, tid), (key2, tid2), True
        return self._a[1], self._b[1]

    def put(self, tid: str, arrival: float, alert_point: float) -> bool:
        """Add or move a track's contribution; True when the region must be re-decided."""
        keys = self.keys
        keys[tid] = (arrival, alert_point)
        self._pend_a.append((arrival, tid))
        self._pend_b.append((alert_point, tid))
        if len(self._arrive) + len(self._pend_a) > 2 * len(keys) + _SLACK:
            self._compact()
        if not self._fresh:
            return True
        a, b = (arrival, tid), (alert_point, tid)
        if a[1] == self._a[1] or b[1] == self._b[1]:
            # the track deciding the region moved: find what decides it now when asked
            self._fresh = False
            return True
        material = False
        if a < self._a:
            self._a, material = a, True
        if b < self._b:
            self._b, material = b, True
        return material

    def drop(self, tid: str) -> bool:
        """Remove a track's contribution; True when the region must be re-decided."""
        if self.keys.pop(tid, None) is None:
            return False
        if self._fresh and tid != self._a[1] and tid != self._b[1]:
            return False
        self._fresh = False
        if not self.keys:
            self.clear()
        return True

    def clear(self) -> list[str]:
        """Remove every contribution; the tracks that were here."""
        gone = list(self.keys)
        self.keys.clear()
        self._arrive.clear()
        self._alert.clear()
        self._pend_a.clear()
        self._pend_b.clear()
        self._a = self._b = _NONE
        self._fresh = True
        return gone

    def _compact(self) -> None:
        self._arrive = [(k[0], t) for t, k in self.keys.items()]
        heapq.heapify(self._arrive)
        self._alert = [(k[1], t) for t, k in self.keys.items()]
        heapq.heapify(self._alert)
        self._pend_a.clear()
        self._pend_b.clear()
        self._fresh = False


def _flush(heap: list[tuple[float, str]], pending: list[tuple[float, str]]) -> None:
    """Move pending entries into a heap: pushed one by one, or re-heapified when they are many."""
    if 4 * len(pending) > len(heap):
        heap.extend(pending)
        heapq.heapify(heap)
    else:
        for entry in pending:
            heappush(heap, entry)
    pending.clear()


def put_many(
    covers: dict[str, Cover],
    tid: str,
    leaves: list[str],
    arrivals: list[float],
    alert_points: list[float],
) -> list[str]:
    """`Cover.put` of one track into many leaves (created as needed); the leaves to re-decide.

    The same steps as `put`, inlined: a footprint touches up to every leaf of the set, and the
    call per leaf was a third of the cost of drawing it.
    """
    decide: list[str] = []
    for leaf, arrival, alert_point in zip(leaves, arrivals, alert_points, strict=True):
        cover = covers.get(leaf)
        if cover is None:
            cover = covers[leaf] = Cover()
        keys = cover.keys
        keys[tid] = (arrival, alert_point)
        a, b = (arrival, tid), (alert_point, tid)
        pend = cover._pend_a
        pend.append(a)
        cover._pend_b.append(b)
        if len(cover._arrive) + len(pend) > 2 * len(keys) + _SLACK:
            cover._compact()
        if not cover._fresh:
            decide.append(leaf)
            continue
        a0, b0 = cover._a, cover._b
        if tid == a0[1] or tid == b0[1]:
            cover._fresh = False
            decide.append(leaf)
            continue
        material = False
        if a < a0:
            cover._a, material = a, True
        if b < b0:
            cover._b, material = b, True
        if material:
            decide.append(leaf)
    return decide
