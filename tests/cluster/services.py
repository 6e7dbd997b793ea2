"""The real PostgreSQL and NATS the cluster tests run against; skip loudly when unreachable.

`TOCSIN_TEST_POSTGRES` (default `postgresql://postgres@127.0.0.1:5432/test`) and
`TOCSIN_TEST_NATS` (default `nats://127.0.0.1:4222`) point elsewhere. Every test gets a schema
(or a database) and stream names of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

__all__ = [
    "NATS_URL", "POSTGRES_URL", "fresh_database", "fresh_schema", "nats_or_skip",
    "postgres_or_skip", "with_database", "with_schema",
]

POSTGRES_URL = os.environ.get("TOCSIN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("TOCSIN_TEST_NATS", "nats://127.0.0.1:4222")


def postgres_or_skip() -> str:
    """The test server's URL; skips (loudly, with the reason) when it cannot be reached."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.skip(f"SKIPPED LOUDLY: PostgreSQL at {POSTGRES_URL} is unreachable "
                    f"(.ci/run starts it): {exc}")
    return POSTGRES_URL


def nats_or_skip() -> str:
    """The test NATS URL; skips (loudly) when nothing listens there or JetStream is off."""
    parts = urlsplit(NATS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 3):
            pass
    except OSError as exc:
        pytest.skip(f"SKIPPED LOUDLY: NATS at {NATS_URL} is unreachable (.ci/run starts it): "
                    f"{exc}")

    async def probe() -> None:
        import nats

        nc = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        pytest.skip(f"SKIPPED LOUDLY: NATS at {NATS_URL} has no JetStream (run nats-server -js): "
                    f"{exc!r}")
    return NATS_URL


def _with_path(url: str, path: str | None = None, query: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path if path is None else path,
                       parts.query if query is None else query, ""))


def with_schema(url: str, schema: str) -> str:
    """`url` with its search path set to `schema`."""
    return _with_path(url, query="options=" + quote(f"-csearch_path={schema}"))


def with_database(url: str, database: str) -> str:
    """`url` naming another database."""
    return _with_path(url, path=f"/{database}")


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A URL whose search path is a new, empty schema, dropped afterwards."""
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield with_schema(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A URL of a new, empty database, dropped (with any sessions left) afterwards."""
    name = f"tocsin_test_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
