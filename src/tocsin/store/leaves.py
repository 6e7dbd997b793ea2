"""The Merkle leaf of a log entry: RFC 8785 canonical JSON, hashed as RFC 9162 says.

A leaf's bytes (RFC 9162's `leaf_input`) are the canonical JSON of

    {"seq": <seq>, "kind": "event" | "transition", "entry": <the stored body, parsed>}

plus `"key": <API key name>` on events submitted with a named key, and `"recorded_at": <the wall
time it was logged>` on entries that have one, from the seq kept in the log's metadata as
`leaf_times_from` (1 for a log begun by this version; for an older log, the first seq appended
after upgrading, so its earlier leaves and heads stay verifiable). `docs/transparency.md`
describes the format for outside verifiers.
"""

from __future__ import annotations

import json
from typing import Any

from tocsin.audit import canonical_json, leaf_hash
from tocsin.errors import FieldError, IntegrityError, ValidationError
from tocsin.store.base import EventLog, LogEntry

__all__ = ["TIMES_FROM", "check_canonical", "entry_leaf_hash", "leaf_input", "leaf_object",
           "leaf_times_from"]

TIMES_FROM = "leaf_times_from"


def leaf_object(entry: LogEntry, times_from: int | None = None) -> dict[str, Any]:
    """The JSON object a log entry's leaf is the canonical form of.

    `times_from`: the first seq whose leaf covers `recorded_at` (None: no leaf does).
    """
    obj: dict[str, Any] = {"seq": entry.seq, "kind": entry.kind, "entry": json.loads(entry.body)}
    if entry.kind == "event" and entry.key_name is not None:
        obj["key"] = entry.key_name
    if times_from is not None and entry.seq >= times_from and entry.recorded_at is not None:
        obj["recorded_at"] = entry.recorded_at
    return obj


def leaf_input(entry: LogEntry, times_from: int | None = None) -> bytes:
    """The leaf's bytes: RFC 8785 canonical JSON of `leaf_object(entry, times_from)`."""
    return canonical_json(leaf_object(entry, times_from))


def entry_leaf_hash(entry: LogEntry, times_from: int | None = None) -> bytes:
    """The RFC 9162 leaf hash of a log entry."""
    return leaf_hash(leaf_input(entry, times_from))


def leaf_times_from(log: EventLog) -> int:
    """The first seq whose leaf covers `recorded_at`, fixed in the log's metadata on first use.

    Changing the stored value afterwards changes the recomputed leaves of every event between
    the old and new value, so the stored hashes and signed heads catch it.
    """
    stored = log.get_meta(TIMES_FROM)
    if stored is None:
        value = log.max_seq() + 1
        log.set_meta(TIMES_FROM, str(value))
        return value
    try:
        return int(stored)
    except ValueError:
        raise IntegrityError(f"meta {TIMES_FROM}: {stored!r} is not a seq") from None


def check_canonical(raw: Any) -> None:
    """Refuse an event the log could not hash: it must be I-JSON (RFC 7493), as JCS requires."""
    try:
        canonical_json(raw)
    except (ValueError, TypeError) as exc:
        reason = f"not representable as I-JSON: {exc}"
        raise ValidationError(FieldError("(event)", reason)) from None
