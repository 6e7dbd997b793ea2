"""The shared log of a cluster in PostgreSQL: the same `SQLLog` as SQLite, for several nodes.

One URL (`postgresql://user@host:5432/db`, optionally `?options=-csearch_path%3Dname` to put a
cluster in a schema of its own) holds everything the nodes of a cluster share: the log and its
Merkle leaves, signed tree heads, metadata, the log's signing key, the leader's epoch and stream
position, the events the leader refused, snapshot records, and (`tocsin.store.admin_postgres`)
API keys, subscriptions, deliveries and sirens. The schema is created, or migrated forward, by
whichever node opens it first; an advisory lock keeps nodes that start together from racing.

The statements are `tocsin.store.sql`'s; this module supplies the driver (a small pool of
autocommit connections), the DDL, `%s` placeholders, the row lock that orders fenced appends
(`FOR UPDATE`), and a `NOTIFY` on `channel` for every append, which followers `LISTEN` to.
As in SQLite, triggers refuse UPDATE, DELETE and TRUNCATE on `log`, `merkle_leaves` and `sths`.
How a cluster uses the fencing row is told in `tocsin.cluster`.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from tocsin.audit import private_key_to_pem
from tocsin.errors import IntegrityError, OperationalError
from tocsin.model import format_time
from tocsin.store.sql import SQLLog, Transaction

__all__ = [
    "KEEPALIVE",
    "LEADER_LOCK",
    "LOG_MIGRATIONS",
    "Pool",
    "PostgresLog",
    "connect",
    "current_schema",
    "describe",
    "errors",
    "is_postgres_url",
    "migrate",
]

# Advisory lock classes (the first of the two int4 keys); the second is the schema's.
_MIGRATE_LOCK = 0x746F6301
LEADER_LOCK = 0x746F6302
_PAGE = 5000

# libpq settings of every connection: a dead peer is noticed in seconds, not hours.
KEEPALIVE: dict[str, Any] = {
    "keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 3,
    "tcp_user_timeout": 5000, "connect_timeout": 5,
}
_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION tocsin_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the log is append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
""" + "".join(
    f"""
CREATE OR REPLACE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t}
    FOR EACH ROW EXECUTE FUNCTION tocsin_append_only();
CREATE OR REPLACE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t}
    FOR EACH STATEMENT EXECUTE FUNCTION tocsin_append_only();
"""
    for t in ("log", "merkle_leaves", "sths")
)

# One entry per schema version; a node applies the ones its database has not seen yet.
LOG_MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE log (
    seq BIGINT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'transition')),
    source TEXT,
    event_id TEXT,
    key_name TEXT,
    cause_seq BIGINT,
    body TEXT NOT NULL,
    recorded_at TEXT
);
CREATE UNIQUE INDEX log_event_key ON log (source, event_id) WHERE kind = 'event';
CREATE TABLE merkle_leaves (seq BIGINT PRIMARY KEY, hash BYTEA NOT NULL);
CREATE TABLE sths (
    id BIGSERIAL PRIMARY KEY,
    tree_size BIGINT NOT NULL,
    timestamp TEXT NOT NULL,
    root_hash BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    key_id TEXT NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE log_keys (id INT PRIMARY KEY CHECK (id = 1), pem TEXT NOT NULL,
                       created_at TEXT NOT NULL);
CREATE TABLE cluster (
    id INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL DEFAULT 0,
    leader TEXT,
    leader_since TIMESTAMPTZ,
    stream_seq BIGINT NOT NULL DEFAULT 0
);
INSERT INTO cluster (id) VALUES (1);
CREATE TABLE rejected (
    stream_seq BIGINT PRIMARY KEY,
    source TEXT,
    event_id TEXT,
    key_name TEXT,
    body TEXT NOT NULL,
    errors TEXT NOT NULL,
    node TEXT,
    received_at TEXT,
    rejected_at TEXT NOT NULL
);
CREATE INDEX rejected_key ON rejected (source, event_id);
"""
    + _APPEND_ONLY,
    """
CREATE TABLE snapshots (name TEXT PRIMARY KEY, seq BIGINT NOT NULL, digest TEXT NOT NULL);
""",
    """
CREATE TABLE IF NOT EXISTS cosignatures (
    tree_size BIGINT NOT NULL,
    root_hash BYTEA NOT NULL,
    witness TEXT NOT NULL,
    time BIGINT NOT NULL,
    signature BYTEA NOT NULL,
    PRIMARY KEY (tree_size, witness)
);
""",
)


def is_postgres_url(text: str | None) -> bool:
    """Whether a store URL names PostgreSQL."""
    return text is not None and text.startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    """A URL for messages: host, port and database, never the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql"
    host = info.get("host", "localhost")
    return f"postgresql://{host}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def connect(url: str, **extra: Any) -> psycopg.Connection[Any]:
    """An autocommit connection with keepalives (raises `OperationalError`)."""
    try:
        return psycopg.connect(url, autocommit=True, application_name="tocsin",
                               **{**KEEPALIVE, **extra})
    except psycopg.Error as exc:
        raise OperationalError(f"{describe(url)}: {exc}") from exc


@contextlib.contextmanager
def errors(where: str) -> Iterator[None]:
    """Driver errors as `StoreError`s with PEP 249 names."""
    try:
        yield
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(f"{where}: {exc}") from exc
    except psycopg.Error as exc:
        raise OperationalError(f"{where}: {exc}") from exc


class Pool:
    """A few autocommit connections shared by threads, one borrower per connection at a time.

    A connection that broke (the server restarted, the network failed) is dropped and the next
    borrower gets a fresh one, so the store heals once the database is back.
    """

    def __init__(self, url: str, size: int = 4) -> None:
        self.url = url
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a connection for the `with` block."""
        with self._slots:
            with self._lock:
                if self._closed:
                    raise OperationalError(f"{describe(self.url)}: the store is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = connect(self.url)
                # a client stalled inside a transaction (a paused leader mid-commit) must not
                # hold the cluster row, and with it the next leader's takeover, for long
                with errors(describe(self.url)):
                    conn.execute("SET idle_in_transaction_session_timeout = 5000")
            try:
                yield conn
            finally:
                idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
                with self._lock:
                    if conn.closed or conn.broken or not idle or self._closed:
                        conn.close()
                    else:
                        self._idle.append(conn)

    def close(self) -> None:
        """Close every idle connection; borrowed ones close when returned."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def current_schema(conn: psycopg.Connection[Any], where: str) -> str:
    """The schema tables are created in (the first of the search path that exists)."""
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise OperationalError(f"{where}: no schema of the search_path exists; create it first")
    return str(row[0])


def migrate(conn: psycopg.Connection[Any], component: str, steps: Sequence[str]) -> int:
    """Bring `component`'s tables to the latest version; returns it."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                     (_MIGRATE_LOCK, _schema_key(current_schema(conn, component))))
        exists = conn.execute(
            "SELECT to_regclass(format(%s, current_schema()))", ("%I.tocsin_schema",)
        ).fetchone()
        if exists is None or exists[0] is None:  # (no CREATE needed once it is there)
            conn.execute("CREATE TABLE tocsin_schema "
                         "(component TEXT PRIMARY KEY, version INT NOT NULL)")
        row = conn.execute("SELECT version FROM tocsin_schema WHERE component = %s",
                           (component,)).fetchone()
        have = 0 if row is None else int(row[0])
        if have > len(steps):
            raise OperationalError(
                f"the {component} tables are at version {have}, newer than this tocsin knows "
                f"({len(steps)}); upgrade tocsin")
        for sql in steps[have:]:
            conn.execute(sql)  # trusted DDL of several statements (no parameters)
        conn.execute("INSERT INTO tocsin_schema (component, version) VALUES (%s, %s) "
                     "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                     (component, len(steps)))
    return len(steps)


def _schema_key(schema: str) -> int:
    return zlib.crc32(schema.encode()) & 0x7FFFFFFF




class _Tx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(_pg(sql), args)
        return cur.fetchall() if cur.description is not None else []

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)


def _pg(sql: str) -> str:
    """A statement of `SQLLog` (`?` placeholders) in psycopg's `%s` style."""
    return sql.replace("?", "%s")


class PostgresLog(SQLLog):
    """An `EventLog` in PostgreSQL, safe to share between threads and between nodes."""

    lock_row = " FOR UPDATE"
    keeps_signing_key = True

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self.where = describe(url)
        self._pool = Pool(url, pool_size)
        with self._pool.connection() as conn, errors(self.where):
            self.schema = current_schema(conn, self.where)
            migrate(conn, "log", LOG_MIGRATIONS)
        self.lock_key = (LEADER_LOCK, _schema_key(self.schema))
        self.channel = f"tocsin_log_{_schema_key(self.schema)}"

    @property
    def pool(self) -> Pool:
        """The connections of this store (other parts of the same store borrow them too)."""
        return self._pool

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Tx]:
        with self._pool.connection() as conn, errors(self.where), conn.transaction():
            yield _Tx(conn)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn, errors(self.where):
            return _Tx(conn).run(sql, args)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (`%s` placeholders) on a pooled connection; its rows."""
        with self._pool.connection() as conn, errors(self.where):
            cur = conn.execute(sql, args)
            return cur.fetchall() if cur.description is not None else []

    def _appended(self, tx: Transaction, last_seq: int) -> None:
        tx.run("SELECT pg_notify(?, ?)", (self.channel, str(last_seq)))

    def stored_signing_key(self, *, create: bool) -> bytes | None:
        """The log's Ed25519 key (PKCS#8 PEM), kept in the store so every node signs alike.

        With `create`, the first node to ask makes it; the others read the same.
        """
        if create:
            pem = private_key_to_pem(Ed25519PrivateKey.generate()).decode("ascii")
            self._query("INSERT INTO log_keys (id, pem, created_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (id) DO NOTHING", (1, pem, format_time(datetime.now(UTC))))
        rows = self._query("SELECT pem FROM log_keys WHERE id = 1")
        return None if not rows else str(rows[0][0]).encode("ascii")

    def close(self) -> None:
        """Close the connections."""
        self._pool.close()
