"""The contract on each backend, and what only SQLite promises: a file that survives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tocsin.errors import IntegrityError
from tocsin.store import EventLog, MemoryLog, SQLiteLog, open_log

from .contract import LogContract, event, put, transition
from .merkle_contract import MerkleContract


class TestMemoryLog(LogContract):
    def create_log(self) -> EventLog:
        return MemoryLog()


class TestMemoryMerkle(MerkleContract):
    def create_log(self) -> EventLog:
        return MemoryLog()


class TestSQLiteLog(LogContract):
    @pytest.fixture(autouse=True)
    def _where(self, tmp_path: Path) -> None:
        self.path = tmp_path / "data" / "tocsin.db"

    def create_log(self) -> EventLog:
        return SQLiteLog(self.path)

    def test_reopening_keeps_everything(self) -> None:
        rows = [event(1, "e1", key_name="k"), transition(2, 1), event(3, "e2")]
        with self.create_log() as log:
            put(log, rows)
            log.set_meta("policy", "{}")
        with self.create_log() as log:
            assert log.max_seq() == 3
            assert list(log.read()) == rows
            assert log.find_event("radar-1", "e2") == 3
            assert log.get_meta("policy") == "{}"
            with pytest.raises(IntegrityError):
                put(log, [event(4, "e1")])
            put(log, [event(4, "e3")])
        with self.create_log() as log:
            assert log.max_seq() == 4

    @pytest.mark.parametrize(
        "sql", ["UPDATE log SET body = '{}' WHERE seq = 2", "DELETE FROM log WHERE seq = 2",
                "DELETE FROM log"],
    )
    def test_rewriting_history_is_refused_by_the_file_itself(self, sql: str) -> None:
        rows = [event(1, "e1"), transition(2, 1)]
        with self.create_log() as log:
            put(log, rows)
        con = sqlite3.connect(self.path)
        try:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(sql)
        finally:
            con.close()
        with self.create_log() as log:
            assert list(log.read()) == rows


    def test_a_batch_of_ids_is_looked_up_by_index_searches_not_a_scan(self) -> None:
        # a scan of the (source, event_id) index costs in proportion to the log, every batch
        with self.create_log() as log:
            assert isinstance(log, SQLiteLog)
            put(log, [event(seq, f"e{seq}") for seq in range(1, 301)])
            statements: list[str] = []
            log._db.set_trace_callback(statements.append)
            try:
                keys = [("radar-1", f"e{i}") for i in range(0, 400, 3)]
                assert len(log.find_events(keys)) == len(range(3, 301, 3))
            finally:
                log._db.set_trace_callback(None)
            (lookup,) = [s for s in statements if "FROM" in s and "log" in s]
            plan = log._db.execute("EXPLAIN QUERY PLAN " + lookup).fetchall()
            steps = [row[-1] for row in plan]
            assert any("SEARCH log USING INDEX log_event_key" in s for s in steps), steps
            assert not any(s.startswith("SCAN log") for s in steps), steps


class TestSQLiteMerkle(MerkleContract):
    @pytest.fixture(autouse=True)
    def _where(self, tmp_path: Path) -> None:
        self.path = tmp_path / "tocsin.db"

    def create_log(self) -> EventLog:
        return SQLiteLog(self.path)

    def open_again(self, log: EventLog) -> EventLog:
        return SQLiteLog(self.path)  # (closed with the process; tests are short)


def test_open_log_by_url_and_directory(tmp_path: Path) -> None:
    assert isinstance(open_log("memory:"), MemoryLog)
    with open_log(f"sqlite:///{tmp_path / 'a.db'}") as log:
        assert isinstance(log, SQLiteLog) and log.path == tmp_path / "a.db"
    with open_log(tmp_path / "d") as log:
        assert isinstance(log, SQLiteLog) and log.path == tmp_path / "d" / "tocsin.db"
