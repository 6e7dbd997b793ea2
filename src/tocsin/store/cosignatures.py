"""Witnesses' cosignatures of tree heads, kept beside the log (table `cosignatures`).

At most one cosignature per witness and tree size (the first one posted is kept: a witness
signs a tree once), and at most `MAX_PER_HEAD` per tree size, so what outsiders can make the
server store is bounded by the witnesses it trusts times the heads it signs.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Final

from tocsin.audit.witness import Cosignature
from tocsin.errors import OperationalError
from tocsin.store.base import EventLog

__all__ = ["MAX_PER_HEAD", "CosignatureStore", "open_cosignatures"]

MAX_PER_HEAD: Final = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosignatures (
    tree_size {int} NOT NULL,
    root_hash {blob} NOT NULL,
    witness TEXT NOT NULL,
    time {int} NOT NULL,
    signature {blob} NOT NULL,
    PRIMARY KEY (tree_size, witness)
)
"""


class CosignatureStore:
    """Cosignatures by tree size; SQL written once, the backend runs it."""

    def __init__(self, path: Path | None = None, pg: Any = None) -> None:
        self._lock = threading.Lock()
        self._memory: dict[int, list[tuple[bytes, Cosignature]]] = {}
        self._db: sqlite3.Connection | None = None
        self._pg = pg
        self._ph = "%s" if pg is not None else "?"
        if path is not None:
            try:
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                           timeout=5.0)
                self._db.execute(_SCHEMA.format(int="INTEGER", blob="BLOB"))
            except sqlite3.Error as exc:
                raise OperationalError(f"{path}: {exc}") from exc
        elif pg is not None:
            pg.query(_SCHEMA.format(int="BIGINT", blob="BYTEA"))

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = sql.replace("?", self._ph)
        if self._pg is not None:
            return list(self._pg.query(sql, args))
        assert self._db is not None
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise OperationalError(f"cosignatures: {exc}") from exc

    def add(self, tree_size: int, root_hash: bytes, cosig: Cosignature) -> str:
        """Keep a (checked) cosignature: "added", "known" (already kept) or "full"."""
        if self._db is None and self._pg is None:
            with self._lock:
                kept = self._memory.setdefault(tree_size, [])
                if any(c.key_id == cosig.key_id for _, c in kept):
                    return "known"
                if len(kept) >= MAX_PER_HEAD:
                    return "full"
                kept.append((root_hash, cosig))
                return "added"
        rows = self._run("SELECT witness FROM cosignatures WHERE tree_size = ?", (tree_size,))
        if any(r[0] == cosig.key_id for r in rows):
            return "known"
        if len(rows) >= MAX_PER_HEAD:
            return "full"
        done = self._run(
            "INSERT INTO cosignatures (tree_size, root_hash, witness, time, signature) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tree_size, witness) DO NOTHING "
            "RETURNING witness",
            (tree_size, root_hash, cosig.key_id, cosig.time, cosig.signature))
        return "added" if done else "known"

    def of(self, tree_size: int, root_hash: bytes) -> list[Cosignature]:
        """Cosignatures of the tree of `tree_size` leaves with this root, oldest first."""
        if self._db is None and self._pg is None:
            with self._lock:
                return [c for r, c in self._memory.get(tree_size, []) if r == root_hash]
        rows = self._run("SELECT witness, time, signature FROM cosignatures WHERE tree_size = ? "
                         "AND root_hash = ? ORDER BY time, witness", (tree_size, root_hash))
        return [Cosignature(str(w), int(t), bytes(s)) for w, t, s in rows]

    def close(self) -> None:
        """Close this store's own connection."""
        if self._db is not None:
            with self._lock:
                self._db.close()


def open_cosignatures(log: EventLog) -> CosignatureStore:
    """The cosignature table beside a log: in its SQLite file or PostgreSQL store, or memory."""
    from tocsin.store.sqlite import SQLiteLog

    if isinstance(log, SQLiteLog):
        return CosignatureStore(path=Path(log.path))
    if hasattr(log, "query"):  # the PostgreSQL store, whose statements run through `query`
        return CosignatureStore(pg=log)
    return CosignatureStore()
