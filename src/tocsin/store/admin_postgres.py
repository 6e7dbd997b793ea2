"""Keys, webhook subscriptions, deliveries and sirens in PostgreSQL: the cluster's admin state.

The twin of `tocsin.store.admin.AdminStore` (SQLite): the same records, behaviour and statements
(`tocsin.store.admin.SQLAdminStore`), in tables next to the shared log, so that every node
authenticates the same keys, and webhook cursors survive the leader that advanced them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tocsin.store.admin import SQLAdminStore
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
    # keys name the event sources they may use (besides their own name)
    "ALTER TABLE api_keys ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';",
)


def _pg(sql: str) -> str:
    """A statement of `SQLAdminStore` (`?` placeholders) in psycopg's `%s` style."""
    return sql.replace("?", "%s")


class PostgresAdminStore(SQLAdminStore):
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
            cur = conn.execute(_pg(sql), args)
            return cur.fetchall() if cur.description is not None else []

    def _count(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._pool.connection() as conn, errors(self.where):
            return conn.execute(_pg(sql), args).rowcount

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._pool.connection() as conn, errors(self.where), conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(_pg(sql), rows)

    def close(self) -> None:
        """Close the connections (unless they are borrowed from the log's pool)."""
        if self._own_pool:
            self._pool.close()
