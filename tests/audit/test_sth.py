"""Signed tree heads: message form, signing, JSON form, keys."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tocsin.audit import (
    MerkleTree,
    TreeHead,
    format_timestamp,
    from_json,
    key_id,
    leaf_hash,
    private_key_from_pem,
    private_key_to_pem,
    public_key_raw,
    sign_tree_head,
    sth_message,
    to_json,
    verify_tree_head,
)

# RFC 8032 §7.1 TEST 1: a fixed key, so signatures (deterministic in Ed25519) are fixed too.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
# The 8-leaf Certificate Transparency test tree's root.
ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
TIME = "2026-11-25T01:00:00.250Z"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


@pytest.fixture
def head(key: Ed25519PrivateKey) -> TreeHead:
    return sign_tree_head(key, 8, TIME, ROOT)


def flip(data: bytes, bit: int) -> bytes:
    """Return `data` with one bit inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_the_key_is_rfc_8032s(key: Ed25519PrivateKey) -> None:
    assert public_key_raw(key) == PUBLIC


def test_message_is_the_canonical_json_of_the_three_fields() -> None:
    root_b64 = base64.b64encode(ROOT).decode()
    assert root_b64 == "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="
    expected = f'{{"root_hash":"{root_b64}","timestamp":"{TIME}","tree_size":8}}'
    assert sth_message(8, TIME, ROOT) == expected.encode()


def test_sign_and_verify(key: Ed25519PrivateKey, head: TreeHead) -> None:
    assert head == TreeHead(8, TIME, ROOT, head.signature)
    assert len(head.signature) == 64
    assert verify_tree_head(PUBLIC, head)
    # Ed25519 is deterministic, so the same head signs to the same bytes every time.
    assert sign_tree_head(key, 8, TIME, ROOT) == head


def test_a_real_tree_head_verifies(key: Ed25519PrivateKey) -> None:
    tree = MerkleTree.from_leaves(leaf_hash(i.to_bytes(2, "big")) for i in range(1000))
    head = sign_tree_head(key, tree.size, TIME, tree.root())
    assert verify_tree_head(public_key_raw(key), head)
    assert head.root_hash == tree.root_at(1000)


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 9},
        {"tree_size": 0},
        {"timestamp": "2026-11-25T01:00:00.251Z"},
        {"root_hash": flip(ROOT, 0)},
        {"root_hash": flip(ROOT, 255)},
    ],
)
def test_any_tampered_field_fails(head: TreeHead, change: dict[str, object]) -> None:
    assert not verify_tree_head(PUBLIC, dataclasses.replace(head, **change))  # type: ignore[arg-type]


@pytest.mark.parametrize("bit", [0, 7, 100, 511])
def test_a_tampered_signature_fails(head: TreeHead, bit: int) -> None:
    assert not verify_tree_head(
        PUBLIC, dataclasses.replace(head, signature=flip(head.signature, bit))
    )


def test_another_key_fails(head: TreeHead) -> None:
    other = public_key_raw(Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
    assert not verify_tree_head(other, head)


@pytest.mark.parametrize("bad", [b"", PUBLIC[:31], PUBLIC + b"\x00"])
def test_a_malformed_public_key_raises(head: TreeHead, bad: bytes) -> None:
    with pytest.raises(ValueError, match="public key"):
        verify_tree_head(bad, head)


# --- JSON form ---


def test_json_round_trip(head: TreeHead) -> None:
    data = to_json(head)
    assert data == {
        "tree_size": 8,
        "timestamp": TIME,
        "root_hash": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "signature": base64.b64encode(head.signature).decode(),
    }
    assert from_json(json.loads(json.dumps(data))) == head
    assert from_json({**data, "key_id": "ignored", "extension": [1]}) == head


def good_json() -> dict[str, object]:
    return {
        "tree_size": 8,
        "timestamp": TIME,
        "root_hash": base64.b64encode(ROOT).decode(),
        "signature": base64.b64encode(b"\x00" * 64).decode(),
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tree_size", -1),
        ("tree_size", True),
        ("tree_size", 8.0),
        ("tree_size", "8"),
        ("tree_size", 2**53),
        ("timestamp", "2026-11-25T01:00:00Z"),
        ("timestamp", "2026-11-25T01:00:00.25Z"),
        ("timestamp", "2026-11-25T01:00:00.250+00:00"),
        ("timestamp", "2026-11-25t01:00:00.250z"),
        ("timestamp", "2026-02-30T01:00:00.250Z"),
        ("timestamp", "2026-11-25T24:00:00.250Z"),
        ("timestamp", " 2026-11-25T01:00:00.250Z"),
        ("timestamp", 1764032400),
        ("root_hash", base64.b64encode(ROOT[:31]).decode()),
        ("root_hash", base64.b64encode(ROOT).decode().rstrip("=")),
        ("root_hash", base64.urlsafe_b64encode(b"\xff" * 32).decode()),
        ("root_hash", " " + base64.b64encode(ROOT).decode()),
        ("root_hash", base64.b64encode(ROOT).decode()[:-2] + "h="),  # stray low bits
        ("root_hash", ROOT.hex()),
        ("root_hash", "Xcnaeac\u00e9"),
        ("root_hash", None),
        ("signature", base64.b64encode(b"\x00" * 63).decode()),
        ("signature", ""),
        ("signature", 0),
    ],
)
def test_from_json_names_the_bad_field(field: str, value: object) -> None:
    data = good_json()
    data[field] = value
    with pytest.raises(ValueError, match=f"^{field}: "):
        from_json(data)


@pytest.mark.parametrize("field", ["tree_size", "timestamp", "root_hash", "signature"])
def test_from_json_names_a_missing_field(field: str) -> None:
    data = good_json()
    del data[field]
    with pytest.raises(ValueError, match=f"^{field}: missing"):
        from_json(data)


@pytest.mark.parametrize("data", [[], "head", None, 8])
def test_from_json_wants_an_object(data: object) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        from_json(data)


def test_heads_cannot_be_built_malformed() -> None:
    with pytest.raises(ValueError, match="^signature: "):
        TreeHead(8, TIME, ROOT, b"\x00" * 63)
    with pytest.raises(ValueError, match="^root_hash: "):
        TreeHead(8, TIME, ROOT.hex().encode(), b"\x00" * 64)
    with pytest.raises(ValueError, match="^tree_size: "):
        sth_message(-1, TIME, ROOT)
    with pytest.raises(ValueError, match="^timestamp: "):
        sth_message(8, "yesterday", ROOT)


# --- Time and keys ---


def test_format_timestamp() -> None:
    moment = datetime(2026, 11, 25, 1, 0, 0, 250999, tzinfo=UTC)
    assert format_timestamp(moment) == TIME
    kyiv = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2026, 11, 25, 3, 0, 0, 250000, tzinfo=kyiv)) == TIME
    assert format_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    with pytest.raises(ValueError, match="time zone"):
        format_timestamp(datetime(2026, 11, 25))
    # Whatever it formats, a head accepts.
    sth_message(0, format_timestamp(datetime(1, 1, 1, tzinfo=UTC)), ROOT)


def test_key_id_is_base64_sha256_of_the_raw_public_key() -> None:
    expected = base64.b64encode(hashlib.sha256(PUBLIC).digest()).decode()
    assert key_id(PUBLIC) == expected
    assert len(expected) == 44
    with pytest.raises(ValueError, match="public key"):
        key_id(PUBLIC[:16])


def test_pem_round_trip(key: Ed25519PrivateKey) -> None:
    pem = private_key_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = private_key_from_pem(pem)
    assert public_key_raw(loaded) == PUBLIC
    assert sign_tree_head(loaded, 8, TIME, ROOT) == sign_tree_head(key, 8, TIME, ROOT)


def test_pem_refuses_other_keys_and_garbage(key: Ed25519PrivateKey) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="Ed25519"):
        private_key_from_pem(ec_pem)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError, match="private key"):
        private_key_from_pem(encrypted)
    with pytest.raises(ValueError, match="private key"):
        private_key_from_pem(b"not a key")
