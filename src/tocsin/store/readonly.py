"""A log's tables opened read-only, for checking them: `tocsin verify` reads the rows as stored.

A checker reads by plain SQL (`?` placeholders) on a connection that cannot write: a data
directory's SQLite file opened `mode=ro`, or a cluster's PostgreSQL store in a read-only session
(`--store URL`, its schema from the URL's `search_path` as for the nodes). It never goes through
`EventLog`, which creates and migrates schemas: what is checked is what is there.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tocsin.errors import OperationalError

__all__ = ["MissingTable", "ReadOnlyTables", "open_readonly"]


class MissingTable(Exception):
    """A table the log's version did not have yet (e.g. signed heads, on a very old log)."""


class ReadOnlyTables(ABC):
    """One read-only connection to a log's tables."""

    where: str

    @abstractmethod
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement (`?` placeholders); `MissingTable` if it names a table
        this log does not have."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def stored_public_key(self) -> bytes | None:
        """The public half of the signing key a cluster's store keeps for its nodes (None if
        it keeps none): a check of the store against itself, as a data directory's `.pub`
        file is."""
        from tocsin.audit import private_key_from_pem, public_key_raw

        try:
            rows = self.query("SELECT pem FROM log_keys WHERE id = 1")
        except MissingTable:
            return None
        return public_key_raw(private_key_from_pem(str(rows[0][0]).encode())) if rows else None

    def __enter__(self) -> ReadOnlyTables:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SQLite(ReadOnlyTables):
    def __init__(self, db: Path) -> None:
        self.where = str(db)
        if not db.is_file():
            raise OperationalError(f"{db}: no log here")
        try:
            self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            self._conn.execute("SELECT 1 FROM log LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise OperationalError(f"{db}: {exc}") from exc

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise MissingTable(str(exc)) from exc
            raise OperationalError(f"{self.where}: {exc}") from exc
        except sqlite3.Error as exc:
            raise OperationalError(f"{self.where}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()


class _Postgres(ReadOnlyTables):
    def __init__(self, url: str) -> None:
        import psycopg

        from tocsin.store.postgres import connect, describe

        self._psycopg = psycopg
        self.where = describe(url)
        self._conn = connect(url)
        try:
            self._conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            self._conn.execute("SELECT 1 FROM log LIMIT 1").fetchall()
        except psycopg.Error as exc:
            self._conn.close()
            raise OperationalError(f"{self.where}: {exc}") from exc

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        errors = self._psycopg.errors
        try:
            return self._conn.execute(sql.replace("?", "%s"), args).fetchall()
        except errors.UndefinedTable as exc:
            raise MissingTable(str(exc)) from exc
        except self._psycopg.Error as exc:
            raise OperationalError(f"{self.where}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()


def open_readonly(data_dir: Path | str | None = None, store: str | None = None) -> ReadOnlyTables:
    """The tables of a cluster's store (a `postgresql://` URL) or of a data directory's log."""
    from tocsin.store.postgres import is_postgres_url

    if store is not None:
        if not is_postgres_url(store):
            raise OperationalError(f"{store}: --store takes a postgresql:// URL")
        return _Postgres(store)
    if data_dir is None:
        raise OperationalError("give a data directory or a store")
    return _SQLite(Path(data_dir) / "tocsin.db")
