"""`tocsin verify --data-dir`: a real SQLite log, tampered with in every way, is caught at the
right first bad index."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from tests.record.conftest import Recorded, Tamper
from tocsin.cli import main
from tocsin.store.base import LogEntry
from tocsin.store.merkle import entry_leaf_hash
from tocsin.verify import load_public_key, verify_data_dir


def _row(db: Path, seq: int) -> tuple[str, str]:
    conn = sqlite3.connect(db)
    try:
        kind, body = conn.execute("SELECT kind, body FROM log WHERE seq = ?", (seq,)).fetchone()
    finally:
        conn.close()
    return kind, body


def _event_seq(db: Path, after: int, etype: str = "operator_alert") -> int:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT seq, body FROM log WHERE kind = 'event' AND seq > ? "
                            "ORDER BY seq", (after,)).fetchall()
    finally:
        conn.close()
    return next(s for s, b in rows if json.loads(b)["type"] == etype)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _verify(rec: Recorded) -> tuple[int | None, list[str]]:
    report = verify_data_dir(rec.data_dir, rec.public_key)
    return report.first_bad_index, [str(p) for p in report.problems]


def _cli(rec: Recorded, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["verify", "--data-dir", str(rec.data_dir)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_untouched_log_verifies(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    report = verify_data_dir(recorded.data_dir, recorded.public_key)
    assert report.ok, report.problems
    assert report.entries == recorded.size and report.heads == len(recorded.heads) > 2
    code, out = _cli(recorded, capsys)
    assert code == 0, out
    assert f"verified {recorded.size} entries and {len(recorded.heads)} signed tree heads" in out


def test_a_changed_body_is_found_at_its_index(
    recorded: Recorded, tamper: Tamper, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = _event_seq(recorded.db, recorded.size // 2)
    _, body = _row(recorded.db, seq)
    changed = body.replace('"duty"', '"someone-else"')
    assert changed != body
    tamper(f"UPDATE log SET body = {_sql_text(changed)} WHERE seq = {seq}")
    first, problems = _verify(recorded)
    assert first == seq - 1, problems
    code, out = _cli(recorded, capsys)
    assert code == 1
    assert f"first bad index {seq - 1} (seq {seq})" in out


def test_a_changed_transition_is_found_too(recorded: Recorded, tamper: Tamper) -> None:
    seq = _event_seq(recorded.db, 10) + 1
    kind, body = _row(recorded.db, seq)
    assert kind == "transition"
    obj = json.loads(body)
    obj["severity"] = "pre_alert" if obj["severity"] != "pre_alert" else "imminent"
    tamper(f"UPDATE log SET body = {_sql_text(json.dumps(obj))} WHERE seq = {seq}")
    assert _verify(recorded)[0] == seq - 1


def test_a_deleted_row_is_found(recorded: Recorded, tamper: Tamper) -> None:
    seq = recorded.size // 3
    tamper(f"DELETE FROM log WHERE seq = {seq}")
    first, problems = _verify(recorded)
    assert first == seq - 1, problems
    assert any(f"seq {seq} is missing" in p for p in problems)


def test_the_last_rows_deleted_with_their_hashes_are_found_by_the_signed_head(
    recorded: Recorded, tamper: Tamper
) -> None:
    keep = recorded.heads[-1] - 4
    tamper(f"DELETE FROM log WHERE seq > {keep}; DELETE FROM merkle_leaves WHERE seq > {keep};")
    first, problems = _verify(recorded)
    assert first == keep, problems
    assert any("entries removed" in p for p in problems)


def test_an_inserted_row_is_found(recorded: Recorded, tamper: Tamper) -> None:
    seq = _event_seq(recorded.db, recorded.size // 2)
    forged = {"id": "forged-1", "type": "tick", "time": "2026-11-25T01:03:00Z",
              "source": "rec"}
    # make room by moving every later row up one seq (two steps: seq is the primary key)
    tamper(
        f"UPDATE log SET seq = seq + 1000000 WHERE seq >= {seq};"
        f"UPDATE log SET seq = seq - 1000000 + 1 WHERE seq >= 1000000;"
        f"INSERT INTO log (seq, kind, body, source, event_id) VALUES ({seq}, 'event', "
        f"{_sql_text(json.dumps(forged))}, 'rec', 'forged-1');"
    )
    first, problems = _verify(recorded)
    assert first == seq - 1, problems
    assert any(f"seq {recorded.size + 1} has no stored leaf hash" in p for p in problems)


def test_a_row_appended_outside_tocsin_is_found(recorded: Recorded, tamper: Tamper) -> None:
    forged = {"id": "forged-2", "type": "tick", "time": "2026-11-25T02:00:00Z",
              "source": "rec"}
    tamper(f"INSERT INTO log (seq, kind, body, source, event_id) VALUES ({recorded.size + 1}, "
           f"'event', {_sql_text(json.dumps(forged))}, 'rec', 'forged-2')")
    first, problems = _verify(recorded)
    assert first == recorded.size, problems


def test_two_swapped_rows_are_found_at_the_first(recorded: Recorded, tamper: Tamper) -> None:
    a = _event_seq(recorded.db, 20)
    b = _event_seq(recorded.db, a + 5)
    tamper(f"UPDATE log SET seq = -1 WHERE seq = {a}; UPDATE log SET seq = {a} WHERE seq = {b};"
           f"UPDATE log SET seq = {b} WHERE seq = -1;")
    first, problems = _verify(recorded)
    assert first == a - 1, problems


def test_swapped_rows_with_rewritten_hashes_are_bounded_by_the_signed_heads(
    recorded: Recorded, tamper: Tamper
) -> None:
    # the attacker also rewrites merkle_leaves, so only the signed heads can tell
    a = recorded.heads[1] + 2
    b = a + 3
    assert b <= recorded.heads[2]
    tamper(f"UPDATE log SET seq = -1 WHERE seq = {a}; UPDATE log SET seq = {a} WHERE seq = {b};"
           f"UPDATE log SET seq = {b} WHERE seq = -1;")
    conn = sqlite3.connect(recorded.db)
    rows = conn.execute("SELECT seq, kind, body, source, event_id, key_name, cause_seq, "
                        "recorded_at FROM log WHERE seq IN (?, ?)", (a, b)).fetchall()
    conn.close()
    fixes = "".join(
        f"UPDATE merkle_leaves SET hash = X'{entry_leaf_hash(LogEntry(*r), 1).hex()}' "
        f"WHERE seq = {r[0]};" for r in rows)
    tamper(fixes)
    first, problems = _verify(recorded)
    assert first == recorded.heads[1], problems  # at or after the last head that still matches
    assert any(f"from {recorded.heads[1]} to {recorded.heads[2] - 1}" in p for p in problems)


def test_a_forged_head_fails_its_signature(recorded: Recorded, tamper: Tamper) -> None:
    tamper(f"UPDATE sths SET root_hash = X'{'00' * 32}' WHERE id = 2")
    report = verify_data_dir(recorded.data_dir, recorded.public_key)
    assert not report.ok
    assert any("bad signature" in str(p) for p in report.problems)
    assert report.first_bad_index is None  # a bad head names no entry


def test_a_column_that_disagrees_with_its_body_is_found(recorded: Recorded, tamper: Tamper) -> None:
    seq = _event_seq(recorded.db, 30)
    tamper(f"UPDATE log SET source = 'elsewhere' WHERE seq = {seq}")
    first, problems = _verify(recorded)
    assert first == seq - 1 and "source/event_id columns differ" in problems[0]


def test_the_public_key_can_be_given(recorded: Recorded, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    b64 = base64.b64encode(recorded.public_key).decode()
    assert load_public_key(b64) == recorded.public_key
    assert load_public_key(str(recorded.data_dir / "log-signing.pub")) == recorded.public_key
    assert not (recorded.data_dir / "log-signing.key").exists()
    other = tmp_path / "other.pub"
    other.write_text(base64.b64encode(b"\x01" * 32).decode())
    assert main(["verify", "--data-dir", str(recorded.data_dir), "--public-key", b64]) == 0
    capsys.readouterr()
    assert main(["verify", "--data-dir", str(recorded.data_dir), "--public-key",
                 str(other)]) == 1
    assert "bad signature" in capsys.readouterr().err


def test_no_log_is_a_store_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--data-dir", str(tmp_path)]) == 3
    assert "no log here" in capsys.readouterr().err
