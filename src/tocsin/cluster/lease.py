"""The leader lock of a cluster: a PostgreSQL session advisory lock.

Holding it is what lets a node start an epoch (`EventLog.start_epoch`); the epoch, not the
lock, is what fences appends (see `tocsin.cluster`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg

from tocsin.errors import OperationalError
from tocsin.store.postgres import PostgresLog, connect

__all__ = ["LeaderLease", "lock_held"]

# On the server side, for the leader lock's session: a leader whose host or network died loses
# the lock (and with it the lead) within about tcp_user_timeout.
_LEASE_SESSION = (
    "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; "
    "SET tcp_keepalives_count = 3; SET tcp_user_timeout = 5000"
)


def lock_held(store: PostgresLog) -> bool:
    """Whether any session holds the store's leader lock right now."""
    rows = store.query(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
        "AND objid = %s AND objsubid = 2 AND granted)", store.lock_key)
    return bool(rows and rows[0][0])


class LeaderLease:
    """The cluster's leader lock: a session advisory lock on a connection of its own.

    PostgreSQL releases it the moment that session ends: at once when the holder's process dies
    (its socket closes), within about five seconds when its host or network does (the session's
    TCP keepalives and user timeout), and `timeout_s` after the holder stopped calling `check`
    (a hung or paused process: the server ends a session idle that long). Holding it is what
    lets a node start an epoch; the epoch, not the lock, is what fences commits (see the module
    docstring).
    """

    def __init__(self, store: PostgresLog, *, timeout_s: float = 3.0) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True if this node holds it now."""
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self.held = False
                self._conn = connect(self.store.url)
                self._conn.execute(_LEASE_SESSION)
            if not self.held:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                         self.store.lock_key).fetchone()
                self.held = bool(row and row[0])
                if self.held:  # from now on, silence for timeout_s ends the session (and lead)
                    self._conn.execute(f"SET idle_session_timeout = {int(self.timeout_s * 1000)}")
        except psycopg.Error as exc:
            self._drop()
            raise OperationalError(f"{self.store.where}: leader lock: {exc}") from exc
        return self.held

    def check(self) -> bool:
        """Whether the lock is still held (its session is alive and still holds it)."""
        if self._conn is None or not self.held:
            return False
        try:
            row = self._conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 2 "
                "AND granted)", self.store.lock_key).fetchone()
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
