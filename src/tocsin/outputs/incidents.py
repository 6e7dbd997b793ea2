"""The latest incidents tocsin reports about itself: silent impacts and siren faults.

Rebuilt from the log on start and fed live like every other output, so the dashboard's incident
list (`GET /api/v1/incidents`) needs no scan of the log when it is first asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["INCIDENT_TYPES", "IncidentLog"]

INCIDENT_TYPES = ("silent_impact", "siren_fault")


class IncidentLog:
    """The newest `keep` incidents, by seq."""

    SNAPSHOT_FIELDS = ("_items", "last_seq")  # its state, for `tocsin.snapshots`

    def __init__(self, keep: int = 500) -> None:
        self.keep = keep
        self._items: dict[int, dict[str, Any]] = {}
        self.last_seq = 0  # of the last transition folded in

    def apply_many(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        """Keep the incidents among published (or logged) envelopes; seq de-duplicates."""
        for env in envelopes:
            seq = int(env["seq"])
            if seq <= self.last_seq:
                continue
            self.last_seq = seq
            if env.get("type") not in INCIDENT_TYPES:
                continue
            self._items[seq] = dict(env)
            if len(self._items) > self.keep * 2:  # pruned in steps: bounded, rarely sorted
                for old in sorted(self._items)[: -self.keep]:
                    del self._items[old]

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """Newest first, at most `limit`."""
        return [self._items[s] for s in sorted(self._items, reverse=True)[:limit]]
