"""Witnesses: co-signing over the real HTTP API, the server's checks of what it is sent, and a
rewound or forked log caught by a running witness (real `tocsin serve` and `tocsin witness`)."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.record.conftest import T0
from tests.record.test_api import _now_events, _wait_for_head, served
from tests.servers import create_key, eventually, free_port, start_serve, stop, wait_ready
from tocsin.audit import from_json, key_id, private_key_to_pem, public_key_raw
from tocsin.audit.witness import cosign, cosignature_to_json
from tocsin.cli import main
from tocsin.logkey import public_key_pem
from tocsin.witness import HISTORY, SplitView, Witness, load_witness_keys


def _witness_key(tmp_path: Path, name: str) -> tuple[Ed25519PrivateKey, Path, Path]:
    """A witness key file, its public PEM, and a witnesses file listing it."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path / f"{name}.key"
    path.write_bytes(private_key_to_pem(key))
    path.chmod(0o600)
    pem = tmp_path / f"{name}.pub"
    pem.write_bytes(public_key_pem(public_key_raw(key)))
    listing = tmp_path / f"{name}-witnesses.txt"
    listing.write_text(f"# trusted witnesses\n{base64.b64encode(public_key_raw(key)).decode()} "
                       f"{name}\n", encoding="utf-8")
    return key, pem, listing


def _post_events(client: httpx.Client, key: str, n: int) -> None:
    for ev in _now_events(n):
        r = client.post("/api/v1/events", json=ev, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code < 300, r.text


def test_the_witness_co_signs_each_new_head_and_the_server_serves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wkey, wpem, listing = _witness_key(tmp_path, "w1")
    state = tmp_path / "witness.json"
    with served(tmp_path / "d", witnesses=listing) as (url, service, keys), \
            httpx.Client(base_url=url, timeout=5) as client:
        witness = Witness(client, url, state, wkey)
        _post_events(client, keys["operator"], 4)
        _wait_for_head(client, service.log.max_seq())
        first = witness.step()
        assert first is not None and first.tree_size == service.log.max_seq()
        sth = client.get("/api/v1/log/sth").json()
        assert sth["tree_size"] == first.tree_size
        assert [c["key_id"] for c in sth["cosignatures"]] == [key_id(public_key_raw(wkey))]
        assert witness.step() is None  # nothing new: nothing signed again
        conn = sqlite3.connect(tmp_path / "d" / "tocsin.db")
        conn.execute("DELETE FROM cosignatures")  # lost by the server: the witness posts again
        conn.commit()
        conn.close()
        assert client.get("/api/v1/log/sth").json()["cosignatures"] == []
        assert witness.step() is None
        assert len(client.get("/api/v1/log/sth").json()["cosignatures"]) == 1

        _post_events(client, keys["operator"], 3)
        _wait_for_head(client, service.log.max_seq())
        second = witness.step()
        assert second is not None and second.tree_size > first.tree_size
        saved = json.loads(state.read_text())
        assert [s["tree_size"] for s in saved["seen"]] == [first.tree_size, second.tree_size]
        older = client.get("/api/v1/log/cosignatures", params={"tree_size": first.tree_size})
        assert older.status_code == 200 and len(older.json()["cosignatures"]) == 1

        # the witness's state is a head kept elsewhere: `verify --head` takes it as is
        data_dir = str(tmp_path / "d")
        assert main(["verify", "--data-dir", data_dir, "--head", str(state),
                     "--witness-key", str(wpem)]) == 0
        assert "consistent with the head in" in capsys.readouterr().err
        assert main(["verify", "--data-dir", data_dir, "--witness-key", str(wpem)]) == 0
        capsys.readouterr()


def _body(head: dict[str, Any], cosig: dict[str, Any]) -> dict[str, Any]:
    return {"tree_size": head["tree_size"], "root_hash": head["root_hash"], "cosignature": cosig}


def test_the_server_keeps_only_valid_cosignatures_of_trusted_witnesses(tmp_path: Path) -> None:
    wkey, _, listing = _witness_key(tmp_path, "w1")
    stranger = Ed25519PrivateKey.generate()
    with served(tmp_path / "d", witnesses=listing) as (url, service, keys), \
            httpx.Client(base_url=url, timeout=5) as client:
        _post_events(client, keys["operator"], 3)
        _wait_for_head(client, service.log.max_seq())
        head = client.get("/api/v1/log/sth").json()
        size, root = head["tree_size"], base64.b64decode(head["root_hash"])
        log_kid = key_id(public_key_raw(service.log_key))
        post = "/api/v1/log/cosignatures"

        def send(body: Any, status: int, field: str | None = None) -> Any:
            r = client.post(post, json=body)
            assert r.status_code == status, r.text
            if field is not None:
                assert [e["field"] for e in r.json()["errors"]] == [field], r.text
            return r.json()

        good = cosignature_to_json(cosign(wkey, log_kid, size, root, 1_800_000_000))
        foreign = cosignature_to_json(cosign(stranger, log_kid, size, root, 1_800_000_000))
        r = client.post(post, json=_body(head, foreign))
        assert r.status_code == 403 and "not a witness this server trusts" in r.text
        other_log = cosignature_to_json(cosign(wkey, key_id(b"\x01" * 32), size, root, 1))
        send(_body(head, other_log), 422, "cosignature.signature")
        wrong_root = dict(_body(head, good), root_hash=base64.b64encode(b"\x02" * 32).decode())
        send(wrong_root, 422, "root_hash")
        send(dict(_body(head, good), tree_size=size + 10**6), 422, "tree_size")
        send(dict(_body(head, good), tree_size="12"), 422, "tree_size")
        send(_body(head, dict(good, time=-1)), 422, "cosignature.time")
        send(_body(head, dict(good, signature="AAAA")), 422, "cosignature.signature")
        send([1, 2], 422, "(body)")
        r = client.post(post, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        assert client.get("/api/v1/log/sth").json()["cosignatures"] == []  # nothing kept yet

        assert send(_body(head, good), 201) == {"kept": True, "witness": "w1"}
        assert send(_body(head, good), 200) == {"kept": False, "witness": "w1"}  # idempotent
        served_cosigs = client.get("/api/v1/log/sth").json()["cosignatures"]
        assert served_cosigs == [good]


def test_the_witness_list_is_bounded_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    keys = [base64.b64encode(public_key_raw(Ed25519PrivateKey.generate())).decode()
            for _ in range(33)]
    path.write_text("\n".join(keys) + "\n", encoding="utf-8")
    with pytest.raises(Exception, match="more than 32 witnesses"):
        load_witness_keys(path)
    path.write_text(keys[0] + " a\nnot-a-key b\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"w.txt:2: expected a base64 Ed25519 public key"):
        load_witness_keys(path)


def test_a_fork_is_caught_and_located_by_the_witness(tmp_path: Path) -> None:
    wkey, _, listing = _witness_key(tmp_path, "w1")
    state = tmp_path / "witness.json"
    first_dir, fork_dir = tmp_path / "a", tmp_path / "b"
    with served(first_dir, witnesses=listing) as (url, service, keys), \
            httpx.Client(base_url=url, timeout=5) as client:
        _post_events(client, keys["operator"], 4)
        _wait_for_head(client, service.log.max_seq())
        witness = Witness(client, url, state, wkey)
        shared = witness.step()
        assert shared is not None
    shutil.copytree(first_dir, fork_dir)  # the same log and key, from here on two histories
    with served(first_dir, witnesses=listing) as (url, service, keys), \
            httpx.Client(base_url=url, timeout=5) as client:
        _post_events(client, keys["operator"], 2)
        _wait_for_head(client, service.log.max_seq())
        seen = Witness(client, url, state, wkey).step()
        assert seen is not None and seen.tree_size > shared.tree_size
    with served(fork_dir, witnesses=listing) as (url, service, keys), \
            httpx.Client(base_url=url, timeout=5) as client:
        _post_events(client, keys["operator"], 5)  # longer than what the witness saw
        _wait_for_head(client, service.log.max_seq())
        assert service.log.max_seq() > seen.tree_size
        with pytest.raises(SplitView) as caught:
            Witness(client, url, state, wkey).step()
    message = str(caught.value)
    assert f"the witness verified tree_size {seen.tree_size}" in message
    assert f"agree up to tree_size {shared.tree_size}" in message
    assert f"split at a leaf index from {shared.tree_size} to {seen.tree_size - 1}" in message
    assert json.loads(state.read_text())["sth"]["tree_size"] == seen.tree_size  # kept as it was
    assert HISTORY >= 2


def _cut_tail(db: Path, keep_below: int) -> int:
    """As an attacker with the server stopped: drop the append-only triggers and remove the
    tail from the last event boundary before `keep_below`, with its hashes, heads and
    cosignatures; the seq kept."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        keep = conn.execute("SELECT MAX(seq) - 1 FROM log WHERE kind = 'event' AND seq < ?",
                            (keep_below,)).fetchone()[0]
        for trigger in ("log_no_update", "log_no_delete", "merkle_leaves_no_update",
                        "merkle_leaves_no_delete", "sths_no_update", "sths_no_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.executescript(
            f"DELETE FROM log WHERE seq > {keep}; DELETE FROM merkle_leaves WHERE seq > {keep};"
            f"DELETE FROM sths WHERE tree_size > {keep};"
            f"DELETE FROM cosignatures WHERE tree_size > {keep};")
    finally:
        conn.close()
    return int(keep)


def _head_beyond(client: httpx.Client, size: int) -> int:
    """The size of the first signed head larger than `size`."""

    def grown() -> int:
        now = int(client.get("/api/v1/log/sth").json()["tree_size"])
        return now if now > size else 0

    result: int = eventually(grown, "a head over the new events", 90)
    return result


def test_a_rewound_server_is_caught_by_a_running_witness(tmp_path: Path) -> None:
    _, wpem, listing = _witness_key(tmp_path, "w1")
    data_dir, state = tmp_path / "d", tmp_path / "witness.json"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    operator = create_key("operator", "--data-dir", str(data_dir), "--source", "rec")
    serve_args = ["--data-dir", str(data_dir), "--port", str(port), "--regions", "ua-oblasts",
                  "--witnesses", str(listing)]
    env = {"TOCSIN_STH_INTERVAL_S": "0.2"}
    server_log, witness_log = tmp_path / "serve.log", tmp_path / "witness.log"
    server = start_serve(serve_args, server_log, env=env)
    witness: subprocess.Popen[bytes] | None = None
    try:
        wait_ready(server, base, server_log.read_text)
        with witness_log.open("wb") as out:
            witness = subprocess.Popen(
                [sys.executable, "-m", "tocsin", "witness", "--url", base, "--state", str(state),
                 "--key", str(tmp_path / "w1.key"), "--interval", "1", "--timeout", "5"],
                stdout=out, stderr=subprocess.STDOUT)

        def witnessed() -> int:
            try:
                return int(json.loads(state.read_text())["sth"]["tree_size"])
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                return -1

        sizes = []
        with httpx.Client(base_url=base, timeout=5) as client:
            for n in (4, 6):
                _post_events(client, operator, n)
                want = _head_beyond(client, witnessed())

                def caught_up(w: int = want) -> bool:
                    return witnessed() >= w

                eventually(caught_up, "the witness to co-sign", 90)
                sizes.append(witnessed())
            sth = client.get("/api/v1/log/sth").json()
            assert sth["cosignatures"], sth  # the server serves what the witness posted
        saved_head = tmp_path / "sth.json"
        saved_head.write_text(json.dumps(sth))
        assert stop(server) == 0

        keep = _cut_tail(data_dir / "tocsin.db", sizes[1])
        assert sizes[0] <= keep < sizes[1]
        server = start_serve(serve_args, server_log, env=env, append=True)
        wait_ready(server, base, server_log.read_text)

        assert witness.wait(120) == 1, witness_log.read_text()
        said = witness_log.read_text()
        assert f"the witness verified tree_size {sizes[1]}" in said
        assert f"the server now serves tree_size {keep}" in said
        assert "(the log was rewound)" in said
        assert f"agree up to tree_size {sizes[0]}" in said or \
            f"agree up to tree_size {keep}" in said, said
        assert witnessed() == sizes[1]  # the witness's view is not rolled back with the log

        # offline, the witness's state (or the saved STH) shows the cut on the data directory
        for head in (state, saved_head):
            done = subprocess.run(
                [sys.executable, "-m", "tocsin", "verify", "--data-dir", str(data_dir),
                 "--head", str(head), "--witness-key", str(wpem)],
                capture_output=True, text=True, timeout=120)
            assert done.returncode == 1, done.stdout + done.stderr
            assert f"first bad index {keep}" in done.stderr
            assert from_json(json.loads(head.read_text()).get("sth", json.loads(
                head.read_text()))).tree_size == sizes[1]
    finally:
        if witness is not None and witness.poll() is None:
            witness.terminate()
            witness.wait(10)
        stop(server)


def test_a_hostile_server_cannot_make_the_witness_sign_or_swell(tmp_path: Path) -> None:
    """Answers too large, heads with bad signatures and junk proofs are errors to retry later,
    never cosignatures."""
    log_key = Ed25519PrivateKey.generate()
    raw = public_key_raw(log_key)
    from tocsin.audit import format_timestamp, sign_tree_head
    from tocsin.audit import to_json as head_json
    from tocsin.errors import OperationalError

    good = sign_tree_head(log_key, 5, format_timestamp(T0), b"\x05" * 32)
    bigger = sign_tree_head(log_key, 9, format_timestamp(T0), b"\x09" * 32)
    answers: dict[str, Any] = {
        "/api/v1/log/key": {"algorithm": "Ed25519", "public_key": base64.b64encode(raw).decode(),
                            "key_id": key_id(raw)},
        "/api/v1/log/sth": head_json(good),
    }
    posted: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(json.loads(request.content))
            return httpx.Response(201, json={"kept": True})
        answer = answers[request.url.path]
        if answer == "huge":
            return httpx.Response(200, content=b"[" + b"0," * (1 << 20) + b"0]")
        return httpx.Response(200, json=answer)

    state = tmp_path / "w.json"
    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://log") as client:
        witness = Witness(client, "http://log", state, Ed25519PrivateKey.generate())
        assert witness.step() == good and len(posted) == 1
        answers["/api/v1/log/sth"] = dict(head_json(bigger), tree_size=10)  # signature broken
        with pytest.raises(OperationalError, match="bad signature"):
            witness.step()
        answers["/api/v1/log/sth"] = head_json(bigger)
        answers["/api/v1/log/proof/consistency"] = "huge"
        with pytest.raises(OperationalError, match="larger than"):
            witness.step()
        answers["/api/v1/log/proof/consistency"] = {"consistency_path": ["not base64!"]}
        with pytest.raises(OperationalError, match="not base64"):
            witness.step()
        answers["/api/v1/log/proof/consistency"] = {"consistency_path": []}
        with pytest.raises(SplitView, match="split view"):  # a proof that does not hold
            witness.step()
    assert len(posted) == 1 and witness.last == good


def test_the_witness_command_makes_its_key_and_polls_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, state = tmp_path / "w" / "witness.key", tmp_path / "state.json"
    _, _, listing = _witness_key(tmp_path, "unused")
    with served(tmp_path / "d", witnesses=listing) as (url, service, _keys), \
            httpx.Client(base_url=url) as client:
        _wait_for_head(client, service.log.max_seq())
        args = ["witness", "--url", url, "--state", str(state), "--key", str(key), "--once"]
        assert main(args) == 0
        out = capsys.readouterr()
        made = load_signing_key_raw(key)
        assert f"{base64.b64encode(made).decode()} witness" in out.err  # the operator's line
        assert (key.parent / "witness.key.pub").is_file()
        assert "co-signed tree_size" in out.out and state.is_file()
        assert main(args) == 0 and "no new head" in capsys.readouterr().out
        other = tmp_path / "other-log.pub"
        other.write_bytes(public_key_pem(public_key_raw(Ed25519PrivateKey.generate())))
        assert main([*args, "--log-public-key", str(other)]) == 2  # not the key it pinned
        assert "pins log key" in capsys.readouterr().err
        fresh = ["witness", "--url", url, "--state", str(tmp_path / "s2.json"), "--key",
                 str(key), "--once", "--log-public-key", str(other)]
        assert main(fresh) == 1  # the server signs with another key than the one given
        assert "the log key changed" in capsys.readouterr().err
    port = free_port()
    assert main(["witness", "--url", f"http://127.0.0.1:{port}", "--state",
                 str(tmp_path / "s3.json"), "--key", str(key), "--once", "--timeout", "2"]) == 3
    assert "/api/v1/log/key" in capsys.readouterr().err
    assert main(["witness", "--url", "http://x", "--state", str(state), "--key", str(key),
                 "--interval", "0.1"]) == 2


def load_signing_key_raw(path: Path) -> bytes:
    from tocsin.store.merkle import load_signing_key

    return public_key_raw(load_signing_key(path))
