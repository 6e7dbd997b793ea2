"""The log as an RFC 9162 Merkle tree, kept in step with the event log, and its signed heads.

Every log entry, events and transitions alike, is one leaf, in seq order: leaf index = seq - 1.
A leaf's bytes (RFC 9162's `leaf_input`) are the RFC 8785 canonical JSON of

    {"seq": <seq>, "kind": "event" | "transition", "entry": <the stored body, parsed>}

plus `"key": <API key name>` on events submitted with a named key, and `"recorded_at": <the wall
time it was logged>` on entries that have one, from the seq kept in the log's metadata as
`leaf_times_from` (1 for a log begun by this version; for an older log, the first seq appended
after upgrading, so its earlier leaves and heads stay verifiable). `docs/transparency.md`
describes the format for outside verifiers.

Leaf hashes are stored in `merkle_leaves`, a table of the log's own SQLite file, written by
`SQLiteLog.append` in the same transaction as their entries: a leaf hash exists exactly when its
entry does. On start, `MerkleLog.load` rebuilds the tree from the stored hashes (O(n) hashing of
interior nodes only), computes and stores the hashes of any entries written without one (a log
made by `tocsin simulate`, or by an older version), and trusts the rest: checking stored hashes
against the entries is `tocsin verify`'s job. Appending is O(log n).

Signed tree heads (STHs) are kept in the table `sths`, every one ever signed, oldest first.
Logs that are not SQLite (the in-memory log of tests and simulations) keep all of this in memory.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tocsin.audit import (
    MerkleTree,
    TreeHead,
    canonical_json,
    format_timestamp,
    key_id,
    leaf_hash,
    private_key_from_pem,
    private_key_to_pem,
    public_key_raw,
    sign_tree_head,
)
from tocsin.errors import FieldError, IntegrityError, OperationalError, TocsinError, ValidationError
from tocsin.store.base import EventLog, LogEntry
from tocsin.store.sqlite import SQLiteLog

__all__ = [
    "KEY_FILE",
    "TIMES_FROM",
    "MerkleLog",
    "check_canonical",
    "entry_leaf_hash",
    "leaf_input",
    "leaf_object",
    "leaf_times_from",
    "load_signing_key",
]

KEY_FILE = "log-signing.key"
TIMES_FROM = "leaf_times_from"

STH_SCHEMA = """
CREATE TABLE IF NOT EXISTS sths (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    root_hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    key_id TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS sths_no_update BEFORE UPDATE ON sths
    BEGIN SELECT RAISE(ABORT, 'signed tree heads are append-only'); END;
CREATE TRIGGER IF NOT EXISTS sths_no_delete BEFORE DELETE ON sths
    BEGIN SELECT RAISE(ABORT, 'signed tree heads are append-only'); END;
"""

_CATCH_UP_BATCH = 10_000
_PAGE = 50_000

log = logging.getLogger("tocsin")


# --- leaves ------------------------------------------------------------------------------------


def leaf_object(entry: LogEntry, times_from: int | None = None) -> dict[str, Any]:
    """The JSON object a log entry's leaf is the canonical form of.

    `times_from`: the first seq whose leaf covers `recorded_at` (None: no leaf does).
    """
    obj: dict[str, Any] = {"seq": entry.seq, "kind": entry.kind, "entry": json.loads(entry.body)}
    if entry.kind == "event" and entry.key_name is not None:
        obj["key"] = entry.key_name
    if times_from is not None and entry.seq >= times_from and entry.recorded_at is not None:
        obj["recorded_at"] = entry.recorded_at
    return obj


def leaf_input(entry: LogEntry, times_from: int | None = None) -> bytes:
    """The leaf's bytes: RFC 8785 canonical JSON of `leaf_object(entry, times_from)`."""
    return canonical_json(leaf_object(entry, times_from))


def entry_leaf_hash(entry: LogEntry, times_from: int | None = None) -> bytes:
    """The RFC 9162 leaf hash of a log entry."""
    return leaf_hash(leaf_input(entry, times_from))


def leaf_times_from(log: EventLog) -> int:
    """The first seq whose leaf covers `recorded_at`, fixed in the log's metadata on first use.

    Changing the stored value afterwards changes the recomputed leaves of every event between
    the old and new value, so the stored hashes and signed heads catch it.
    """
    stored = log.get_meta(TIMES_FROM)
    if stored is None:
        value = log.max_seq() + 1
        log.set_meta(TIMES_FROM, str(value))
        return value
    try:
        return int(stored)
    except ValueError:
        raise IntegrityError(f"meta {TIMES_FROM}: {stored!r} is not a seq") from None


def check_canonical(raw: Any) -> None:
    """Refuse an event the log could not hash: it must be I-JSON (RFC 7493), as JCS requires."""
    try:
        canonical_json(raw)
    except (ValueError, TypeError) as exc:
        reason = f"not representable as I-JSON: {exc}"
        raise ValidationError(FieldError("(event)", reason)) from None


# --- signing key -------------------------------------------------------------------------------


def load_signing_key(path: Path | str, *, create: bool = False) -> Ed25519PrivateKey:
    """Read the log's Ed25519 key (PKCS#8 PEM); with `create`, make one (mode 0600) if missing."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise TocsinError(f"{path}: no log signing key here") from None
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_signing_key(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_key_to_pem(key))
            fh.flush()
            os.fsync(fh.fileno())
        return key
    except OSError as exc:
        raise TocsinError(f"{path}: {exc.strerror}") from None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: the log signing key is readable by others; chmod 600 it", path)
    try:
        return private_key_from_pem(data)
    except ValueError as exc:
        raise TocsinError(f"{path}: {exc}") from None


# --- the tree ----------------------------------------------------------------------------------


class MerkleLog:
    """The Merkle tree over an `EventLog`, the one way entries get appended while it is kept.

    Appends happen on one thread (the ledger's writer). Reads of heads, roots and proofs may
    come from others: a stored node never changes once its subtree is complete, and every
    answer is computed for a tree size already fixed when it was asked for.
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.times_from = leaf_times_from(log)
        self.tree = MerkleTree()
        self.latest: TreeHead | None = None
        self._lock = threading.Lock()
        self._heads: list[tuple[TreeHead, str]] = []  # non-SQLite logs only
        self._db: sqlite3.Connection | None = None
        if isinstance(log, SQLiteLog):
            try:
                self._db = sqlite3.connect(
                    log.path, isolation_level=None, check_same_thread=False, timeout=5.0
                )
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(STH_SCHEMA)
            except sqlite3.Error as exc:
                raise OperationalError(f"{log.path}: {exc}") from exc

    # --- building ------------------------------------------------------------------------------

    def load(self, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the tree from stored leaf hashes, hashing entries that have none; its size."""
        last = self.log.max_seq()
        tree = MerkleTree()
        for seq, digest in self._stored_hashes():
            if seq != tree.size + 1 or seq > last:
                break
            tree.append(digest)
        if self._db is not None and self._stored_count() > tree.size:
            raise IntegrityError(
                f"{self.log_path}: merkle_leaves does not match the log after seq {tree.size} "
                "(run `tocsin verify`)"
            )
        batch: list[tuple[int, bytes]] = []
        for entry in self.log.read(tree.size + 1):
            if entry.seq != tree.size + 1:
                raise IntegrityError(f"the log jumps from seq {tree.size} to {entry.seq}")
            digest = entry_leaf_hash(entry, self.times_from)
            tree.append(digest)
            batch.append((entry.seq, digest))
            if len(batch) >= _CATCH_UP_BATCH:
                self._store_hashes(batch)
                batch = []
                if progress is not None:
                    progress(tree.size)
        self._store_hashes(batch)
        self.tree = tree
        self.latest = self._latest_head()
        if self.latest is not None and self.latest.tree_size > tree.size:
            raise IntegrityError(
                f"the last signed tree head covers {self.latest.tree_size} entries but the log "
                f"has {tree.size} (run `tocsin verify`)"
            )
        return tree.size

    def append(self, entries: Sequence[LogEntry]) -> None:
        """Durably append entries (with their leaf hashes) to the log, then to the tree."""
        if not entries:
            return
        if entries[0].seq != self.tree.size + 1:
            raise IntegrityError(
                f"seq {entries[0].seq} does not continue the Merkle tree at {self.tree.size + 1}"
            )
        hashes = [entry_leaf_hash(e, self.times_from) for e in entries]
        if isinstance(self.log, SQLiteLog):
            self.log.append(entries, leaf_hashes=hashes)
        else:
            self.log.append(entries)
        self.tree.extend(hashes)

    @property
    def size(self) -> int:
        """Entries in the tree."""
        return self.tree.size

    @property
    def log_path(self) -> str:
        """Where the log lives, for messages."""
        return str(getattr(self.log, "path", "the log"))

    # --- signed heads --------------------------------------------------------------------------

    def sign(
        self, key: Ed25519PrivateKey, now: datetime, *, force: bool = False
    ) -> TreeHead | None:
        """Sign and store a head over the whole tree; None when the last head already covers it."""
        size = self.tree.size
        latest = self.latest
        if latest is not None and latest.tree_size == size and not force:
            return None
        stamp = format_timestamp(now)
        if latest is not None and stamp < latest.timestamp:
            stamp = latest.timestamp  # never let heads go back in time with the wall clock
        head = sign_tree_head(key, size, stamp, self.tree.root_at(size))
        kid = key_id(public_key_raw(key))
        if self._db is not None:
            with self._lock:
                try:
                    self._db.execute(
                        "INSERT INTO sths (tree_size, timestamp, root_hash, signature, key_id) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (head.tree_size, head.timestamp, head.root_hash, head.signature, kid),
                    )
                except sqlite3.Error as exc:
                    raise OperationalError(f"{self.log_path}: {exc}") from exc
        else:
            self._heads.append((head, kid))
        self.latest = head
        return head

    def heads(self, since: str | None = None, limit: int = 1000) -> list[TreeHead]:
        """Stored heads signed after `since` (an STH timestamp), oldest first."""
        if self._db is None:
            return [h for h, _ in self._heads if since is None or h.timestamp > since][:limit]
        sql = "SELECT tree_size, timestamp, root_hash, signature FROM sths"
        args: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE timestamp > ?"
            args = (since,)
        rows = self._query(sql + " ORDER BY id LIMIT ?", (*args, limit))
        return [TreeHead(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in rows]

    # --- reads ---------------------------------------------------------------------------------

    def entries(self, start: int, end: int) -> Iterator[LogEntry]:
        """Log entries of leaf indexes start..end (inclusive)."""
        return self.log.read(start + 1, end + 1)

    def close(self) -> None:
        """Close this object's own connection (the log is closed by its owner)."""
        if self._db is not None:
            with self._lock:
                self._db.close()

    # --- storage -------------------------------------------------------------------------------

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self._db is not None
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise OperationalError(f"{self.log_path}: {exc}") from exc

    def _stored_hashes(self) -> Iterator[tuple[int, bytes]]:
        if self._db is None:
            return
        after = 0
        while True:
            rows = self._query(
                "SELECT seq, hash FROM merkle_leaves WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, _PAGE),
            )
            for seq, digest in rows:
                yield int(seq), bytes(digest)
            if len(rows) < _PAGE:
                return
            after = int(rows[-1][0])

    def _stored_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM merkle_leaves")[0][0])

    def _store_hashes(self, rows: list[tuple[int, bytes]]) -> None:
        if self._db is None or not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO merkle_leaves (seq, hash) VALUES (?, ?)", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise OperationalError(f"{self.log_path}: {exc}") from exc

    def _latest_head(self) -> TreeHead | None:
        if self._db is None:
            return self._heads[-1][0] if self._heads else None
        rows = self._query(
            "SELECT tree_size, timestamp, root_hash, signature FROM sths ORDER BY id DESC LIMIT 1"
        )
        if not rows:
            return None
        return TreeHead(rows[0][0], rows[0][1], bytes(rows[0][2]), bytes(rows[0][3]))
