"""Keys, webhook subscriptions, deliveries and sirens in PostgreSQL: the cluster's admin state.

The twin of `tocsin.store.admin.AdminStore` (SQLite): the same records and behaviour, in tables
next to the shared log, so that every node authenticates the same keys, and webhook cursors
survive the leader that advanced them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from tocsin.errors import FieldError, ValidationError
from tocsin.store.admin import (
    KEY_PREFIX,
    ROLES,
    AdminBackend,
    ApiKey,
    Delivery,
    SirenRecord,
    SubscriptionRecord,
    _now,
    hash_key,
)
from tocsin.store.postgres import Pool, current_schema, describe, errors, migrate

__all__ = ["ADMIN_MIGRATIONS", "PostgresAdminStore"]

ADMIN_MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, revoked_at TEXT
);
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, spec TEXT NOT NULL,
    created_at TEXT NOT NULL, cursor BIGINT NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY, subscription TEXT NOT NULL, seq BIGINT NOT NULL,
    attempt INTEGER NOT NULL, at TEXT NOT NULL, status INTEGER, error TEXT
);
CREATE INDEX deliveries_sub ON deliveries (subscription, id);
CREATE TABLE sirens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL, region TEXT NOT NULL, updated_at TEXT NOT NULL
);
""",
)


class PostgresAdminStore(AdminBackend):
    """`AdminBackend` in the tables of a PostgreSQL store."""

    def __init__(self, url: str, *, pool: Pool | None = None) -> None:
        self.url = url
        self.where = describe(url)
        self._own_pool = pool is None
        self._pool = pool if pool is not None else Pool(url, 2)
        with self._pool.connection() as conn, errors(self.where):
            current_schema(conn, self.where)
            migrate(conn, "admin", ADMIN_MIGRATIONS)

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn, errors(self.where):
            cur = conn.execute(sql, args)
            return cur.fetchall() if cur.description is not None else []

    def _count(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._pool.connection() as conn, errors(self.where):
            return conn.execute(sql, args).rowcount

    # --- keys ----------------------------------------------------------------------------------

    def create_key(self, role: str, name: str | None = None) -> tuple[str, ApiKey]:
        """Make a new key; returns the key (shown once) and its record."""
        if role not in ROLES:
            raise ValidationError(FieldError("role", f"must be one of {', '.join(ROLES)}"))
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)
        rec = ApiKey(digest[:12], name or f"{role}-{digest[:6]}", role, _now(), None)
        self._run("INSERT INTO api_keys VALUES (%s,%s,%s,%s,%s,%s)",
                  (rec.id, rec.name, rec.role, digest, rec.created_at, None))
        return key, rec

    def authenticate(self, key: str) -> ApiKey | None:
        """The live key record for a presented key, or None."""
        rows = self._run("SELECT id, name, role, created_at, revoked_at FROM api_keys "
                         "WHERE hash = %s AND revoked_at IS NULL", (hash_key(key),))
        return ApiKey(*rows[0]) if rows else None

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too."""
        rows = self._run("SELECT id, name, role, created_at, revoked_at FROM api_keys "
                         "ORDER BY created_at, id")
        return [ApiKey(*r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke by id (or name); False if no live key matched."""
        return self._count("UPDATE api_keys SET revoked_at = %s WHERE (id = %s OR name = %s) "
                           "AND revoked_at IS NULL", (_now(), key_id, key_id)) > 0

    # --- subscriptions -------------------------------------------------------------------------

    def create_subscription(
        self, url: str, spec: dict[str, Any], cursor: int
    ) -> SubscriptionRecord:
        """Store a subscription starting after `cursor` (the current log end)."""
        rec = SubscriptionRecord(secrets.token_hex(8), url, secrets.token_urlsafe(32), spec,
                                 _now(), cursor, True)
        self._run("INSERT INTO subscriptions VALUES (%s,%s,%s,%s,%s,%s,TRUE)",
                  (rec.id, rec.url, rec.secret, json.dumps(spec), rec.created_at, cursor))
        return rec

    def subscriptions(self, *, active_only: bool = False) -> list[SubscriptionRecord]:
        """Every subscription."""
        sql = "SELECT id, url, secret, spec, created_at, cursor, active FROM subscriptions"
        if active_only:
            sql += " WHERE active"
        rows = self._run(sql + " ORDER BY created_at, id")
        return [SubscriptionRecord(r[0], r[1], r[2], json.loads(r[3]), r[4], int(r[5]),
                                   bool(r[6])) for r in rows]

    def get_subscription(self, sub_id: str) -> SubscriptionRecord | None:
        """One subscription by id."""
        return next((s for s in self.subscriptions() if s.id == sub_id), None)

    def deactivate_subscription(self, sub_id: str) -> bool:
        """Stop delivering to a subscription."""
        return self._count("UPDATE subscriptions SET active = FALSE WHERE id = %s AND active",
                           (sub_id,)) > 0

    def advance_cursor(self, sub_id: str, seq: int) -> None:
        """Record that everything up to `seq` was delivered (or did not match)."""
        self._run("UPDATE subscriptions SET cursor = %s WHERE id = %s AND cursor < %s",
                  (seq, sub_id, seq))

    def record_delivery(self, d: Delivery) -> None:
        """Append to the delivery log."""
        self._run("INSERT INTO deliveries (subscription, seq, attempt, at, status, error) "
                  "VALUES (%s,%s,%s,%s,%s,%s)",
                  (d.subscription, d.seq, d.attempt, d.at, d.status, d.error))

    def deliveries(self, sub_id: str, limit: int = 100) -> list[Delivery]:
        """The latest delivery attempts of a subscription, newest first."""
        rows = self._run("SELECT subscription, seq, attempt, at, status, error FROM deliveries "
                         "WHERE subscription = %s ORDER BY id DESC LIMIT %s", (sub_id, limit))
        return [Delivery(r[0], int(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    # --- sirens --------------------------------------------------------------------------------

    def put_sirens(self, sirens: Sequence[SirenRecord]) -> None:
        """Add or replace sirens (by id), all in one transaction."""
        at = _now()
        with self._pool.connection() as conn, errors(self.where), conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO sirens VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE "
                    "SET name = excluded.name, lat = excluded.lat, lon = excluded.lon, "
                    "region = excluded.region, updated_at = excluded.updated_at",
                    [(s.id, s.name, s.lat, s.lon, s.region, at) for s in sirens])

    def sirens(self) -> list[SirenRecord]:
        """Every registered siren, by id."""
        rows = self._run("SELECT id, name, lat, lon, region FROM sirens ORDER BY id")
        return [SirenRecord(*r) for r in rows]

    def close(self) -> None:
        """Close the connections (unless they are borrowed from the log's pool)."""
        if self._own_pool:
            self._pool.close()
