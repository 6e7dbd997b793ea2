"""The log contract on PostgreSQL, and what only the shared store promises: fencing, migration,
append-only enforced by the database, one signing key for every node.

Runs against the real server at 127.0.0.1:5432 (`TOCSIN_TEST_POSTGRES`); each test gets a schema
of its own. Skips loudly when the server cannot be reached.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from tests.cluster.services import fresh_schema, postgres_or_skip
from tests.servers import eventually
from tocsin.errors import Fenced, IntegrityError
from tocsin.store import EventLog, open_log
from tocsin.store.admin import AdminBackend, hash_key, open_admin
from tocsin.store.admin_postgres import ADMIN_MIGRATIONS, PostgresAdminStore
from tocsin.store.postgres import (
    LeaderLease,
    PostgresLog,
    PostgresMerkleLog,
    Rejection,
    migrate,
)

from .admin_contract import AdminContract
from .contract import LogContract, event, transition

pytestmark = pytest.mark.postgres


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A URL whose search path is a fresh schema on the test server."""
    with fresh_schema(postgres_or_skip()) as url:
        yield url


class TestPostgresLog(LogContract):
    @pytest.fixture(autouse=True)
    def _where(self, pg_url: str) -> None:
        self.url = pg_url

    def create_log(self) -> EventLog:
        return PostgresLog(self.url)

    def test_opened_by_url(self) -> None:
        with open_log(self.url) as log:
            assert isinstance(log, PostgresLog)

    def test_reopening_keeps_everything_and_migrates_once(self) -> None:
        rows = [event(1, "e1", key_name="k"), transition(2, 1), event(3, "e2")]
        with self.create_log() as log:
            log.append(rows)
            log.set_meta("policy", "{}")
        with self.create_log() as log, self.create_log() as other:
            assert list(other.read()) == rows
            assert log.find_event("radar-1", "e2") == 3
            assert log.get_meta("policy") == "{}"
            with pytest.raises(IntegrityError):
                other.append([event(4, "e1")])
            other.append([event(4, "e3")])
            assert log.max_seq() == 4  # another connection's commit is visible at once
        with psycopg.connect(self.url) as conn:
            assert conn.execute("SELECT version FROM tocsin_schema WHERE component = 'log'"
                                ).fetchone() == (1,)

    @pytest.mark.parametrize(
        "sql", ["UPDATE log SET body = '{}' WHERE seq = 2", "DELETE FROM log WHERE seq = 2",
                "TRUNCATE log", "DELETE FROM merkle_leaves", "TRUNCATE sths"],
    )
    def test_rewriting_history_is_refused_by_the_database_itself(self, sql: str) -> None:
        rows = [event(1, "e1"), transition(2, 1)]
        with self.create_log() as log:
            log.append(rows, leaf_hashes=[b"\0" * 32, b"\1" * 32])
        with psycopg.connect(self.url, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.IntegrityError, match="append-only"):
                conn.execute(sql)  # type: ignore[arg-type]
        with self.create_log() as log:
            assert list(log.read()) == rows

    def test_find_events_in_one_query(self) -> None:
        with self.create_log() as log:
            log.append([event(1, "e1"), transition(2, 1), event(3, "e2", source="radar-2")])
            assert log.find_events([("radar-1", "e1"), ("radar-2", "e2"), ("radar-1", "x")]) \
                == {("radar-1", "e1"): 1, ("radar-2", "e2"): 3}  # type: ignore[attr-defined]


class TestPostgresAdmin(AdminContract):
    @pytest.fixture(autouse=True)
    def _where(self, pg_url: str) -> None:
        self.url = pg_url

    def create_admin(self) -> AdminBackend:
        return PostgresAdminStore(self.url)

    def create_legacy_key(self, name: str, role: str) -> str:
        key = "tk_legacy-" + name
        with psycopg.connect(self.url, autocommit=True) as conn:
            migrate(conn, "admin", ADMIN_MIGRATIONS[:1])  # the tables as version 1 made them
            conn.execute("INSERT INTO api_keys VALUES (%s,%s,%s,%s,%s,%s)",
                         ("legacy", name, role, hash_key(key), "2026-01-01T00:00:00Z", None))
        return key

    def test_opened_by_url_and_shared(self) -> None:
        one, two = open_admin(self.url, "unused"), open_admin(self.url, "unused")
        try:
            assert isinstance(one, PostgresAdminStore)
            key, rec = one.create_key("sensor")
            assert two.authenticate(key) == rec  # every node knows every key
        finally:
            one.close()
            two.close()


class TestFencing:
    """A deposed leader cannot commit; the stream position moves only with its entries."""

    def test_a_stale_epoch_cannot_commit(self, pg_url: str) -> None:
        with PostgresLog(pg_url) as log:
            assert isinstance(log, PostgresLog)
            first, position = log.take_leadership("node-a")
            assert position == 0
            log.commit([event(1, "e1")], epoch=first, position=7)
            second, position = log.take_leadership("node-b")
            assert second == first + 1 and position == 7
            with pytest.raises(Fenced):
                log.commit([event(2, "e2")], epoch=first, position=9)
            with pytest.raises(Fenced):  # not even the position alone
                log.commit([], epoch=first, position=9)
            assert log.max_seq() == 1 and log.cluster_state()["stream_seq"] == 7
            log.commit([event(2, "e2")], epoch=second, position=9)
            assert log.max_seq() == 2 and log.cluster_state()["stream_seq"] == 9

    def test_takeover_waits_for_a_commit_in_flight(self, pg_url: str) -> None:
        """The old leader's commit holds the epoch row: the takeover is ordered after it."""
        with PostgresLog(pg_url) as log:
            assert isinstance(log, PostgresLog)
            epoch, _ = log.take_leadership("old")
            with psycopg.connect(pg_url) as conn:  # a commit of "old", paused mid-transaction
                conn.execute("SELECT epoch FROM cluster WHERE id = 1 FOR UPDATE")
                conn.execute("UPDATE cluster SET stream_seq = 41 WHERE id = 1")
                result: list[tuple[int, int]] = []
                taker = threading.Thread(target=lambda: result.append(
                    log.take_leadership("new")))
                taker.start()
                taker.join(0.5)
                assert taker.is_alive()  # blocked behind the commit in flight
                conn.commit()
            taker.join(10)
            assert result == [(epoch + 1, 41)]

    def test_rejections_are_kept_with_the_position(self, pg_url: str) -> None:
        with PostgresLog(pg_url) as log:
            assert isinstance(log, PostgresLog)
            epoch, _ = log.take_leadership("a")
            bad = Rejection(3, "radar-1", "e9", "sensor-1", '{"id":"e9"}',
                            [{"field": "time", "reason": "too far ahead"}], "a", None,
                            "2026-11-25T01:00:00Z")
            log.commit([], epoch=epoch, position=3, rejections=[bad])
            assert log.rejections() == [bad]
            assert log.rejection("radar-1", "e9") == bad
            assert log.rejected_count() == 1
            assert log.cluster_state()["stream_seq"] == 3

    def test_one_leader_lock_per_schema(self, pg_url: str) -> None:
        with PostgresLog(pg_url) as log:
            assert isinstance(log, PostgresLog)
            a, b = LeaderLease(log), LeaderLease(log)
            try:
                assert a.try_acquire() and a.check()
                assert not b.try_acquire()
                assert log.cluster_state()["leader"] is None  # the lock is held, no epoch yet
                log.take_leadership("a")
                assert log.cluster_state()["leader"] == "a"
                a.release()  # as when a's process dies: its session ends
                assert not a.check()
                # the server frees the lock as the session's backend exits: moments later
                eventually(lambda: log.cluster_state()["leader"] is None, "the lock freed", 10,
                           every=0.01)
                eventually(b.try_acquire, "b to take the lock", 10, every=0.01)
                assert b.check()
            finally:
                a.release()
                b.release()


class TestMerkle:
    def test_leaves_and_heads_are_shared(self, pg_url: str) -> None:
        from datetime import UTC, datetime

        from tocsin.store.postgres import load_store_signing_key

        with PostgresLog(pg_url) as log:
            assert isinstance(log, PostgresLog)
            key = load_store_signing_key(log)
            assert load_store_signing_key(log).private_bytes_raw() == key.private_bytes_raw()
            leader, follower = PostgresMerkleLog(log), PostgresMerkleLog(log)
            leader.load()
            follower.load()
            rows = [event(1, "e1"), transition(2, 1), event(3, "e2")]
            leader.commit(rows[:2])
            leader.append(rows[2:])
            head = leader.sign(key, datetime(2026, 11, 25, 1, tzinfo=UTC))
            assert head is not None and head.tree_size == 3
            follower.refresh()
            assert follower.latest is None  # its tree is still empty: no head covers it yet
            follower.follow(list(log.read()))
            assert follower.refresh() == head
            assert follower.tree.root_at(3) == leader.tree.root_at(3)
            assert follower.heads() == [head]
            again = PostgresMerkleLog(log)
            assert again.load() == 3 and again.latest == head
