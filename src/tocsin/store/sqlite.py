"""The embedded log: one SQLite file, WAL mode, fsync on every commit.

Durability before acknowledgement is the point, so `synchronous=FULL`; a batch of events and
their transitions is one transaction. Triggers refuse UPDATE and DELETE on the log, its leaf
hashes and its signed heads, so even a bug in tocsin cannot rewrite history through this
connection (the Merkle log catches the rest). The statements are `tocsin.store.sql`'s.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tocsin.errors import IntegrityError, OperationalError
from tocsin.store.sql import SQLLog

__all__ = ["SQLiteLog"]

_APPEND_ONLY = "".join(
    f"""
CREATE TRIGGER IF NOT EXISTS {t}_no_update BEFORE UPDATE ON {t}
    BEGIN SELECT RAISE(ABORT, '{what} append-only'); END;
CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t}
    BEGIN SELECT RAISE(ABORT, '{what} append-only'); END;"""
    for t, what in (("log", "the log is"), ("merkle_leaves", "the log is"),
                    ("sths", "signed tree heads are"))
)

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
CREATE TABLE IF NOT EXISTS merkle_leaves (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sths (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    root_hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    key_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL DEFAULT 0,
    leader TEXT,
    leader_since TEXT,
    stream_seq INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO cluster (id) VALUES (1);
CREATE TABLE IF NOT EXISTS rejected (
    stream_seq INTEGER PRIMARY KEY,
    source TEXT,
    event_id TEXT,
    key_name TEXT,
    body TEXT NOT NULL,
    errors TEXT NOT NULL,
    node TEXT,
    received_at TEXT,
    rejected_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_key ON rejected (source, event_id);
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY, seq INTEGER NOT NULL, digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cosignatures (
    tree_size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    witness TEXT NOT NULL,
    time INTEGER NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (tree_size, witness)
);
""" + _APPEND_ONLY


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, args).fetchall()

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)


class SQLiteLog(SQLLog):
    """An `EventLog` in a SQLite file; safe to call from several threads (one lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.where = str(self.path)
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

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Tx]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield _Tx(self._db)
                self._db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise IntegrityError(f"{self.path}: {exc}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise OperationalError(f"{self.path}: {exc}") from exc
                raise

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise OperationalError(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
