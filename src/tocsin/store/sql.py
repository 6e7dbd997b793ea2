"""The log's SQL, written once: a backend supplies a connection, a transaction and placeholders.

`SQLLog` holds every statement of the log, its Merkle storage, the fencing row, refused events
and snapshot records, with `?` placeholders, as `tocsin.store.admin.SQLAdminStore` does for the
admin state. `tocsin.store.sqlite` and `tocsin.store.postgres` implement `_transaction` and
`_query` for their driver (and the schema, whose DDL differs); the behaviour is this module's.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from tocsin.audit import TreeHead
from tocsin.audit.witness import Cosignature
from tocsin.errors import Fenced
from tocsin.model import format_time
from tocsin.store.base import (
    MAX_COSIGNATURES,
    ClusterState,
    EventLog,
    LogEntry,
    Rejection,
    SnapshotRecord,
    check_continues,
    fenced_message,
)

__all__ = ["SQLLog", "Transaction"]

_COLUMNS = "seq, kind, body, source, event_id, key_name, cause_seq, recorded_at"
_HEAD = "tree_size, timestamp, root_hash, signature"
_REJECTED = ("stream_seq, source, event_id, key_name, body, errors, node, received_at, "
             "rejected_at")
_PAGE = 5000
_LEAF_PAGE = 50_000
_KEYS_PER_QUERY = 1000  # 2,000 parameters: well inside SQLite's and PostgreSQL's limits


class Transaction(Protocol):
    """One open transaction of a backend (statements in `?` style)."""

    def run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute one statement; its rows (none for statements without a result)."""
        ...

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one statement for each row."""
        ...


class SQLLog(EventLog):
    """`EventLog` over SQL; subclasses supply the driver."""

    # how a transaction locks the fencing row (PostgreSQL: "FOR UPDATE"; SQLite's
    # BEGIN IMMEDIATE already holds the whole database)
    lock_row = ""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction that commits when the block ends, and rolls back if it raises."""

    @abstractmethod
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on its own; its rows."""

    def _appended(self, tx: Transaction, last_seq: int) -> None:
        """Hook inside an append's transaction, after its entries (PostgreSQL: NOTIFY)."""

    # --- writes --------------------------------------------------------------------------------

    def _append(
        self,
        entries: Sequence[LogEntry],
        leaf_hashes: Sequence[bytes],
        position: int | None,
        epoch: int | None,
        rejections: Sequence[Rejection],
    ) -> None:
        with self._transaction() as tx:
            if epoch is not None:
                rows = tx.run("SELECT epoch, leader, leader_since, stream_seq FROM cluster "
                              "WHERE id = 1" + self.lock_row)
                if not rows or int(rows[0][0]) != epoch:
                    raise Fenced(fenced_message(epoch, _state(rows[0]) if rows else None))
            if entries:
                top = tx.run("SELECT COALESCE(MAX(seq), 0) FROM log")
                check_continues(int(top[0][0]), entries)
                tx.run_many(
                    f"INSERT INTO log ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                    [(e.seq, e.kind, e.body, e.source, e.event_id, e.key_name, e.cause_seq,
                      e.recorded_at) for e in entries])
                tx.run_many("INSERT INTO merkle_leaves (seq, hash) VALUES (?, ?)",
                            [(e.seq, h) for e, h in zip(entries, leaf_hashes, strict=True)])
            if rejections:
                tx.run_many(
                    f"INSERT INTO rejected ({_REJECTED}) VALUES (?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT DO NOTHING",
                    [(r.stream_seq, r.source, r.event_id, r.key_name, r.body,
                      json.dumps(r.errors), r.node, r.received_at, r.rejected_at)
                     for r in rejections])
            if position is not None:
                tx.run("UPDATE cluster SET stream_seq = ? WHERE id = 1 AND stream_seq < ?",
                       (position, position))
            if entries:
                self._appended(tx, entries[-1].seq)

    # --- reads ---------------------------------------------------------------------------------

    def max_seq(self) -> int:
        """The seq of the last entry."""
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM log")[0][0])

    def read(self, start: int = 1, end: int | None = None) -> Iterator[LogEntry]:
        """Entries in [start, end], streamed in pages (end: the log's end when called)."""
        stop = self.max_seq() if end is None else end
        cursor = max(start, 1)
        while cursor <= stop:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM log WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                (cursor, stop, _PAGE))
            if not rows:
                return
            for r in rows:
                yield LogEntry(int(r[0]), r[1], r[2], r[3], r[4], r[5],
                               None if r[6] is None else int(r[6]), r[7])
            cursor = int(rows[-1][0]) + 1

    def read_bodies(self, start: int = 1, end: int | None = None) -> Iterator[tuple[int, str, str]]:
        """`read` as (seq, kind, body), the rows as the driver gives them: a replay reads the
        whole log, and building a `LogEntry` of all eight columns was a quarter of its cost
        outside the engine."""
        stop = self.max_seq() if end is None else end
        cursor = max(start, 1)
        while cursor <= stop:
            rows = self._query(
                "SELECT seq, kind, body FROM log WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                (cursor, stop, _PAGE))
            if not rows:
                return
            yield from rows
            cursor = int(rows[-1][0]) + 1

    def find_events(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The seqs of those of `keys` that are logged: one query per batch (up to
        `_KEYS_PER_QUERY` keys), each key one search of the (source, event_id) index.

        The keys are a table of their own joined to the log: SQLite answers the equivalent
        `(source = ? AND event_id = ?) OR …` by scanning the whole index, a cost that grows
        with the log (0.5 s a batch at 38,000 events).
        """
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], int] = {}
        for i in range(0, len(wanted), _KEYS_PER_QUERY):
            chunk = wanted[i:i + _KEYS_PER_QUERY]
            values = ", ".join(["(?, ?)"] * len(chunk))
            rows = self._query(
                f"WITH wanted (source, event_id) AS (VALUES {values}) "
                "SELECT log.source, log.event_id, log.seq FROM wanted JOIN log "
                "ON log.source = wanted.source AND log.event_id = wanted.event_id "
                "WHERE log.kind = 'event'",
                [v for key in chunk for v in key])
            found.update({(r[0], r[1]): int(r[2]) for r in rows})
        return found

    def get_meta(self, key: str) -> str | None:
        """A stored metadata value."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a metadata value."""
        with self._transaction() as tx:
            tx.run("INSERT INTO meta (key, value) VALUES (?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    # --- Merkle storage ------------------------------------------------------------------------

    def leaf_hashes(self, start: int = 1, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Stored leaf hashes in [start, end], in pages."""
        cursor = max(start, 1)
        while True:
            rows = self._query(
                "SELECT seq, hash FROM merkle_leaves WHERE seq >= ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (cursor, end if end is not None else 2**62, _LEAF_PAGE))
            for seq, digest in rows:
                yield int(seq), bytes(digest)
            if len(rows) < _LEAF_PAGE:
                return
            cursor = int(rows[-1][0]) + 1

    def add_leaf_hashes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Store the hashes of entries written without one."""
        if rows:
            with self._transaction() as tx:
                tx.run_many("INSERT INTO merkle_leaves (seq, hash) VALUES (?, ?) "
                            "ON CONFLICT DO NOTHING", rows)

    def leaf_count(self) -> int:
        """How many leaf hashes are stored."""
        return int(self._query("SELECT COUNT(*) FROM merkle_leaves")[0][0])

    def add_head(self, head: TreeHead, key_id: str) -> None:
        """Keep a signed tree head."""
        with self._transaction() as tx:
            tx.run(f"INSERT INTO sths ({_HEAD}, key_id) VALUES (?, ?, ?, ?, ?)",
                   (head.tree_size, head.timestamp, head.root_hash, head.signature, key_id))

    def heads(self, since: str | None = None, limit: int = 1000) -> list[TreeHead]:
        """Stored heads signed after `since`, oldest first."""
        if since is None:
            rows = self._query(f"SELECT {_HEAD} FROM sths ORDER BY id LIMIT ?", (limit,))
        else:
            rows = self._query(f"SELECT {_HEAD} FROM sths WHERE timestamp > ? ORDER BY id "
                               "LIMIT ?", (since, limit))
        return [_head(r) for r in rows]

    def latest_head(self, max_size: int | None = None) -> TreeHead | None:
        """The newest stored head, within `max_size` entries when given."""
        if max_size is None:
            rows = self._query(f"SELECT {_HEAD} FROM sths ORDER BY id DESC LIMIT 1")
        else:
            rows = self._query(f"SELECT {_HEAD} FROM sths WHERE tree_size <= ? "
                               "ORDER BY id DESC LIMIT 1", (max_size,))
        return _head(rows[0]) if rows else None

    # --- fencing and refused events ------------------------------------------------------------

    def start_epoch(self, node: str, now: str) -> tuple[int, int]:
        """Start a new epoch led by `node`."""
        with self._transaction() as tx:
            tx.run("SELECT epoch FROM cluster WHERE id = 1" + self.lock_row)
            tx.run("UPDATE cluster SET epoch = epoch + 1, leader = ?, leader_since = ? "
                   "WHERE id = 1", (node, now))
            rows = tx.run("SELECT epoch, stream_seq FROM cluster WHERE id = 1")
        return int(rows[0][0]), int(rows[0][1])

    def cluster_state(self) -> ClusterState:
        """The fencing row."""
        return _state(self._query(
            "SELECT epoch, leader, leader_since, stream_seq FROM cluster WHERE id = 1")[0])

    def rejections(self, after: int = 0, limit: int = 100) -> list[Rejection]:
        """Refused events by stream position."""
        rows = self._query(f"SELECT {_REJECTED} FROM rejected WHERE stream_seq > ? "
                           "ORDER BY stream_seq LIMIT ?", (after, limit))
        return [_rejection(r) for r in rows]

    def rejection(self, source: str, event_id: str) -> Rejection | None:
        """The latest refusal of (source, id)."""
        rows = self._query(f"SELECT {_REJECTED} FROM rejected WHERE source = ? AND event_id = ? "
                           "ORDER BY stream_seq DESC LIMIT 1", (source, event_id))
        return _rejection(rows[0]) if rows else None

    def rejected_count(self) -> int:
        """How many events were refused."""
        return int(self._query("SELECT COUNT(*) FROM rejected")[0][0])

    # --- snapshots -----------------------------------------------------------------------------

    def record_snapshot(self, record: SnapshotRecord) -> None:
        """Note a snapshot written."""
        with self._transaction() as tx:
            tx.run("INSERT INTO snapshots (name, seq, digest) VALUES (?, ?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, "
                   "digest = excluded.digest", (record.name, record.seq, record.digest))

    def snapshots(self, limit: int = 10) -> list[SnapshotRecord]:
        """Recorded snapshots, newest first."""
        rows = self._query("SELECT seq, digest, name FROM snapshots ORDER BY seq DESC, name "
                           "LIMIT ?", (limit,))
        return [SnapshotRecord(int(r[0]), r[1], r[2]) for r in rows]

    # --- cosignatures --------------------------------------------------------------------------

    def add_cosignature(self, tree_size: int, root_hash: bytes, cosig: Cosignature) -> str:
        """Keep a checked cosignature: "added", "known" (already kept) or "full"."""
        with self._transaction() as tx:
            rows = tx.run(f"SELECT witness FROM cosignatures WHERE tree_size = ?{self.lock_row}",
                          (tree_size,))
            if any(r[0] == cosig.key_id for r in rows):
                return "known"
            if len(rows) >= MAX_COSIGNATURES:
                return "full"
            done = tx.run(
                "INSERT INTO cosignatures (tree_size, root_hash, witness, time, signature) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tree_size, witness) DO NOTHING "
                "RETURNING witness",
                (tree_size, root_hash, cosig.key_id, cosig.time, cosig.signature))
        return "added" if done else "known"

    def cosignatures(self, tree_size: int, root_hash: bytes) -> list[Cosignature]:
        """Cosignatures of the tree of `tree_size` leaves with this root, oldest first."""
        rows = self._query("SELECT witness, time, signature FROM cosignatures "
                           "WHERE tree_size = ? AND root_hash = ? ORDER BY time, witness",
                           (tree_size, root_hash))
        return [Cosignature(str(w), int(t), bytes(sig)) for w, t, sig in rows]


def _head(r: Sequence[Any]) -> TreeHead:
    return TreeHead(int(r[0]), r[1], bytes(r[2]), bytes(r[3]))


def _state(r: Sequence[Any]) -> ClusterState:
    since = r[2]
    if isinstance(since, datetime):
        since = format_time(since)
    return ClusterState(int(r[0]), r[1], since, int(r[3]))


def _rejection(r: Sequence[Any]) -> Rejection:
    return Rejection(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8])
