"""Read models built from transitions: the alert history the API and the map serve.

Kept in memory and rebuilt from the log on start; the log stays the only source of truth for
what this node decided. Alerts imported from an outside record (`tocsin history import`) are
served alongside from their own table: `AlertHistory(archive=...)` merges them in, newest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from tocsin.model import Transition, parse_time

__all__ = ["AlertArchive", "AlertHistory"]


class AlertArchive(Protocol):
    """Past alerts kept outside the log (e.g. `tocsin.store.history.HistoryStore`)."""

    def query(
        self, since: datetime | None, until: datetime | None, leaves: set[str] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Alerts overlapping [since, until] touching `leaves`, newest first, as records."""
        ...


class AlertHistory:
    """Every alert that started, with its end once it ended, in start order."""

    SNAPSHOT_FIELDS = ("records", "_open", "last_seq")  # its state, for `tocsin.snapshots`

    def __init__(self, archive: AlertArchive | None = None) -> None:
        self.archive = archive
        self.records: list[dict[str, Any]] = []
        self._open: dict[tuple[str, str], dict[str, Any]] = {}
        self.last_seq = 0

    def apply(self, transition: Transition) -> None:
        """Fold one transition in."""
        self.apply_dict(transition.to_dict())

    def apply_many(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        """Fold published envelopes in."""
        for env in envelopes:
            self.apply_dict(env)

    def apply_dict(self, t: Mapping[str, Any]) -> None:
        """Fold one transition given as its JSON object."""
        if t["seq"] <= self.last_seq:
            return
        self.last_seq = t["seq"]
        kind = t["type"]
        if kind not in ("alert_started", "alert_updated", "alert_ended"):
            return
        key = (t["region"], t["alert_type"])
        if kind == "alert_started":
            rec = {
                "region": t["region"], "alert_type": t["alert_type"],
                "started_at": t["time"], "ended_at": None, "severity": t["severity"],
                "causes": list(t["causes"]), "start_seq": t["seq"], "end_seq": None,
            }
            self.records.append(rec)
            self._open[key] = rec
            return
        opened = self._open.get(key)
        if opened is None:
            return
        rec = opened
        if kind == "alert_updated":
            rec["severity"] = t["severity"]
            rec["causes"] = sorted(set(rec["causes"]) | set(t["causes"]))
        else:
            rec["ended_at"] = t["time"]
            rec["end_seq"] = t["seq"]
            del self._open[key]

    def query(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        leaves: set[str] | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Alerts overlapping [since, until], newest first (imported ones have `source`)."""
        out: list[dict[str, Any]] = []
        for rec in reversed(self.records):
            if leaves is not None and rec["region"] not in leaves:
                continue
            if until is not None and parse_time(rec["started_at"]) > until:
                continue
            ended = rec["ended_at"]
            if since is not None and ended is not None and parse_time(ended) < since:
                continue
            out.append(dict(rec))
            if len(out) >= limit:
                break
        if self.archive is not None:
            older = self.archive.query(since, until, leaves, limit)
            if older:
                out = sorted(out + older, key=lambda r: parse_time(r["started_at"]),
                             reverse=True)[:limit]
        return out
