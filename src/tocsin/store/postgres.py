"""The shared log of a cluster in PostgreSQL: the `EventLog` of SQLite, for several nodes.

One URL (`postgresql://user@host:5432/db`, optionally `?options=-csearch_path%3Dname` to put a
cluster in a schema of its own) holds everything the nodes of a cluster share: the log and its
Merkle leaves, signed tree heads, metadata, the log's signing key, the leader's epoch and stream
position, the events the leader refused, and (`tocsin.store.admin_postgres`) API keys,
subscriptions, deliveries and sirens. The schema is created, or migrated forward, by whichever
node opens it first; an advisory lock keeps nodes that start together from racing.

As in SQLite, triggers refuse UPDATE, DELETE and TRUNCATE on `log`, `merkle_leaves` and `sths`.

**Fencing.** `cluster` has one row: `epoch`, `leader`, `stream_seq`. A node that wins the leader
lock (`LeaderLease`, a session advisory lock) bumps the epoch (`take_leadership`). Every commit of
a leader (`commit(..., epoch=e)`) first locks that row (`SELECT … FOR UPDATE`) and refuses with
`Fenced` unless the epoch is still its own. The row lock orders a deposed leader's last commit
and the takeover: the commit either lands before the epoch moves, and the new leader starts after
it, or it fails. Log entries, their leaf hashes, the stream position they were consumed up to and
the events refused on the way are one transaction, so what was consumed and what was logged can
never disagree. Each commit that adds entries sends `NOTIFY` on `channel`, which followers
`LISTEN` to.
"""

from __future__ import annotations

import contextlib
import json
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from tocsin.audit import (
    TreeHead,
    key_id,
    private_key_from_pem,
    private_key_to_pem,
    public_key_raw,
)
from tocsin.errors import Fenced, IntegrityError, OperationalError, TocsinError
from tocsin.model import format_time
from tocsin.store.base import EventLog, LogEntry
from tocsin.store.merkle import MerkleLog, entry_leaf_hash

__all__ = [
    "KEEPALIVE",
    "LOG_MIGRATIONS",
    "LeaderLease",
    "Pool",
    "PostgresLog",
    "PostgresMerkleLog",
    "Rejection",
    "connect",
    "current_schema",
    "describe",
    "errors",
    "is_postgres_url",
    "load_store_signing_key",
    "migrate",
]

# Advisory lock classes (the first of the two int4 keys); the second is the schema's.
_MIGRATE_LOCK = 0x746F6301
_LEADER_LOCK = 0x746F6302
_PAGE = 5000

# libpq settings of every connection: a dead peer is noticed in seconds, not hours.
KEEPALIVE: dict[str, Any] = {
    "keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 3,
    "tcp_user_timeout": 5000, "connect_timeout": 5,
}
# ...and on the server side, for the leader lock's session: a leader whose host or network
# died loses the lock (and with it the lead) within about tcp_user_timeout.
_LEASE_SESSION = (
    "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; "
    "SET tcp_keepalives_count = 3; SET tcp_user_timeout = 5000"
)

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
)

_COLUMNS = "seq, kind, body, source, event_id, key_name, cause_seq, recorded_at"


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


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event the ingest accepted (202) and the leader then refused, kept for its sender."""

    stream_seq: int
    source: str | None
    event_id: str | None
    key_name: str | None
    body: str
    errors: list[dict[str, str]]
    node: str | None = None
    received_at: str | None = None
    rejected_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        try:
            event: Any = json.loads(self.body)
        except ValueError:
            event = self.body
        return {"stream_seq": self.stream_seq, "source": self.source, "id": self.event_id,
                "key": self.key_name, "errors": self.errors, "node": self.node,
                "received_at": self.received_at, "rejected_at": self.rejected_at,
                "event": event}


class PostgresLog(EventLog):
    """An `EventLog` in PostgreSQL, safe to share between threads and between nodes."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self.where = describe(url)
        self._pool = Pool(url, pool_size)
        with self._pool.connection() as conn, errors(self.where):
            self.schema = current_schema(conn, self.where)
            migrate(conn, "log", LOG_MIGRATIONS)
        self.lock_key = (_LEADER_LOCK, _schema_key(self.schema))
        self.channel = f"tocsin_log_{_schema_key(self.schema)}"

    @property
    def pool(self) -> Pool:
        """The connections of this store (other parts of the same store borrow them too)."""
        return self._pool

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on a pooled connection; its rows."""
        with self._pool.connection() as conn, errors(self.where):
            cur = conn.execute(sql, args)
            return cur.fetchall() if cur.description is not None else []

    # --- the log -------------------------------------------------------------------------------

    def append(
        self, entries: Sequence[LogEntry], *, leaf_hashes: Sequence[bytes] | None = None
    ) -> None:
        """Append entries in one transaction (durable when it returns)."""
        self.commit(entries, leaf_hashes=leaf_hashes)

    def commit(
        self,
        entries: Sequence[LogEntry],
        *,
        leaf_hashes: Sequence[bytes] | None = None,
        epoch: int | None = None,
        position: int | None = None,
        rejections: Sequence[Rejection] = (),
    ) -> None:
        """Append entries, their leaf hashes, the stream position and refused events, at once.

        With `epoch`, refuse (`Fenced`) unless the cluster's epoch is still that one.
        """
        if leaf_hashes is not None and len(leaf_hashes) != len(entries):
            raise ValueError("one leaf hash per entry")
        for expected, e in enumerate(entries, entries[0].seq if entries else 0):
            if e.seq != expected:
                raise IntegrityError(f"seq {e.seq} does not continue the batch at {expected}")
        if not entries and position is None and not rejections:
            return
        with self._pool.connection() as conn, errors(self.where), conn.transaction():
            if epoch is not None:
                row = conn.execute("SELECT epoch, leader FROM cluster WHERE id = 1 FOR UPDATE"
                                   ).fetchone()
                if row is None or row[0] != epoch:
                    now = "?" if row is None else f"{row[0]} ({row[1]})"
                    raise Fenced(f"epoch {epoch} is over: the cluster is at epoch {now}")
            if entries:
                top = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()
                expected = 1 if top is None else int(top[0]) + 1
                if entries[0].seq != expected:
                    raise IntegrityError(
                        f"seq {entries[0].seq} does not continue the log at {expected}")
                with conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO log ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                        [(e.seq, e.kind, e.body, e.source, e.event_id, e.key_name, e.cause_seq,
                          e.recorded_at) for e in entries])
                    if leaf_hashes is not None:
                        cur.executemany(
                            "INSERT INTO merkle_leaves (seq, hash) VALUES (%s, %s)",
                            list(zip((e.seq for e in entries), leaf_hashes, strict=True)))
            if rejections:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO rejected (stream_seq, source, event_id, key_name, body, "
                        "errors, node, received_at, rejected_at) "
                        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                        [(r.stream_seq, r.source, r.event_id, r.key_name, r.body,
                          json.dumps(r.errors), r.node, r.received_at, r.rejected_at)
                         for r in rejections])
            if position is not None:
                conn.execute("UPDATE cluster SET stream_seq = GREATEST(stream_seq, %s) "
                             "WHERE id = 1", (position,))
            if entries:
                conn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(entries[-1].seq)))

    def max_seq(self) -> int:
        """The seq of the last committed entry."""
        return int(self.query("SELECT COALESCE(MAX(seq), 0) FROM log")[0][0])

    def read(self, start: int = 1, end: int | None = None) -> Iterator[LogEntry]:
        """Entries in [start, end], streamed in pages (end: the log's end when called)."""
        stop = self.max_seq() if end is None else end
        cursor = max(start, 1)
        while cursor <= stop:
            rows = self.query(
                f"SELECT {_COLUMNS} FROM log WHERE seq >= %s AND seq <= %s ORDER BY seq LIMIT %s",
                (cursor, stop, _PAGE))
            if not rows:
                return
            for r in rows:
                yield LogEntry(int(r[0]), r[1], r[2], r[3], r[4], r[5],
                               None if r[6] is None else int(r[6]), r[7])
            cursor = int(rows[-1][0]) + 1

    def find_event(self, source: str, event_id: str) -> int | None:
        """The seq of (source, id), if logged."""
        rows = self.query("SELECT seq FROM log WHERE kind = 'event' AND source = %s "
                          "AND event_id = %s", (source, event_id))
        return None if not rows else int(rows[0][0])

    def find_events(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The seqs of those of `keys` (source, id) that are logged, in one query."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        rows = self.query(
            "SELECT l.source, l.event_id, l.seq FROM log l "
            "JOIN unnest(%s::text[], %s::text[]) AS k(source, event_id) "
            "ON l.source = k.source AND l.event_id = k.event_id WHERE l.kind = 'event'",
            ([s for s, _ in wanted], [i for _, i in wanted]))
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def get_meta(self, key: str) -> str | None:
        """A stored metadata value."""
        rows = self.query("SELECT value FROM meta WHERE key = %s", (key,))
        return None if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a metadata value."""
        self.query("INSERT INTO meta (key, value) VALUES (%s, %s) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value RETURNING key",
                   (key, value))

    def close(self) -> None:
        """Close the connections."""
        self._pool.close()

    # --- the cluster ---------------------------------------------------------------------------

    def take_leadership(self, node: str) -> tuple[int, int]:
        """Start a new epoch led by `node`: (the epoch, the stream position committed so far).

        Call only while holding the `LeaderLease`. Waits for a commit of the previous leader
        that is in flight (it holds the row), so the position returned follows it.
        """
        rows = self.query(
            "UPDATE cluster SET epoch = epoch + 1, leader = %s, leader_since = now() "
            "WHERE id = 1 RETURNING epoch, stream_seq", (node,))
        return int(rows[0][0]), int(rows[0][1])

    def cluster_state(self) -> dict[str, Any]:
        """Epoch, leader (None unless someone holds the lock), since when, stream position."""
        rows = self.query(
            "SELECT epoch, leader, leader_since, stream_seq, EXISTS (SELECT 1 FROM pg_locks "
            "WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND objsubid = 2 "
            "AND granted) FROM cluster WHERE id = 1", self.lock_key)
        epoch, leader, since, position, held = rows[0]
        return {"epoch": int(epoch), "leader": leader if held else None,
                "leader_since": None if since is None or not held else _stamp(since),
                "stream_seq": int(position), "last_leader": leader}

    def rejections(self, after: int = 0, limit: int = 100) -> list[Rejection]:
        """Events the leader refused after their 202, by stream position."""
        rows = self.query(
            "SELECT stream_seq, source, event_id, key_name, body, errors, node, received_at, "
            "rejected_at FROM rejected WHERE stream_seq > %s ORDER BY stream_seq LIMIT %s",
            (after, limit))
        return [_rejection(r) for r in rows]

    def rejection(self, source: str, event_id: str) -> Rejection | None:
        """The latest refusal of (source, id), if any."""
        rows = self.query(
            "SELECT stream_seq, source, event_id, key_name, body, errors, node, received_at, "
            "rejected_at FROM rejected WHERE source = %s AND event_id = %s "
            "ORDER BY stream_seq DESC LIMIT 1", (source, event_id))
        return _rejection(rows[0]) if rows else None

    def rejected_count(self) -> int:
        """How many events were refused after their 202."""
        return int(self.query("SELECT COUNT(*) FROM rejected")[0][0])

    # --- the log's signing key -----------------------------------------------------------------

    def signing_key_pem(self, *, create: bool) -> bytes | None:
        """The log's Ed25519 key (PKCS#8 PEM); with `create`, make it when there is none.

        The first node to ask makes it; the others read the same, so every node signs alike.
        """
        if create:
            pem = private_key_to_pem(Ed25519PrivateKey.generate()).decode("ascii")
            self.query("INSERT INTO log_keys (id, pem, created_at) VALUES (1, %s, %s) "
                       "ON CONFLICT (id) DO NOTHING RETURNING id",
                       (pem, format_time(datetime.now(UTC))))
        rows = self.query("SELECT pem FROM log_keys WHERE id = 1")
        return None if not rows else str(rows[0][0]).encode("ascii")


def _stamp(value: Any) -> str:
    return format_time(value) if isinstance(value, datetime) else str(value)


def _rejection(r: Sequence[Any]) -> Rejection:
    return Rejection(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8])


def load_store_signing_key(log: PostgresLog, *, create: bool = True) -> Ed25519PrivateKey:
    """The log's signing key as kept in the store."""
    pem = log.signing_key_pem(create=create)
    if pem is None:
        raise TocsinError(f"{log.where}: no log signing key in the store")
    try:
        return private_key_from_pem(pem)
    except ValueError as exc:
        raise TocsinError(f"{log.where}: the stored log signing key: {exc}") from None


class LeaderLease:
    """The cluster's leader lock: a session advisory lock on a connection of its own.

    PostgreSQL releases it the moment that session ends: at once when the holder's process dies
    (its socket closes), within about five seconds when its host or network does (the session's
    TCP keepalives and user timeout), and `timeout_s` after the holder stopped calling `check`
    (a hung or paused process: the server ends a session idle that long). Holding it is what
    lets a node start an epoch; the epoch, not the lock, is what fences commits (see the module
    docstring).
    """

    def __init__(self, log: PostgresLog, *, timeout_s: float = 3.0) -> None:
        self.log = log
        self.timeout_s = timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True if this node holds it now."""
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self.held = False
                self._conn = connect(self.log.url)
                self._conn.execute(_LEASE_SESSION)
            if not self.held:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                         self.log.lock_key).fetchone()
                self.held = bool(row and row[0])
                if self.held:  # from now on, silence for timeout_s ends the session (and lead)
                    self._conn.execute(f"SET idle_session_timeout = {int(self.timeout_s * 1000)}")
        except psycopg.Error as exc:
            self._drop()
            raise OperationalError(f"{self.log.where}: leader lock: {exc}") from exc
        return self.held

    def check(self) -> bool:
        """Whether the lock is still held (its session is alive and still holds it)."""
        if self._conn is None or not self.held:
            return False
        try:
            row = self._conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 2 "
                "AND granted)", self.log.lock_key).fetchone()
        except psycopg.Error:
            self._drop()
            return False
        self.held = bool(row and row[0])
        return self.held

    def release(self) -> None:
        """Give the lock up (by ending its session, which cannot fail to release it)."""
        self._drop()

    def _drop(self) -> None:
        self.held = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


class PostgresMerkleLog(MerkleLog):
    """The Merkle tree over a `PostgresLog`: leaf hashes and signed heads in its tables.

    The leader writes leaf hashes in the same transaction as their entries (`commit`); followers
    extend their tree from the stored hashes of entries they read (`follow`). Only the leader
    signs heads; a follower serves the latest head its own tree already covers (`refresh`).
    """

    def __init__(self, log: PostgresLog) -> None:
        super().__init__(log)
        self.pg = log

    def append(self, entries: Sequence[LogEntry]) -> None:
        """Durably append entries with their leaf hashes, then add them to the tree."""
        self.commit(entries)

    def commit(
        self,
        entries: Sequence[LogEntry],
        *,
        epoch: int | None = None,
        position: int | None = None,
        rejections: Sequence[Rejection] = (),
    ) -> None:
        """`PostgresLog.commit` with the entries' leaf hashes, then add them to the tree."""
        if entries and entries[0].seq != self.tree.size + 1:
            raise IntegrityError(
                f"seq {entries[0].seq} does not continue the Merkle tree at {self.tree.size + 1}"
            )
        hashes = [entry_leaf_hash(e, self.times_from) for e in entries]
        self.pg.commit(entries, leaf_hashes=hashes, epoch=epoch, position=position,
                       rejections=rejections)
        self.tree.extend(hashes)

    def hashes_of(self, entries: Sequence[LogEntry]) -> list[bytes]:
        """The stored leaf hashes of entries that continue the tree (changes nothing here)."""
        if not entries:
            return []
        first, last = entries[0].seq, entries[-1].seq
        if first != self.tree.size + 1:
            raise IntegrityError(f"seq {first} does not continue the Merkle tree at "
                                 f"{self.tree.size + 1}")
        rows = self.pg.query("SELECT seq, hash FROM merkle_leaves WHERE seq >= %s AND seq <= %s "
                             "ORDER BY seq", (first, last))
        stored = {int(s): bytes(h) for s, h in rows}
        hashes = []
        for e in entries:
            digest = stored.get(e.seq)
            if digest is None:  # written without a hash (e.g. by `tocsin simulate --store`)
                digest = entry_leaf_hash(e, self.times_from)
                self._store_hashes([(e.seq, digest)])
            hashes.append(digest)
        return hashes

    def follow(self, entries: Sequence[LogEntry], hashes: Sequence[bytes] | None = None) -> None:
        """Add entries another node committed to the tree (`hashes`: from `hashes_of`)."""
        self.tree.extend(self.hashes_of(entries) if hashes is None else hashes)

    def refresh(self) -> TreeHead | None:
        """Make `latest` the newest stored head this tree covers (a follower's view)."""
        head = self._latest_head()
        if head is not None:
            self.latest = head
        return self.latest

    def sign(
        self, key: Ed25519PrivateKey, now: datetime, *, force: bool = False
    ) -> TreeHead | None:
        """Sign a head over the whole tree and store it (the leader's job)."""
        before = self.latest
        head = super().sign(key, now, force=force)  # kept in memory by the base class
        if head is None:
            return None
        self._heads.clear()
        try:
            self.pg.query(
                "INSERT INTO sths (tree_size, timestamp, root_hash, signature, key_id) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (head.tree_size, head.timestamp, head.root_hash, head.signature,
                 key_id(public_key_raw(key))))
        except TocsinError:
            self.latest = before
            raise
        return head

    def heads(self, since: str | None = None, limit: int = 1000) -> list[TreeHead]:
        """Stored heads signed after `since` (an STH timestamp), oldest first."""
        sql = "SELECT tree_size, timestamp, root_hash, signature FROM sths"
        args: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE timestamp > %s"
            args = (since,)
        rows = self.pg.query(sql + " ORDER BY id LIMIT %s", (*args, limit))
        return [TreeHead(int(r[0]), r[1], bytes(r[2]), bytes(r[3])) for r in rows]

    def close(self) -> None:
        """Nothing of its own to close (the log's pool is closed by its owner)."""

    def _stored_hashes(self) -> Iterator[tuple[int, bytes]]:
        after = 0
        while True:
            rows = self.pg.query("SELECT seq, hash FROM merkle_leaves WHERE seq > %s "
                                 "ORDER BY seq LIMIT %s", (after, 50_000))
            for seq, digest in rows:
                yield int(seq), bytes(digest)
            if len(rows) < 50_000:
                return
            after = int(rows[-1][0])

    def _store_hashes(self, rows: list[tuple[int, bytes]]) -> None:
        if not rows:
            return
        with self.pg.pool.connection() as conn, errors(self.pg.where), conn.transaction():
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO merkle_leaves (seq, hash) VALUES (%s, %s) "
                                "ON CONFLICT (seq) DO NOTHING", rows)

    def _latest_head(self) -> TreeHead | None:
        # the newest head within this node's tree: another node may have signed further already
        rows = self.pg.query(
            "SELECT tree_size, timestamp, root_hash, signature FROM sths WHERE tree_size <= %s "
            "ORDER BY id DESC LIMIT 1", (self.tree.size,))
        if not rows:
            return None
        r = rows[0]
        return TreeHead(int(r[0]), r[1], bytes(r[2]), bytes(r[3]))
