"""An operator who can rewrite the data directory and re-sign it: what only a head kept
elsewhere (a saved STH, a witness's cosignature) catches, and what plain `verify` still does."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.record.conftest import T0, Recorded, Tamper
from tocsin.audit import MerkleTree, format_timestamp, key_id, public_key_raw, sign_tree_head
from tocsin.audit import to_json as head_json
from tocsin.audit.witness import cosign, cosignature_to_json
from tocsin.cli import main
from tocsin.logkey import public_key_pem
from tocsin.store import SQLiteLog
from tocsin.store.base import LogEntry
from tocsin.store.merkle import MerkleLog, entry_leaf_hash
from tocsin.verify import verify_data_dir


def _served_head(rec: Recorded, cosigners: tuple[Ed25519PrivateKey, ...] = ()) -> dict[str, Any]:
    """The latest head as `GET /api/v1/log/sth` serves it, with these witnesses' cosignatures."""
    log = SQLiteLog(rec.db)
    merkle = MerkleLog(log)
    try:
        head = merkle.heads()[-1]
    finally:
        merkle.close()
        log.close()
    out: dict[str, Any] = dict(head_json(head))
    out["cosignatures"] = [
        cosignature_to_json(cosign(w, key_id(rec.public_key), head.tree_size, head.root_hash,
                                   1_800_000_000 + i))
        for i, w in enumerate(cosigners)]
    return out


def _save(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _rows(db: Path) -> list[LogEntry]:
    conn = sqlite3.connect(db)
    try:
        return [LogEntry(*r) for r in conn.execute(
            "SELECT seq, kind, body, source, event_id, key_name, cause_seq, recorded_at FROM log "
            "ORDER BY seq")]
    finally:
        conn.close()


def _event_seqs(db: Path) -> list[int]:
    return [e.seq for e in _rows(db) if e.kind == "event"]


def _resign_everything(rec: Recorded, tamper: Tamper) -> None:
    """What an operator holding the key does after editing rows: recompute every stored leaf
    hash and re-sign a head at every size that had one, so the directory agrees with itself."""
    entries = _rows(rec.db)
    conn = sqlite3.connect(rec.db)
    sizes = [r[0] for r in conn.execute("SELECT tree_size FROM sths ORDER BY id")]
    conn.close()
    tree = MerkleTree()
    leaves = []
    for e in entries:
        digest = entry_leaf_hash(e, 1)
        tree.append(digest)
        leaves.append(f"({e.seq}, X'{digest.hex()}')")
    heads = []
    for i, size in enumerate(sizes):
        head = sign_tree_head(rec.key, size, format_timestamp(T0.replace(hour=3 + i)),
                              tree.root_at(size))
        heads.append(f"({size}, '{head.timestamp}', X'{head.root_hash.hex()}', "
                     f"X'{head.signature.hex()}', '{key_id(rec.public_key)}')")
    tamper("DELETE FROM merkle_leaves; DELETE FROM sths;"
           f"INSERT INTO merkle_leaves (seq, hash) VALUES {', '.join(leaves)};"
           + (f"INSERT INTO sths (tree_size, timestamp, root_hash, signature, key_id) VALUES "
              f"{', '.join(heads)};" if heads else ""))


def _cli(rec: Recorded, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["verify", "--data-dir", str(rec.data_dir), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# --- (a) the tail cut at an event boundary, with its hashes and heads --------------------------


def test_a_tail_cut_at_an_event_boundary_is_found_by_a_saved_head(
    recorded: Recorded, tamper: Tamper, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _save(tmp_path / "sth.json", _served_head(recorded))
    assert json.loads(head.read_text())["tree_size"] == recorded.size
    keep = next(s for s in _event_seqs(recorded.db) if s > recorded.heads[-2] + 3) - 1
    tamper(f"DELETE FROM log WHERE seq > {keep}; DELETE FROM merkle_leaves WHERE seq > {keep};"
           f"DELETE FROM sths WHERE tree_size > {keep};")
    # the directory agrees with itself: on its own, verify cannot tell
    assert verify_data_dir(recorded.data_dir, recorded.public_key).ok
    assert _cli(recorded, capsys)[0] == 0
    report = verify_data_dir(recorded.data_dir, recorded.public_key,
                             anchor=_anchor(head))
    assert report.first_bad_index == keep, report.problems
    code, out = _cli(recorded, capsys, "--head", str(head))
    assert code == 1
    assert f"first bad index {keep}" in out
    assert f"covers {recorded.size} entries; the log has only {keep}" in out


def _anchor(path: Path) -> Any:
    from tocsin.anchor import load_anchor

    return load_anchor(path)


# --- (b) key_name edited and every head re-signed with the log's own key ------------------------


def test_an_edited_key_name_with_every_head_re_signed_is_found_by_a_saved_head(
    recorded: Recorded, tamper: Tamper, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _save(tmp_path / "sth.json", _served_head(recorded))
    seq = next(e.seq for e in _rows(recorded.db) if e.key_name == "duty-key" and e.seq > 40)
    tamper(f"UPDATE log SET key_name = 'someone-else' WHERE seq = {seq}")
    assert verify_data_dir(recorded.data_dir, recorded.public_key).first_bad_index == seq - 1
    _resign_everything(recorded, tamper)
    assert verify_data_dir(recorded.data_dir, recorded.public_key).ok  # it agrees with itself
    code, out = _cli(recorded, capsys, "--head", str(head))
    assert code == 1
    assert f"root at tree_size {recorded.size} differs" in out and "rewritten" in out


# --- (c) recorded_at edited ---------------------------------------------------------------------


def test_an_edited_recorded_at_is_found_by_its_leaf_hash(
    recorded: Recorded, tamper: Tamper, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = _event_seqs(recorded.db)[7]
    tamper(f"UPDATE log SET recorded_at = '2026-11-25T00:00:00Z' WHERE seq = {seq}")
    code, out = _cli(recorded, capsys)
    assert code == 1 and f"first bad index {seq - 1} (seq {seq})" in out


def test_a_deleted_recorded_at_is_found_too(recorded: Recorded, tamper: Tamper) -> None:
    seq = _event_seqs(recorded.db)[3]
    tamper(f"UPDATE log SET recorded_at = NULL WHERE seq = {seq}")
    assert verify_data_dir(recorded.data_dir, recorded.public_key).first_bad_index == seq - 1


def test_moving_where_leaves_start_covering_recorded_at_is_found(
    recorded: Recorded, tamper: Tamper
) -> None:
    tamper(f"UPDATE meta SET value = '{recorded.size + 1}' WHERE key = 'leaf_times_from'")
    report = verify_data_dir(recorded.data_dir, recorded.public_key)
    assert report.first_bad_index == 0, report.problems


def test_an_edited_recorded_at_re_signed_is_found_by_a_saved_head(
    recorded: Recorded, tamper: Tamper, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _save(tmp_path / "sth.json", _served_head(recorded))
    seq = _event_seqs(recorded.db)[-4]
    tamper(f"UPDATE log SET recorded_at = '2026-11-25T09:00:00Z' WHERE seq = {seq}")
    _resign_everything(recorded, tamper)
    assert verify_data_dir(recorded.data_dir, recorded.public_key).ok
    code, out = _cli(recorded, capsys, "--head", str(head))
    assert code == 1 and "rewritten" in out


# --- the saved head itself --------------------------------------------------------------------


def test_an_untouched_log_is_consistent_with_its_saved_head(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _save(tmp_path / "sth.json", _served_head(recorded))
    code, out = _cli(recorded, capsys, "--head", str(head))
    assert code == 0, out
    assert "consistent with the head in" in out


def test_a_forged_or_foreign_head_is_refused(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _served_head(recorded)
    data["tree_size"] += 5  # the signature no longer covers it
    code, out = _cli(recorded, capsys, "--head", str(_save(tmp_path / "forged.json", data)))
    assert code == 1 and "bad signature" in out
    code, out = _cli(recorded, capsys, "--head", str(tmp_path / "missing.json"))
    assert code == 2 and "--head" in out
    code, out = _cli(recorded, capsys, "--head", str(_save(tmp_path / "bad.json", {"x": 1})))
    assert code == 2 and "tree_size: missing" in out


# --- witnesses ---------------------------------------------------------------------------------


def _witness_pem(tmp_path: Path, key: Ed25519PrivateKey, name: str) -> Path:
    path = tmp_path / f"{name}.pub"
    path.write_bytes(public_key_pem(public_key_raw(key)))
    return path


def test_verify_requires_a_head_co_signed_by_the_witness(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w1, w2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    p1, p2 = _witness_pem(tmp_path, w1, "w1"), _witness_pem(tmp_path, w2, "w2")
    cosigned = _save(tmp_path / "sth.json", _served_head(recorded, (w1,)))
    assert _cli(recorded, capsys, "--head", str(cosigned), "--witness-key", str(p1))[0] == 0
    code, out = _cli(recorded, capsys, "--head", str(cosigned), "--witness-key", str(p1),
                     "--witness-key", str(p2))
    assert code == 1 and f"not co-signed by witness {key_id(public_key_raw(w2))}" in out
    # a cosignature of another tree, or of the same tree of another log, does not count
    moved = _served_head(recorded)
    root = base64.b64decode(moved["root_hash"])
    moved["cosignatures"] = [
        cosignature_to_json(cosign(w1, key_id(recorded.public_key), moved["tree_size"] - 1, root,
                                   1_800_000_000)),
        cosignature_to_json(cosign(w1, key_id(b"\x07" * 32), moved["tree_size"], root,
                                   1_800_000_000))]
    code, out = _cli(recorded, capsys, "--head", str(_save(tmp_path / "moved.json", moved)),
                     "--witness-key", str(p1))
    assert code == 1 and "not co-signed by witness" in out
    code, _ = _cli(recorded, capsys, "--witness-key", str(p1))  # none kept in the directory
    assert code == 1


def test_cosignatures_kept_in_the_data_directory_pin_the_tree(
    recorded: Recorded, tamper: Tamper, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = Ed25519PrivateKey.generate()
    pem = _witness_pem(tmp_path, w, "w")
    head = _served_head(recorded)
    root = base64.b64decode(head["root_hash"])
    with SQLiteLog(recorded.db) as store:
        store.add_cosignature(
            head["tree_size"], root,
            cosign(w, key_id(recorded.public_key), head["tree_size"], root, 1_800_000_000))
    code, out = _cli(recorded, capsys, "--witness-key", str(pem))
    assert code == 0 and f"the tree of {recorded.size} entries co-signed by witness" in out
    seq = next(e.seq for e in _rows(recorded.db) if e.key_name == "duty-key")
    tamper(f"UPDATE log SET key_name = 'someone-else' WHERE seq = {seq}")
    _resign_everything(recorded, tamper)
    assert _cli(recorded, capsys)[0] == 0  # re-signed: only the witness can tell
    code, out = _cli(recorded, capsys, "--witness-key", str(pem))
    assert code == 1 and "rewritten" in out
    tamper("DELETE FROM cosignatures")
    code, out = _cli(recorded, capsys, "--witness-key", str(pem))
    assert code == 1 and "no tree here is co-signed by witness" in out
