"""Imported alert history: alerts observed elsewhere, kept next to the log but outside it.

The official record of past air-raid alerts (see `tocsin.history_import`) is history this node
did not decide. It lives in the table `history_alerts` next to the log (the log's SQLite file,
or a cluster's PostgreSQL store, where every node serves the same), not in the log:

- the engine is a function of the ordered log and its clock; events from 2022 would either be
  stamped at today's clock (the late-event rule) or raise alerts now, and replaying the log
  would then depend on what was imported when;
- the Merkle log is this node's signed account of what it was told and what it decided; an
  import is a copy of someone else's record, verifiable against its published source (each
  import keeps the file's SHA-256 in `history_imports`), not something this node witnessed.

One row per alert: `id` is `<region>@<start, Unix seconds>`, so importing a file twice, or the
English and the Ukrainian edition of the same record, adds each alert once. Times are whole
seconds (the record has no finer ones).
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tocsin.errors import OperationalError
from tocsin.geo import RegionSet
from tocsin.model import format_time

__all__ = ["OFFICIAL_SOURCE", "HistoryAlert", "HistoryStore", "SQLHistoryStore"]

OFFICIAL_SOURCE = "official-history"

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_alerts (
    id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    level TEXT NOT NULL,
    alert_type TEXT NOT NULL,
    started_s INTEGER NOT NULL,
    ended_s INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_alerts_start ON history_alerts (started_s);
CREATE INDEX IF NOT EXISTS history_alerts_region ON history_alerts (region, started_s);
CREATE TABLE IF NOT EXISTS history_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    added INTEGER NOT NULL,
    unmapped INTEGER NOT NULL,
    imported_at TEXT NOT NULL
);
"""

_IN_LIMIT = 500  # region filters up to this size go to SQL; larger ones are applied in Python


def _iso(seconds: int) -> str:
    return format_time(datetime.fromtimestamp(seconds, UTC))


@dataclass(frozen=True, slots=True)
class HistoryAlert:
    """One past alert in one region, from `started_s` to `ended_s` (Unix seconds, UTC)."""

    region: str
    level: str
    started_s: int
    ended_s: int
    alert_type: str = "air_raid"
    source: str = OFFICIAL_SOURCE

    @property
    def id(self) -> str:
        """The de-duplication key: region and start."""
        return f"{self.region}@{self.started_s}"

    def to_record(self) -> dict[str, Any]:
        """The record `GET /api/v1/alerts` serves, shaped as the live history's records."""
        return {
            "region": self.region, "alert_type": self.alert_type,
            "started_at": _iso(self.started_s), "ended_at": _iso(self.ended_s),
            "severity": None, "causes": [], "start_seq": None, "end_seq": None,
            "source": self.source, "level": self.level, "id": self.id,
        }


class SQLHistoryStore(ABC):
    """`history_alerts` over SQL, written once (`?` placeholders); subclasses supply the driver.

    `regions` lets leaf filters match coarser rows.
    """

    regions: RegionSet | None

    @abstractmethod
    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows."""

    @abstractmethod
    def _insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run an INSERT for each row in one transaction; how many rows it added."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection(s)."""

    # --- writes --------------------------------------------------------------------------------

    def add(self, alerts: Iterable[HistoryAlert]) -> int:
        """Store alerts in one transaction; returns how many were new (the rest were known)."""
        rows = [(a.id, a.region, a.level, a.alert_type, a.started_s, a.ended_s, a.source)
                for a in alerts]
        return self._insert_new(
            "INSERT INTO history_alerts (id, region, level, alert_type, started_s, ended_s, "
            "source) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", rows)

    def record_import(self, file: str, sha256: str, rows: int, added: int, unmapped: int) -> None:
        """Remember one import: which file (by content hash), how many rows, how many new."""
        self._run("INSERT INTO history_imports (file, sha256, rows, added, unmapped, imported_at) "
                  "VALUES (?,?,?,?,?,?)",
                  (file, sha256, rows, added, unmapped, format_time(datetime.now(UTC))))

    # --- reads ---------------------------------------------------------------------------------

    def count(self) -> int:
        """Alerts stored."""
        return int(self._run("SELECT COUNT(*) FROM history_alerts")[0][0])

    def span(self) -> tuple[int, int] | None:
        """(earliest start, latest end) in Unix seconds, or None when empty."""
        row = self._run("SELECT MIN(started_s), MAX(ended_s) FROM history_alerts")[0]
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def imports(self) -> list[dict[str, Any]]:
        """Every import, oldest first."""
        rows = self._run("SELECT file, sha256, rows, added, unmapped, imported_at "
                         "FROM history_imports ORDER BY id")
        keys = ("file", "sha256", "rows", "added", "unmapped", "imported_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def alerts(
        self,
        since_s: float | None = None,
        until_s: float | None = None,
        regions: Iterable[str] | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> Iterator[HistoryAlert]:
        """Alerts overlapping [since_s, until_s] whose region is one of `regions` (None: any)."""
        where: list[str] = []
        args: list[Any] = []
        if since_s is not None:
            where.append("ended_s >= ?")
            args.append(since_s)
        if until_s is not None:
            where.append("started_s <= ?")
            args.append(until_s)
        wanted = None if regions is None else set(regions)
        if wanted is not None and len(wanted) <= _IN_LIMIT:
            if not wanted:
                return
            where.append(f"region IN ({','.join('?' * len(wanted))})")
            args.extend(sorted(wanted))
            wanted = None
        sql = "SELECT region, level, started_s, ended_s, alert_type, source FROM history_alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY started_s {'DESC' if newest_first else 'ASC'}, region"
        if limit is not None and wanted is None:
            sql += " LIMIT ?"
            args.append(limit)
        for row in self._run(sql, args):
            if wanted is None or row[0] in wanted:
                yield HistoryAlert(row[0], row[1], int(row[2]), int(row[3]), row[4], row[5])

    def regions_for(self, leaves: Iterable[str]) -> set[str]:
        """The ids a leaf filter matches here: each leaf and every region above it."""
        out: set[str] = set()
        for leaf in leaves:
            out.add(leaf)
            if self.regions is not None and leaf in self.regions:
                out.update(r.id for r in self.regions.chain(leaf))
        return out

    def under(self, region: str) -> set[str]:
        """The ids of a region and every region below it (e.g. an oblast's own history)."""
        out = {region}
        if self.regions is not None and region in self.regions:
            stack = [region]
            while stack:
                children = self.regions.children(stack.pop())
                out.update(children)
                stack.extend(children)
        return out

    def query(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        leaves: set[str] | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Alerts overlapping [since, until] as history records, newest first.

        `leaves` is the same leaf filter `AlertHistory.query` takes: an imported alert matches
        when it was raised for one of the leaves or for any region containing one (a past
        oblast-wide alert covers each of its hromadas).
        """
        regions = None if leaves is None else self.regions_for(leaves)
        out: list[dict[str, Any]] = []
        for alert in self.alerts(
            None if since is None else since.timestamp(),
            None if until is None else until.timestamp(),
            regions, newest_first=True, limit=limit,
        ):
            out.append(alert.to_record())
            if len(out) >= limit:
                break
        return out



class HistoryStore(SQLHistoryStore):
    """`history_alerts` in a log's SQLite file."""

    def __init__(self, path: Path | str, regions: RegionSet | None = None) -> None:
        self.path = Path(path)
        self.regions = regions
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OperationalError(f"{self.path}: {exc}") from exc

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise OperationalError(f"{self.path}: {exc}") from exc

    def _insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self._lock:
            try:
                before = self._db.total_changes
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
                return self._db.total_changes - before
            except sqlite3.Error as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise OperationalError(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
