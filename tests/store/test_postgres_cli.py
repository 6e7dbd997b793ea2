"""`tocsin verify --store` and `tocsin cap import --store`: the commands that read or write a
data directory's log work on a cluster's PostgreSQL store too.

Runs against the real server at 127.0.0.1:5432 in a database of its own (dropped afterwards);
skips loudly when the server cannot be reached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.api.helpers import FakeClock
from tests.cluster.services import fresh_database, postgres_or_skip
from tests.engine.helpers import event
from tests.standards.test_capin import SENDER, cap, katottg
from tocsin.cli import main
from tocsin.cluster.lease import LeaderLease
from tocsin.engine.core import Engine
from tocsin.geo import load_region_set
from tocsin.ledger import Ledger
from tocsin.model import parse_time
from tocsin.store import open_signing_key
from tocsin.store.merkle import MerkleLog
from tocsin.store.postgres import PostgresLog

pytestmark = pytest.mark.postgres


@pytest.fixture()
def pg_db() -> Iterator[str]:
    """The URL of a fresh database on the test server, dropped afterwards."""
    with fresh_database(postgres_or_skip()) as url:
        yield url


def record(url: str, tmp_path: Path) -> int:
    """A log in the store with a signed head over it, as a cluster leaves one; its size."""
    regions = load_region_set("ua-oblasts")
    with PostgresLog(url) as log:
        log.set_meta("regions", "ua-oblasts")
        merkle = MerkleLog(log)
        merkle.load()
        ledger = Ledger(log, lambda: Engine(regions), merkle=merkle)
        ledger.submit([event("tick", 0),
                       event("operator_alert", 5, regions=["UA46000000000026241"],
                             alert_type="air_raid", action="raise", operator="duty")])
        ledger.submit([event("operator_alert", 60, regions=["UA46000000000026241"],
                             alert_type="air_raid", action="clear", operator="duty")])
        key = open_signing_key(log, None, tmp_path, tmp_path / "config")
        assert merkle.sign(key, datetime(2026, 11, 25, 2, tzinfo=UTC)) is not None
        return merkle.size


def test_verify_checks_a_store_read_only_and_finds_a_rewritten_row(
    pg_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    size = record(pg_db, tmp_path)
    assert main(["verify", "--store", pg_db]) == 0
    captured = capsys.readouterr()
    assert f"verified {size} entries and 1 signed tree heads" in captured.out
    assert "the one the store keeps" in captured.err
    # what the triggers refuse, the owner of the database can still do: verify must notice
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # the triggers do not fire
        conn.execute("UPDATE log SET body = replace(body, 'duty', 'nobody') WHERE seq = 2")
    assert main(["verify", "--store", pg_db]) == 1
    assert "first bad index 1 (seq 2)" in capsys.readouterr().err
    # --store is one of the places to check, like --data-dir and --url
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--store", pg_db, "--data-dir", str(tmp_path)])
    assert exited.value.code == 2


def test_verify_store_opens_nothing_for_writing(pg_db: str, tmp_path: Path) -> None:
    record(pg_db, tmp_path)
    from tocsin.store.readonly import open_readonly

    with open_readonly(store=pg_db) as db, pytest.raises(Exception, match="read-only"):
        db.query("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    gone = pg_db.rsplit("/", 1)[0] + "/tocsin_no_such_db"
    assert main(["verify", "--store", gone]) == 3  # no store there: nothing is made
    with psycopg.connect(pg_db.rsplit("/", 1)[0] + "/postgres") as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = "
                                "'tocsin_no_such_db'").fetchall()


def test_cap_import_into_a_store_holds_the_leader_lock(
    pg_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    clock = FakeClock()
    clock.now = parse_time("2030-01-01T00:00:00Z")
    path = tmp_path / "alert.xml"
    path.write_bytes(cap("cli-1", clock, areas=katottg("UA46000000000026241"),
                         expires_in=10 * 365 * 86400))
    assert main(["cap", "import", str(path), "--store", pg_db]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["regions"] == ["UA46000000000026241"]
    with PostgresLog(pg_db) as log:
        raised = [e.obj() for e in log.read() if e.source == f"cap:{SENDER}"]
        assert raised and raised[0]["action"] == "raise"
        assert log.snapshots() == []  # a one-off process keeps no snapshot in the shared store
        lease = LeaderLease(log)
        assert lease.try_acquire()  # a leader runs on the store
        try:
            assert main(["cap", "import", str(path), "--store", pg_db]) == 3
            assert "a cluster leader is running" in capsys.readouterr().err
        finally:
            lease.release()
    assert main(["verify", "--store", pg_db]) == 0  # what it logged is a proper log
