"""The log contract on PostgreSQL, and what only the shared store promises: fencing, migration,
append-only enforced by the database, one signing key for every node.

Runs against the real server at 127.0.0.1:5432 (`TOCSIN_TEST_POSTGRES`); each test gets a schema
of its own. Skips loudly when the server cannot be reached.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cluster.services import fresh_schema, postgres_or_skip
from tests.servers import eventually
from tocsin.cluster.lease import LeaderLease, lock_held
from tocsin.errors import IntegrityError
from tocsin.store import EventLog, open_admin, open_history, open_log, open_signing_key
from tocsin.store.admin import AdminBackend, hash_key
from tocsin.store.admin_postgres import ADMIN_MIGRATIONS, PostgresAdminStore
from tocsin.store.history_postgres import PostgresHistoryStore
from tocsin.store.postgres import LOG_MIGRATIONS, PostgresLog, migrate

from .admin_contract import AdminContract
from .contract import LogContract, event, put, transition
from .merkle_contract import MerkleContract

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
            put(log, rows)
            log.set_meta("policy", "{}")
        with self.create_log() as log, self.create_log() as other:
            assert list(other.read()) == rows
            assert log.find_event("radar-1", "e2") == 3
            assert log.get_meta("policy") == "{}"
            with pytest.raises(IntegrityError):
                put(other, [event(4, "e1")])
            put(other, [event(4, "e3")])
            assert log.max_seq() == 4  # another connection's commit is visible at once
        with psycopg.connect(self.url) as conn:
            assert conn.execute("SELECT version FROM tocsin_schema WHERE component = 'log'"
                                ).fetchone() == (len(LOG_MIGRATIONS),)

    @pytest.mark.parametrize(
        "sql", ["UPDATE log SET body = '{}' WHERE seq = 2", "DELETE FROM log WHERE seq = 2",
                "TRUNCATE log", "DELETE FROM merkle_leaves", "TRUNCATE sths"],
    )
    def test_rewriting_history_is_refused_by_the_database_itself(self, sql: str) -> None:
        rows = [event(1, "e1"), transition(2, 1)]
        with self.create_log() as log:
            log.append(rows, [b"\0" * 32, b"\1" * 32])
        with psycopg.connect(self.url, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.IntegrityError, match="append-only"):
                conn.execute(sql)  # type: ignore[arg-type]
        with self.create_log() as log:
            assert list(log.read()) == rows


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


class TestPostgresMerkle(MerkleContract):
    @pytest.fixture(autouse=True)
    def _where(self, pg_url: str) -> None:
        self.url = pg_url
        self.opened: list[EventLog] = []

    def create_log(self) -> EventLog:
        return PostgresLog(self.url)

    def open_again(self, log: EventLog) -> EventLog:
        other = PostgresLog(self.url)  # another node on the same store
        self.opened.append(other)
        return other

    @pytest.fixture(autouse=True)
    def _close(self) -> Iterator[None]:
        yield
        for log in self.opened:
            log.close()

    def test_one_signing_key_for_every_node(self) -> None:
        with PostgresLog(self.url) as one, PostgresLog(self.url) as two:
            assert one.stored_signing_key(create=False) is None
            key = open_signing_key(one, None, "unused")
            assert open_signing_key(two, None, "unused").private_bytes_raw() \
                == key.private_bytes_raw()


class TestFencing:
    """What only PostgreSQL can show: fenced appends of two nodes ordered by the row lock."""

    def test_takeover_waits_for_a_commit_in_flight(self, pg_url: str) -> None:
        """The old leader's commit holds the epoch row: the takeover is ordered after it."""
        with PostgresLog(pg_url) as log:
            epoch, _ = log.start_epoch("old", "2026-11-25T01:00:00Z")
            with psycopg.connect(pg_url) as conn:  # a commit of "old", paused mid-transaction
                conn.execute("SELECT epoch FROM cluster WHERE id = 1 FOR UPDATE")
                conn.execute("UPDATE cluster SET stream_seq = 41 WHERE id = 1")
                result: list[tuple[int, int]] = []
                taker = threading.Thread(target=lambda: result.append(
                    log.start_epoch("new", "2026-11-25T01:00:01Z")))
                taker.start()
                taker.join(0.5)
                assert taker.is_alive()  # blocked behind the commit in flight
                conn.commit()
            taker.join(10)
            assert result == [(epoch + 1, 41)]

    def test_one_leader_lock_per_schema(self, pg_url: str) -> None:
        with PostgresLog(pg_url) as log:
            a, b = LeaderLease(log), LeaderLease(log)
            try:
                assert a.try_acquire() and a.check()
                assert not b.try_acquire()
                assert lock_held(log)
                a.release()  # as when a's process dies: its session ends
                assert not a.check()
                # the server frees the lock as the session's backend exits: moments later
                eventually(lambda: not lock_held(log), "the lock freed", 10, every=0.01)
                eventually(b.try_acquire, "b to take the lock", 10, every=0.01)
                assert b.check()
            finally:
                a.release()
                b.release()


class TestPostgresHistory:
    """Imported history kept in the store: what one node imports, every node serves."""

    def test_the_history_contract_on_postgres(self, pg_url: str) -> None:
        from tests.record.test_history import check_history_store
        from tocsin.geo import load_region_set

        store = open_history(pg_url, "unused", load_region_set("ua-hromadas"))
        assert isinstance(store, PostgresHistoryStore)
        check_history_store(store)

    def test_imported_with_store_and_shared(self, pg_url: str, tmp_path: Path) -> None:
        from tocsin.cli import main

        path = tmp_path / "official_data_en.csv"
        path.write_text("oblast,raion,hromada,level,started_at,finished_at,source\n"
                        "Lvivska oblast,,,oblast,2022-03-15 16:10:34+00:00,"
                        "2022-03-15 16:50:07+00:00,official\n")
        assert main(["history", "import", str(path), "--store", pg_url]) == 0
        one, two = open_history(pg_url, "unused"), open_history(pg_url, "other")
        try:
            assert one.count() == two.count() == 1
            assert [i["added"] for i in two.imports()] == [1]
        finally:
            one.close()
            two.close()


def test_audit_reads_a_cluster_store(pg_url: str, tmp_path: Path) -> None:
    """`tocsin audit --store`: the shared log's impacts and the shared imported history."""
    import json

    from tests.engine.helpers import event
    from tocsin.cli import main
    from tocsin.engine.core import Engine
    from tocsin.geo import load_region_set
    from tocsin.ledger import Ledger

    regions = load_region_set("ua-oblasts")
    with PostgresLog(pg_url) as log:
        log.set_meta("regions", "ua-oblasts")
        ledger = Ledger(log, lambda: Engine(regions))
        ledger.submit([event("tick", 0), event("impact", 5, position={"lat": 49.84,
                                                                       "lon": 24.03},
                                               kind="explosion")])
    assert main(["audit", "--store", pg_url, "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["impacts"]["impacts"] == summary["impacts"]["silent"] == 1
    assert main(["audit", "--out", str(tmp_path / "x")]) == 2  # neither --data-dir nor --store
