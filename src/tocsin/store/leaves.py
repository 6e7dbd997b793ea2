"""The Merkle leaf of a log entry: RFC 8785 canonical JSON, hashed as RFC 9162 says.

A leaf's bytes (RFC 9162's `leaf_input`) are the canonical JSON of

    {"seq": <seq>, "kind": "event" | "transition", "entry": <the stored body, parsed>}

plus `"key": <API key name>` on events submitted with a named key. The wall time an entry was
recorded at (`recorded_at`) is deliberately not part of a leaf, so a replayed log hashes to the
same tree byte for byte. `docs/transparency.md` describes the format for outside verifiers.
"""

from __future__ import annotations

import json
from typing import Any

from tocsin.audit import canonical_json, leaf_hash
from tocsin.errors import FieldError, ValidationError
from tocsin.store.base import LogEntry

__all__ = ["check_canonical", "entry_leaf_hash", "leaf_input", "leaf_object"]


def leaf_object(entry: LogEntry) -> dict[str, Any]:
    """The JSON object a log entry's leaf is the canonical form of."""
    obj: dict[str, Any] = {"seq": entry.seq, "kind": entry.kind, "entry": json.loads(entry.body)}
    if entry.kind == "event" and entry.key_name is not None:
        obj["key"] = entry.key_name
    return obj


def leaf_input(entry: LogEntry) -> bytes:
    """The leaf's bytes: RFC 8785 canonical JSON of `leaf_object(entry)`."""
    return canonical_json(leaf_object(entry))


def entry_leaf_hash(entry: LogEntry) -> bytes:
    """The RFC 9162 leaf hash of a log entry."""
    return leaf_hash(leaf_input(entry))


def check_canonical(raw: Any) -> None:
    """Refuse an event the log could not hash: it must be I-JSON (RFC 7493), as JCS requires."""
    try:
        canonical_json(raw)
    except (ValueError, TypeError) as exc:
        reason = f"not representable as I-JSON: {exc}"
        raise ValidationError(FieldError("(event)", reason)) from None
