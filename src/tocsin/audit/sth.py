"""Signed tree heads: a log size, a time and a root hash, signed with Ed25519.

The signed message is the RFC 8785 canonical JSON of
`{"tree_size": n, "timestamp": "...Z", "root_hash": "<base64>"}`, so any JCS implementation
can rebuild it from the published head. Byte strings travel as standard, padded base64 (RFC 4648
§4); decoding is strict (no whitespace, no missing padding, no stray bits) so that one head has
exactly one JSON form.

A key is named by `key_id`: standard base64 of SHA-256 over the raw 32-byte Ed25519 public key,
as RFC 9162 §4.4 names a log by the hash of its key. Keys are stored as unencrypted PKCS#8 PEM;
these functions only convert bytes, and the caller reads and writes the files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tocsin.audit.jcs import MAX_SAFE_INTEGER, canonical_json
from tocsin.audit.merkle import HASH_SIZE

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "TreeHead",
    "format_timestamp",
    "from_json",
    "key_id",
    "private_key_from_pem",
    "private_key_to_pem",
    "public_key_raw",
    "sign_tree_head",
    "sth_message",
    "to_json",
    "verify_tree_head",
]

SIGNATURE_SIZE: Final = 64
PUBLIC_KEY_SIZE: Final = 32

_TIMESTAMP: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A signed statement that the log had `tree_size` entries with `root_hash` at `timestamp`."""

    tree_size: int
    timestamp: str
    root_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_head_fields(self.tree_size, self.timestamp, self.root_hash)
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise ValueError(f"signature: expected {SIGNATURE_SIZE} bytes")


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with milliseconds: `2026-11-25T01:00:00.250Z`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp: the datetime needs a time zone")
    utc = moment.astimezone(UTC)
    # Milliseconds are truncated, never rounded up: a head must not claim a later time than it had.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def sth_message(tree_size: int, timestamp: str, root_hash: bytes) -> bytes:
    """Return the bytes a tree head's signature covers (RFC 8785 JSON of its three fields)."""
    _check_head_fields(tree_size, timestamp, root_hash)
    return canonical_json(
        {"tree_size": tree_size, "timestamp": timestamp, "root_hash": _b64(root_hash)}
    )


def sign_tree_head(
    private_key: Ed25519PrivateKey, tree_size: int, timestamp: str, root_hash: bytes
) -> TreeHead:
    """Sign a tree head; `timestamp` is given by the caller (see `format_timestamp`)."""
    signature = private_key.sign(sth_message(tree_size, timestamp, root_hash))
    return TreeHead(tree_size, timestamp, root_hash, signature)


def verify_tree_head(public_key_raw: bytes, head: TreeHead) -> bool:
    """Check a head's signature; a malformed key (not 32 raw bytes) raises `ValueError`."""
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != PUBLIC_KEY_SIZE:
        raise ValueError(f"public key: expected {PUBLIC_KEY_SIZE} raw Ed25519 bytes")
    key = Ed25519PublicKey.from_public_bytes(public_key_raw)
    try:
        key.verify(head.signature, sth_message(head.tree_size, head.timestamp, head.root_hash))
    except InvalidSignature:
        return False
    return True


def to_json(head: TreeHead) -> dict[str, int | str]:
    """Return the head as a JSON object with base64 byte strings."""
    return {
        "tree_size": head.tree_size,
        "timestamp": head.timestamp,
        "root_hash": _b64(head.root_hash),
        "signature": _b64(head.signature),
    }


def from_json(data: object) -> TreeHead:
    """Parse `to_json`'s form, ignoring unknown fields; `ValueError` names the first bad one."""
    if not isinstance(data, Mapping):
        raise ValueError("tree head: expected a JSON object")
    for name in ("tree_size", "timestamp", "root_hash", "signature"):
        if name not in data:
            raise ValueError(f"{name}: missing")
    tree_size = data["tree_size"]
    timestamp = data["timestamp"]
    if type(tree_size) is not int:
        raise ValueError("tree_size: expected an integer")
    if not isinstance(timestamp, str):
        raise ValueError("timestamp: expected a string")
    return TreeHead(
        tree_size=tree_size,
        timestamp=timestamp,
        root_hash=_unb64("root_hash", data["root_hash"], HASH_SIZE),
        signature=_unb64("signature", data["signature"], SIGNATURE_SIZE),
    )


def key_id(public_key_raw: bytes) -> str:
    """Return a key's id: standard base64 of SHA-256 over its raw 32-byte Ed25519 public key."""
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != PUBLIC_KEY_SIZE:
        raise ValueError(f"public key: expected {PUBLIC_KEY_SIZE} raw Ed25519 bytes")
    return _b64(hashlib.sha256(public_key_raw).digest())


def public_key_raw(private_key: Ed25519PrivateKey) -> bytes:
    """Return the raw 32-byte public key that verifies `private_key`'s signatures."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def private_key_to_pem(private_key: Ed25519PrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 PEM (protect the file, not the bytes)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    """Load an unencrypted PKCS#8 PEM Ed25519 private key; anything else raises `ValueError`."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError is how `cryptography` reports an encrypted key loaded without a password.
        raise ValueError(f"private key: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"private key: expected Ed25519, got {type(key).__name__}")
    return key


def _check_head_fields(tree_size: object, timestamp: object, root_hash: object) -> None:
    """Raise `ValueError` naming the first of the signed fields that is malformed."""
    if type(tree_size) is not int or not 0 <= tree_size <= MAX_SAFE_INTEGER:
        raise ValueError(f"tree_size: expected an integer from 0 to {MAX_SAFE_INTEGER}")
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
        raise ValueError("timestamp: expected RFC 3339 UTC with milliseconds, like ...00.250Z")
    try:
        datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        raise ValueError(f"timestamp: {timestamp!r} is not a real date and time") from None
    if not isinstance(root_hash, bytes) or len(root_hash) != HASH_SIZE:
        raise ValueError(f"root_hash: expected {HASH_SIZE} bytes")


def _b64(raw: bytes) -> str:
    """Encode as standard, padded base64."""
    return base64.b64encode(raw).decode("ascii")


def _unb64(name: str, value: object, size: int) -> bytes:
    """Decode one canonical standard base64 field of `size` bytes, or raise naming it."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError(f"{name}: not standard padded base64") from None
    # Re-encoding catches non-zero padding bits, the one leeway strict decoding still allows.
    if _b64(raw) != value:
        raise ValueError(f"{name}: not canonical base64")
    if len(raw) != size:
        raise ValueError(f"{name}: expected {size} bytes, got {len(raw)}")
    return raw
