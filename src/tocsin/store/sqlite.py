"""The embedded log: one SQLite file, WAL mode, fsync on every commit.

Durability before acknowledgement is the point, so `synchronous=FULL`; a batch of events and
their transitions is one transaction. Triggers refuse UPDATE and DELETE on the log, so even a
bug in tocsin cannot rewrite history through this connection (the Merkle log catches the rest).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from tocsin.errors import IntegrityError, OperationalError
from tocsin.store.base import EventLog, LogEntry

__all__ = ["SQLiteLog"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'transition')),
    source TEXT,
    event_id TEXT,
    key_name TEXT,
    cause_seq INTEGER,
    body TEXT NOT NULL,
    recorded_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS log_event_key ON log (source, event_id)
    WHERE kind = 'event';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS log_no_update BEFORE UPDATE ON log
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS log_no_delete BEFORE DELETE ON log
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TABLE IF NOT EXISTS merkle_leaves (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS merkle_leaves_no_update BEFORE UPDATE ON merkle_leaves
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS merkle_leaves_no_delete BEFORE DELETE ON merkle_leaves
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
"""

_COLUMNS = "seq, kind, body, source, event_id, key_name, cause_seq, recorded_at"


class SQLiteLog(EventLog):
    """An `EventLog` in a SQLite file; safe to call from several threads (one lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise OperationalError(f"{self.path}: {exc}") from exc
        self._max = self._query_max()

    def _query_max(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()
        return int(row[0])

    def append(
        self, entries: Sequence[LogEntry], *, leaf_hashes: Sequence[bytes] | None = None
    ) -> None:
        """Append entries in one transaction, fsynced before returning.

        `leaf_hashes` (from `tocsin.store.merkle`), one per entry, go to `merkle_leaves` in the
        same transaction.
        """
        if not entries:
            return
        if leaf_hashes is not None and len(leaf_hashes) != len(entries):
            raise ValueError("one leaf hash per entry")
        with self._lock:
            # every seq, not only the first: a gap inside a batch would be committed silently
            for expected, e in enumerate(entries, self._max + 1):
                if e.seq != expected:
                    raise IntegrityError(f"seq {e.seq} does not continue the log at {expected}")
            rows = [
                (e.seq, e.kind, e.body, e.source, e.event_id, e.key_name, e.cause_seq,
                 e.recorded_at)
                for e in entries
            ]
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(f"INSERT INTO log ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows)
                if leaf_hashes is not None:
                    self._db.executemany(
                        "INSERT INTO merkle_leaves (seq, hash) VALUES (?, ?)",
                        zip((e.seq for e in entries), leaf_hashes, strict=False),
                    )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._rollback()
                raise IntegrityError(f"{self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                self._rollback()
                raise OperationalError(f"{self.path}: {exc}") from exc
            self._max = entries[-1].seq

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def max_seq(self) -> int:
        """The seq of the last entry."""
        return self._max

    def read(self, start: int = 1, end: int | None = None) -> Iterator[LogEntry]:
        """Entries in [start, end], streamed in pages."""
        stop = self._max if end is None else end
        page = 5000
        cursor = start
        while cursor <= stop:
            with self._lock:
                try:
                    rows = self._db.execute(
                        f"SELECT {_COLUMNS} FROM log WHERE seq >= ? AND seq <= ? "
                        "ORDER BY seq LIMIT ?",
                        (cursor, stop, page),
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise OperationalError(f"{self.path}: {exc}") from exc
            if not rows:
                return
            for r in rows:
                yield LogEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
            cursor = rows[-1][0] + 1

    def find_event(self, source: str, event_id: str) -> int | None:
        """The seq of (source, id), if logged."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM log WHERE kind = 'event' AND source = ? AND event_id = ?",
                (source, event_id),
            ).fetchone()
        return None if row is None else int(row[0])

    def get_meta(self, key: str) -> str | None:
        """A stored metadata value."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a metadata value."""
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
