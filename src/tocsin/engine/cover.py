"""What covers one leaf region for `air_raid`, aggregated so re-deciding it does not walk tracks.

A track's contribution to a leaf is its *arrival*: the time (seconds since the epoch, as a float)
at which its ETA there reaches 0, `t_cov / 1e6 + eta_at_t_cov`. ETAs count down one second per
second, so the order of the covering tracks by arrival never changes between redraws, and the
region's decision depends on two of them only:

- the earliest arrival, which gives the region's ETA and whether it is `imminent` (an ETA at or
  below the region's time to shelter);
- the earliest *alert point* (arrival minus the `alert_s` of the track's profile), which gives
  whether it is at least `alert`.

Both are kept in binary heaps with lazy deletion, so adding, moving or removing one track's
contribution costs O(log n) in the tracks covering the leaf, and a change that moves neither
minimum cannot change the region's severity: the engine then does not re-decide it at all. The
heaps are rebuilt when stale entries outnumber live ones, which bounds their size by twice the
tracks covering the leaf.
"""

from __future__ import annotations

import heapq

__all__ = ["Cover"]

# Stale heap entries tolerated beyond twice the live ones before a rebuild.
_SLACK = 8


class Cover:
    """The covering, not cleared tracks of one leaf, by earliest arrival and alert point."""

    __slots__ = ("_alert", "_arrive", "escalate_at", "keys")

    def __init__(self) -> None:
        self.keys: dict[str, tuple[float, float]] = {}  # track -> (arrival, alert point)
        self._arrive: list[tuple[float, str]] = []
        self._alert: list[tuple[float, str]] = []
        self.escalate_at = 0  # the region's next severity crossing (µs), 0 for none

    def __len__(self) -> int:
        return len(self.keys)

    def first(self) -> tuple[str, str] | None:
        """The tracks with the earliest arrival and the earliest alert point (None if empty)."""
        keys = self.keys
        if not keys:
            return None
        arrive, alert = self._arrive, self._alert
        while True:
            key, tid = arrive[0]
            got = keys.get(tid)
            if got is not None and got[0] == key:
                break
            heapq.heappop(arrive)
        while True:
            key, tid2 = alert[0]
            got = keys.get(tid2)
            if got is not None and got[1] == key:
                break
            heapq.heappop(alert)
        return tid, tid2

    def put(self, tid: str, arrival: float, alert_point: float) -> bool:
        """Add or move a track's contribution; True when the region must be re-decided."""
        keys = self.keys
        if not keys:
            keys[tid] = (arrival, alert_point)
            self._arrive = [(arrival, tid)]
            self._alert = [(alert_point, tid)]
            return True
        a, b = self.first() or ("", "")
        material = (
            tid == a or tid == b
            or (arrival, tid) < self._arrive[0] or (alert_point, tid) < self._alert[0]
        )
        keys[tid] = (arrival, alert_point)
        heapq.heappush(self._arrive, (arrival, tid))
        heapq.heappush(self._alert, (alert_point, tid))
        self._compact()
        return material

    def drop(self, tid: str) -> bool:
        """Remove a track's contribution; True when the region must be re-decided."""
        if tid not in self.keys:
            return False
        a, b = self.first() or ("", "")
        del self.keys[tid]
        self._compact()
        return tid == a or tid == b

    def clear(self) -> list[str]:
        """Remove every contribution; the tracks that were here."""
        gone = list(self.keys)
        self.keys.clear()
        self._arrive.clear()
        self._alert.clear()
        return gone

    def _compact(self) -> None:
        live = len(self.keys)
        if len(self._arrive) > 2 * live + _SLACK:
            self._arrive = [(k[0], t) for t, k in self.keys.items()]
            heapq.heapify(self._arrive)
        if len(self._alert) > 2 * live + _SLACK:
            self._alert = [(k[1], t) for t, k in self.keys.items()]
            heapq.heapify(self._alert)
