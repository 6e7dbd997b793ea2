"""Keys, webhook subscriptions and their delivery log: the server's small mutable state.

Kept apart from the event log (its own SQLite file, `admin.db`), because this state changes
in place (revocations, delivery cursors) while the log only grows. API keys are random 256-bit
tokens, so a single SHA-256 is enough to store them (no password stretching needed); only the
hash is kept.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tocsin.errors import FieldError, OperationalError, ValidationError
from tocsin.model import format_time

__all__ = [
    "ROLES", "AdminBackend", "AdminStore", "ApiKey", "Delivery", "SQLAdminStore", "SirenRecord",
    "SubscriptionRecord", "hash_key",
]

ROLES = ("reader", "sensor", "fusion", "operator", "admin")
SOURCE_MAX = 200  # as an event's `source`
SOURCES_MAX = 64  # sources one key may use
KEY_PREFIX = "tk_"

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, revoked_at TEXT, sources TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, spec TEXT NOT NULL,
    created_at TEXT NOT NULL, cursor INTEGER NOT NULL, active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, subscription TEXT NOT NULL, seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL, at TEXT NOT NULL, status INTEGER, error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_sub ON deliveries (subscription, id);
CREATE TABLE IF NOT EXISTS sirens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL,
    region TEXT NOT NULL, updated_at TEXT NOT NULL
);
"""


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored (never the key itself)."""

    id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None
    sources: tuple[str, ...] = ()  # event sources it may use besides its name

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the admin API."""
        return {"id": self.id, "name": self.name, "role": self.role,
                "sources": list(self.sources), "created_at": self.created_at,
                "revoked_at": self.revoked_at}

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ApiKey:
        """A record from `SELECT id, name, role, created_at, revoked_at, sources`."""
        kid, name, role, created_at, revoked_at, sources = row
        return cls(kid, name, role, created_at, revoked_at, tuple(json.loads(sources or "[]")))


def check_sources(sources: Sequence[str]) -> tuple[str, ...]:
    """The sources a key is made with, checked as an event's `source` is."""
    out: list[str] = []
    for i, src in enumerate(sources):
        if not isinstance(src, str) or not src.strip() or len(src) > SOURCE_MAX:
            raise ValidationError(FieldError(
                f"sources[{i}]", f"must be a non-empty string of at most {SOURCE_MAX} characters"))
        out.append(src)
    if len(set(out)) > SOURCES_MAX:
        raise ValidationError(FieldError("sources", f"more than {SOURCES_MAX} sources"))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """A webhook subscription: where to deliver, what matches, how far it got."""

    id: str
    url: str
    secret: str
    spec: dict[str, Any]
    created_at: str
    cursor: int
    active: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the admin API (the secret is shown only at creation)."""
        return {"id": self.id, "url": self.url, **self.spec, "created_at": self.created_at,
                "delivered_through_seq": self.cursor, "active": self.active}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery attempt."""

    subscription: str
    seq: int
    attempt: int
    at: str
    status: int | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the admin API."""
        return {"subscription": self.subscription, "seq": self.seq, "attempt": self.attempt,
                "at": self.at, "status": self.status, "error": self.error}


@dataclass(frozen=True, slots=True)
class SirenRecord:
    """A siren in the registry: where it stands and the leaf region it warns."""

    id: str
    name: str
    lat: float
    lon: float
    region: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {"id": self.id, "name": self.name, "lat": self.lat, "lon": self.lon,
                "region": self.region}


def _now() -> str:
    return format_time(datetime.now(UTC))


class AdminBackend(ABC):
    """What every admin store does: SQLite here (`AdminStore`), PostgreSQL for a cluster
    (`tocsin.store.admin_postgres.PostgresAdminStore`), both through `SQLAdminStore`."""

    @abstractmethod
    def create_key(
        self, role: str, name: str | None = None, sources: Sequence[str] = ()
    ) -> tuple[str, ApiKey]:
        """Make a new key; returns the key (shown once) and its record."""

    @abstractmethod
    def authenticate(self, key: str) -> ApiKey | None:
        """The live key record for a presented key, or None."""

    @abstractmethod
    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too."""

    @abstractmethod
    def revoke_key(self, key_id: str) -> bool:
        """Revoke by id (or name); False if no live key matched."""

    @abstractmethod
    def create_subscription(
        self, url: str, spec: dict[str, Any], cursor: int
    ) -> SubscriptionRecord:
        """Store a subscription starting after `cursor` (the current log end)."""

    @abstractmethod
    def subscriptions(self, *, active_only: bool = False) -> list[SubscriptionRecord]:
        """Every subscription."""

    @abstractmethod
    def get_subscription(self, sub_id: str) -> SubscriptionRecord | None:
        """One subscription by id."""

    @abstractmethod
    def deactivate_subscription(self, sub_id: str) -> bool:
        """Stop delivering to a subscription."""

    @abstractmethod
    def advance_cursor(self, sub_id: str, seq: int) -> None:
        """Record that everything up to `seq` was delivered (or did not match)."""

    @abstractmethod
    def record_delivery(self, d: Delivery) -> None:
        """Append to the delivery log."""

    @abstractmethod
    def deliveries(self, sub_id: str, limit: int = 100) -> list[Delivery]:
        """The latest delivery attempts of a subscription, newest first."""

    @abstractmethod
    def put_sirens(self, sirens: Sequence[SirenRecord]) -> None:
        """Add or replace sirens (by id), all in one transaction."""

    @abstractmethod
    def sirens(self) -> list[SirenRecord]:
        """Every registered siren, by id."""

    @abstractmethod
    def delete_siren(self, siren_id: str) -> bool:
        """Remove a siren from the registry; False if there was none."""

    @abstractmethod
    def close(self) -> None:
        """Release the store."""


class SQLAdminStore(AdminBackend):
    """`AdminBackend` over SQL, written once for every database: the statements use `?`
    placeholders, and a subclass supplies how they run (`_run`, `_count`, `_run_many`)."""

    @abstractmethod
    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute one statement; its rows (none for a statement that returns none)."""

    @abstractmethod
    def _count(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute one statement; how many rows it changed."""

    @abstractmethod
    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one statement for each of `rows`, all in one transaction."""

    # --- keys ----------------------------------------------------------------------------------

    def create_key(
        self, role: str, name: str | None = None, sources: Sequence[str] = ()
    ) -> tuple[str, ApiKey]:
        """Make a new key; returns the key (shown once) and its record.

        Its events may name as `source` its name or one of `sources` (any, for an admin).
        """
        if role not in ROLES:
            raise ValidationError(FieldError("role", f"must be one of {', '.join(ROLES)}"))
        listed = check_sources(sources)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)
        rec = ApiKey(digest[:12], name or f"{role}-{digest[:6]}", role, _now(), None, listed)
        self._run("INSERT INTO api_keys (id, name, role, hash, created_at, revoked_at, sources) "
                  "VALUES (?,?,?,?,?,?,?)",
                  (rec.id, rec.name, rec.role, digest, rec.created_at, None,
                   json.dumps(list(listed))))
        return key, rec

    def authenticate(self, key: str) -> ApiKey | None:
        """The live key record for a presented key, or None."""
        rows = self._run("SELECT id, name, role, created_at, revoked_at, sources FROM api_keys "
                         "WHERE hash = ? AND revoked_at IS NULL", (hash_key(key),))
        return ApiKey.from_row(rows[0]) if rows else None

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too."""
        rows = self._run("SELECT id, name, role, created_at, revoked_at, sources FROM api_keys "
                         "ORDER BY created_at, id")
        return [ApiKey.from_row(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke by id (or name); False if no live key matched."""
        return self._count("UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) "
                           "AND revoked_at IS NULL", (_now(), key_id, key_id)) > 0

    # --- subscriptions -------------------------------------------------------------------------
    # `active` is INTEGER in SQLite and BOOLEAN in PostgreSQL; bound as a bool it suits both.

    def create_subscription(
        self, url: str, spec: dict[str, Any], cursor: int
    ) -> SubscriptionRecord:
        """Store a subscription starting after `cursor` (the current log end)."""
        rec = SubscriptionRecord(secrets.token_hex(8), url, secrets.token_urlsafe(32), spec,
                                 _now(), cursor, True)
        self._run("INSERT INTO subscriptions VALUES (?,?,?,?,?,?,?)",
                  (rec.id, rec.url, rec.secret, json.dumps(spec), rec.created_at, cursor, True))
        return rec

    def subscriptions(self, *, active_only: bool = False) -> list[SubscriptionRecord]:
        """Every subscription."""
        sql = "SELECT id, url, secret, spec, created_at, cursor, active FROM subscriptions"
        args: tuple[Any, ...] = ()
        if active_only:
            sql, args = sql + " WHERE active = ?", (True,)
        rows = self._run(sql + " ORDER BY created_at, id", args)
        return [SubscriptionRecord(r[0], r[1], r[2], json.loads(r[3]), r[4], int(r[5]),
                                   bool(r[6])) for r in rows]

    def get_subscription(self, sub_id: str) -> SubscriptionRecord | None:
        """One subscription by id."""
        return next((s for s in self.subscriptions() if s.id == sub_id), None)

    def deactivate_subscription(self, sub_id: str) -> bool:
        """Stop delivering to a subscription."""
        return self._count("UPDATE subscriptions SET active = ? WHERE id = ? AND active = ?",
                           (False, sub_id, True)) > 0

    def advance_cursor(self, sub_id: str, seq: int) -> None:
        """Record that everything up to `seq` was delivered (or did not match)."""
        self._run("UPDATE subscriptions SET cursor = ? WHERE id = ? AND cursor < ?",
                  (seq, sub_id, seq))

    def record_delivery(self, d: Delivery) -> None:
        """Append to the delivery log."""
        self._run("INSERT INTO deliveries (subscription, seq, attempt, at, status, error) "
                  "VALUES (?,?,?,?,?,?)",
                  (d.subscription, d.seq, d.attempt, d.at, d.status, d.error))

    def deliveries(self, sub_id: str, limit: int = 100) -> list[Delivery]:
        """The latest delivery attempts of a subscription, newest first."""
        rows = self._run("SELECT subscription, seq, attempt, at, status, error FROM deliveries "
                         "WHERE subscription = ? ORDER BY id DESC LIMIT ?", (sub_id, limit))
        return [Delivery(r[0], int(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    # --- sirens --------------------------------------------------------------------------------

    def put_sirens(self, sirens: Sequence[SirenRecord]) -> None:
        """Add or replace sirens (by id), all in one transaction."""
        at = _now()
        self._run_many(
            "INSERT INTO sirens VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE "
            "SET name = excluded.name, lat = excluded.lat, lon = excluded.lon, "
            "region = excluded.region, updated_at = excluded.updated_at",
            [(s.id, s.name, s.lat, s.lon, s.region, at) for s in sirens])

    def sirens(self) -> list[SirenRecord]:
        """Every registered siren, by id."""
        rows = self._run("SELECT id, name, lat, lon, region FROM sirens ORDER BY id")
        return [SirenRecord(*r) for r in rows]

    def delete_siren(self, siren_id: str) -> bool:
        """Remove a siren from the registry; False if there was none."""
        return self._count("DELETE FROM sirens WHERE id = ?", (siren_id,)) > 0


class AdminStore(SQLAdminStore):
    """Keys, subscriptions and deliveries in `admin.db` next to the log."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(api_keys)")}
            if "sources" not in columns:  # an admin.db made before keys had sources
                self._db.execute("ALTER TABLE api_keys "
                                 "ADD COLUMN sources TEXT NOT NULL DEFAULT '[]'")
        except sqlite3.Error as exc:
            raise OperationalError(f"{self.path}: {exc}") from exc

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise OperationalError(f"{self.path}: {exc}") from exc

    def _count(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._lock:
            try:
                return self._db.execute(sql, args).rowcount
            except sqlite3.Error as exc:
                raise OperationalError(f"{self.path}: {exc}") from exc

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise OperationalError(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
