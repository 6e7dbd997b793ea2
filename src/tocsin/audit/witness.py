"""Cosignatures: a witness's signed statement that a tree head extends every head it saw before.

A witness (as in Certificate Transparency's gossip and sigsum's witnesses, and C2SP's
tlog-cosignature) keeps the last head it verified of a log; for each newer head it checks a
consistency proof and then signs, with its own Ed25519 key, the JCS of

    {"cosignature": "tocsin/v1", "log": <key id of the log>, "time": <witness clock, Unix s>,
     "tree_size": n, "root_hash": <base64>}

It names the log by its key id, so a cosignature cannot be carried over to another log, and
says nothing about the head's own timestamp or signature: a cosignature vouches for a tree
(size and root), which every head over that tree shares. Like C2SP's `cosignature/v1` it
carries the witness's time, so a client can tell how fresh the witness's view was.

A cosignature travels as `{"key_id": <witness key id>, "time": <int>, "signature": <base64>}`,
where the witness key id is the base64 SHA-256 of its raw public key (as for the log's key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tocsin.audit.jcs import MAX_SAFE_INTEGER, canonical_json
from tocsin.audit.merkle import HASH_SIZE
from tocsin.audit.sth import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    _b64,
    _unb64,
    key_id,
    public_key_raw,
)

__all__ = [
    "COSIGNATURE_VERSION",
    "Cosignature",
    "cosign",
    "cosignature_from_json",
    "cosignature_message",
    "cosignature_to_json",
    "verify_cosignature",
]

COSIGNATURE_VERSION: Final = "tocsin/v1"
_KEY_ID_LEN: Final = 44  # base64 of 32 bytes


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A witness's signature over (log, tree_size, root_hash) at its own `time`."""

    key_id: str
    time: int
    signature: bytes


def cosignature_message(log_key_id: str, tree_size: int, root_hash: bytes, time: int) -> bytes:
    """The bytes a cosignature signs."""
    if type(tree_size) is not int or not 0 <= tree_size <= MAX_SAFE_INTEGER:
        raise ValueError("tree_size: expected an integer from 0 to 2^53 - 1")
    if type(time) is not int or not 0 <= time <= MAX_SAFE_INTEGER:
        raise ValueError("time: expected Unix seconds")
    if not isinstance(root_hash, bytes) or len(root_hash) != HASH_SIZE:
        raise ValueError(f"root_hash: expected {HASH_SIZE} bytes")
    return canonical_json({"cosignature": COSIGNATURE_VERSION, "log": log_key_id,
                           "time": time, "tree_size": tree_size, "root_hash": _b64(root_hash)})


def cosign(
    key: Ed25519PrivateKey, log_key_id: str, tree_size: int, root_hash: bytes, time: int
) -> Cosignature:
    """Cosign a tree (call only after checking it extends what the witness saw before)."""
    signature = key.sign(cosignature_message(log_key_id, tree_size, root_hash, time))
    return Cosignature(key_id(public_key_raw(key)), time, signature)


def verify_cosignature(
    witness_raw: bytes, log_key_id: str, tree_size: int, root_hash: bytes, cosig: Cosignature
) -> bool:
    """Whether `cosig` is `witness_raw`'s valid cosignature of this tree of this log."""
    if len(witness_raw) != PUBLIC_KEY_SIZE or cosig.key_id != key_id(witness_raw):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(witness_raw).verify(
            cosig.signature, cosignature_message(log_key_id, tree_size, root_hash, cosig.time))
    except (InvalidSignature, ValueError):
        return False
    return True


def cosignature_to_json(cosig: Cosignature) -> dict[str, Any]:
    """The JSON form of a cosignature."""
    return {"key_id": cosig.key_id, "time": cosig.time, "signature": _b64(cosig.signature)}


def cosignature_from_json(data: object, name: str = "cosignature") -> Cosignature:
    """Parse the JSON form; `ValueError` names the first bad field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{name}: expected a JSON object")
    kid, time = data.get("key_id"), data.get("time")
    if not isinstance(kid, str) or len(kid) != _KEY_ID_LEN:
        raise ValueError(f"{name}.key_id: expected the base64 SHA-256 of a witness key")
    _unb64(f"{name}.key_id", kid, HASH_SIZE)
    if type(time) is not int or not 0 <= time <= MAX_SAFE_INTEGER:
        raise ValueError(f"{name}.time: expected Unix seconds (an integer)")
    signature = _unb64(f"{name}.signature", data.get("signature"), SIGNATURE_SIZE)
    return Cosignature(kid, time, signature)
