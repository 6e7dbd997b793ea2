"""Imported alert history in PostgreSQL: one record for every node of a cluster.

The twin of `tocsin.store.history.HistoryStore` (SQLite): the same statements
(`tocsin.store.history.SQLHistoryStore`), in tables next to the shared log, so an import on any
node (or with `tocsin history import --store`) is served by all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tocsin.geo import RegionSet
from tocsin.store.history import SQLHistoryStore
from tocsin.store.postgres import Pool, current_schema, describe, errors, migrate

__all__ = ["HISTORY_MIGRATIONS", "PostgresHistoryStore"]

HISTORY_MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE history_alerts (
    id TEXT PRIMARY KEY, region TEXT NOT NULL, level TEXT NOT NULL, alert_type TEXT NOT NULL,
    started_s BIGINT NOT NULL, ended_s BIGINT NOT NULL, source TEXT NOT NULL
);
CREATE INDEX history_alerts_start ON history_alerts (started_s);
CREATE INDEX history_alerts_region ON history_alerts (region, started_s);
CREATE TABLE history_imports (
    id BIGSERIAL PRIMARY KEY, file TEXT NOT NULL, sha256 TEXT NOT NULL, rows INTEGER NOT NULL,
    added INTEGER NOT NULL, unmapped INTEGER NOT NULL, imported_at TEXT NOT NULL
);
""",
)


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresHistoryStore(SQLHistoryStore):
    """`history_alerts` in the tables of a PostgreSQL store."""

    def __init__(self, url: str, regions: RegionSet | None = None) -> None:
        self.url = url
        self.where = describe(url)
        self.regions = regions
        self._pool = Pool(url, 2)
        with self._pool.connection() as conn, errors(self.where):
            current_schema(conn, self.where)
            migrate(conn, "history", HISTORY_MIGRATIONS)

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn, errors(self.where):
            cur = conn.execute(_pg(sql), args)
            return cur.fetchall() if cur.description is not None else []

    def _insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self._pool.connection() as conn, errors(self.where), conn.transaction():
            # one import at a time, so the count before and after is this one's
            conn.execute("LOCK TABLE history_alerts IN SHARE ROW EXCLUSIVE MODE")
            count = "SELECT COUNT(*) FROM history_alerts"
            before = conn.execute(count).fetchone()
            with conn.cursor() as cur:
                cur.executemany(_pg(sql), rows)
            after = conn.execute(count).fetchone()
            return int(after[0] if after else 0) - int(before[0] if before else 0)

    def close(self) -> None:
        """Close the connections."""
        self._pool.close()
