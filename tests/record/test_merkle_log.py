"""The log as a Merkle tree: leaf format, persistence in the same file, catch-up, heads, keys."""

from __future__ import annotations

import json
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.audit.test_merkle import ref_mth
from tests.record.conftest import T0, Recorded, operator, raw, write_log
from tocsin.audit import leaf_hash, verify_tree_head
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.errors import IntegrityError, TocsinError, ValidationError
from tocsin.geo import RegionSet
from tocsin.ledger import Ledger
from tocsin.store import LogEntry, MemoryLog, SQLiteLog
from tocsin.store.merkle import (
    MerkleLog,
    check_canonical,
    entry_leaf_hash,
    leaf_input,
    leaf_object,
    load_signing_key,
)
from tocsin.threats import load_catalog


def _stored(db: Path) -> dict[int, bytes]:
    conn = sqlite3.connect(db)
    try:
        return {s: bytes(h) for s, h in conn.execute("SELECT seq, hash FROM merkle_leaves")}
    finally:
        conn.close()


def test_leaf_is_the_canonical_json_of_seq_kind_entry_and_key() -> None:
    event = LogEntry(7, "event", '{"type":"tick", "id":"t", "time":"2026-11-25T01:00:00Z", '
                     '"source":"s", "x":1.0}', "s", "t", "clock", recorded_at="whenever")
    assert leaf_object(event) == {
        "seq": 7, "kind": "event", "key": "clock",
        "entry": {"type": "tick", "id": "t", "time": "2026-11-25T01:00:00Z", "source": "s",
                  "x": 1.0},
    }
    assert leaf_input(event) == (
        b'{"entry":{"id":"t","source":"s","time":"2026-11-25T01:00:00Z","type":"tick","x":1},'
        b'"key":"clock","kind":"event","seq":7}'
    )
    assert entry_leaf_hash(event) == leaf_hash(leaf_input(event))
    # the wall time of recording is not in the leaf; the key is only on events that have one
    assert leaf_input(event) == leaf_input(LogEntry(7, "event", event.body, "s", "t", "clock"))
    transition = LogEntry(8, "transition", '{"seq":8, "type":"alert_started"}', cause_seq=7)
    assert leaf_input(transition) == b'{"entry":{"seq":8,"type":"alert_started"},' \
                                     b'"kind":"transition","seq":8}'


def test_events_that_cannot_be_canonicalised_are_refused_before_anything_is_logged(
    oblasts: RegionSet,
) -> None:
    with pytest.raises(ValidationError) as info:
        check_canonical({"id": "a", "x": 2**60})
    assert info.value.errors[0].field == "(event)"
    ledger = Ledger(MemoryLog(), lambda: Engine(oblasts, load_catalog(), Policy()))
    with pytest.raises(ValidationError):
        ledger.submit([raw("tick", 0, huge=2**60)])
    assert ledger.log.max_seq() == 0


def test_leaf_hashes_are_stored_with_their_entries_and_match_an_independent_tree(
    recorded: Recorded,
) -> None:
    stored = _stored(recorded.db)
    log = SQLiteLog(recorded.db)
    try:
        entries = list(log.read())
    finally:
        log.close()
    assert sorted(stored) == [e.seq for e in entries] == list(range(1, recorded.size + 1))
    inputs = [leaf_input(e, 1) for e in entries]
    assert [stored[e.seq] for e in entries] == [leaf_hash(d) for d in inputs]
    # every signed head's root is the RFC 9162 MTH of the leaf inputs, by the slow reference
    merkle = MerkleLog(SQLiteLog(recorded.db))
    try:
        merkle.load()
        heads = merkle.heads()
    finally:
        merkle.close()
        merkle.log.close()
    assert [h.tree_size for h in heads] == recorded.heads
    for head in heads:
        assert verify_tree_head(recorded.public_key, head)
        assert head.root_hash == ref_mth(inputs[: head.tree_size])


def test_recorded_at_is_in_the_leaves_of_a_new_log(oblasts: RegionSet) -> None:
    raws = [raw("tick", 0), operator("raise", "UA46000000000026241", 1), raw("tick", 600)]
    roots = []
    for stamp in ("2030-01-01T00:00:00Z", "2031-05-05T05:05:05Z", "2031-05-05T05:05:05Z"):
        log = MemoryLog()
        merkle = MerkleLog(log)
        assert merkle.times_from == 1
        ledger = Ledger(log, lambda: Engine(oblasts, load_catalog(), Policy()), merkle=merkle)
        for r in raws:
            ledger.submit([r], recorded_at=stamp)
        roots.append(merkle.tree.root())
        assert merkle.size == log.max_seq() > 3
        first = next(log.read())
        assert leaf_object(first, merkle.times_from)["recorded_at"] == stamp
    # the same entries logged at the same times give the same tree; another time another tree
    assert roots[0] != roots[1] == roots[2]


def test_an_older_log_covers_recorded_at_from_its_next_entry(oblasts: RegionSet) -> None:
    log = MemoryLog()
    # an entry written by an older version: its leaf hash has no recorded_at, and the log's
    # metadata says nothing of leaf times
    tick = raw("tick", 0)
    old = LogEntry(1, "event", json.dumps(tick), tick["source"], tick["id"],
                   recorded_at="2030-01-01T00:00:00Z")
    log.append([old], [entry_leaf_hash(old)])
    before = log.max_seq()
    merkle = MerkleLog(log)
    merkle.load()
    assert merkle.times_from == before + 1 and log.get_meta("leaf_times_from") == str(before + 1)
    assert "recorded_at" not in leaf_object(old, merkle.times_from)
    assert MerkleLog(log).times_from == before + 1  # fixed once, not moved by a restart
    ledger = Ledger(log, lambda: Engine(oblasts, load_catalog(), Policy()), merkle=merkle)
    ledger.recover()
    ledger.submit([raw("tick", 1)], recorded_at="2030-01-01T00:00:01Z")
    new = next(log.read(before + 1, before + 1))
    assert leaf_object(new, merkle.times_from)["recorded_at"] == "2030-01-01T00:00:01Z"


def test_a_log_written_without_leaves_is_caught_up_on_load(
    tmp_path: Path, oblasts: RegionSet
) -> None:
    db = tmp_path / "tocsin.db"
    log = SQLiteLog(db)
    ledger = Ledger(log, lambda: Engine(oblasts, load_catalog(), Policy()))
    ledger.submit([raw("tick", 0), operator("raise", "UA46000000000026241", 1)])
    size = log.max_seq()
    log.close()
    # as an older version left it: entries, no leaf hashes (the triggers stop a DELETE)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript("DROP TRIGGER merkle_leaves_no_delete; DELETE FROM merkle_leaves;")
    conn.close()
    log = SQLiteLog(db)
    assert _stored(db) == {}
    merkle = MerkleLog(log)
    assert merkle.load() == size
    assert _stored(db) == {e.seq: entry_leaf_hash(e) for e in log.read()}
    # appending continues through the Merkle log, in the same transaction as the entries
    ledger = Ledger(log, lambda: Engine(oblasts, load_catalog(), Policy()), merkle=merkle)
    ledger.recover()
    ledger.submit([operator("clear", "UA46000000000026241", 2)])
    assert merkle.size == log.max_seq() == len(_stored(db)) > size
    merkle.close()
    log.close()


def test_reopening_rebuilds_the_same_tree_from_stored_hashes(recorded: Recorded) -> None:
    log = SQLiteLog(recorded.db)
    merkle = MerkleLog(log)
    try:
        assert merkle.load() == recorded.size
        expected = ref_mth([leaf_input(e, 1) for e in log.read()])
        assert merkle.tree.root() == expected
        assert merkle.latest is not None and merkle.latest.tree_size == recorded.heads[-1]
    finally:
        merkle.close()
        log.close()


def test_load_refuses_a_log_shorter_than_its_signed_heads(recorded: Recorded, tamper) -> None:
    tamper(f"DELETE FROM log WHERE seq > {recorded.heads[-1] - 3};"
           f"DELETE FROM merkle_leaves WHERE seq > {recorded.heads[-1] - 3};")
    log = SQLiteLog(recorded.db)
    merkle = MerkleLog(log)
    try:
        with pytest.raises(IntegrityError, match="signed tree head covers"):
            merkle.load()
    finally:
        merkle.close()
        log.close()


def test_appends_must_continue_the_tree(oblasts: RegionSet) -> None:
    log = MemoryLog()
    merkle = MerkleLog(log)
    with pytest.raises(IntegrityError):
        merkle.append([LogEntry(2, "event", json.dumps(raw("tick", 0)), "rec", "x")])
    assert log.max_seq() == 0


def test_heads_are_signed_only_when_the_tree_grew_and_never_go_back_in_time(
    oblasts: RegionSet,
) -> None:
    private = Ed25519PrivateKey.generate()
    log = MemoryLog()
    merkle = MerkleLog(log)
    first = merkle.sign(private, T0)
    assert first is not None and first.tree_size == 0
    assert merkle.sign(private, T0 + timedelta(seconds=5)) is None
    ledger = Ledger(log, lambda: Engine(oblasts, load_catalog(), Policy()), merkle=merkle)
    ledger.submit([raw("tick", 0)])
    second = merkle.sign(private, T0 - timedelta(hours=1))  # the wall clock stepped back
    assert second is not None and second.tree_size == 1 and second.timestamp == first.timestamp
    assert [h.tree_size for h in merkle.heads()] == [0, 1]
    assert merkle.heads(since=first.timestamp) == []


def test_the_signing_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "d" / "log-signing.key"
    key = load_signing_key(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_signing_key(path, create=True)
    assert again.private_bytes_raw() == key.private_bytes_raw()
    with pytest.raises(TocsinError, match="no log signing key"):
        load_signing_key(tmp_path / "elsewhere.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(TocsinError, match="bad.key"):
        load_signing_key(tmp_path / "bad.key")


def test_write_log_helper_writes_heads(tmp_path: Path, oblasts: RegionSet) -> None:
    rec = write_log(tmp_path / "x", oblasts, rounds=3, every=1)
    assert rec.heads == sorted(rec.heads) and len(rec.heads) == 3 and rec.heads[-1] == rec.size
