"""The envelopes transitions are published in: built here, and only here.

An envelope is a transition's JSON object plus its provenance: `cause_time` (the causing event's
own time), `decided_at` (when the event was logged), `log_index` (its leaf in the Merkle log) and
`published_at` (when this copy went out), and the deployment `mode` (`tocsin.modes`), so no
machine takes a drill for the real thing. Live ones are built from a `Decision` just committed;
the log's own entries give the same envelopes to resuming streams, followers and republishers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tocsin.errors import IntegrityError
from tocsin.ledger import Decision
from tocsin.model import format_time, parse_time
from tocsin.modes import ACTUAL, stamp
from tocsin.store.base import LogEntry

__all__ = ["envelopes_of", "live_envelopes"]


def live_envelopes(
    decision: Decision, decided_at: str, published_at: str, *, mode: str = ACTUAL
) -> list[dict[str, Any]]:
    """The envelopes of the transitions a committed decision made."""
    out = []
    for res in decision.accepted:
        for t in res.transitions:
            env = t.to_dict()
            env["cause_time"] = decision.cause_times.get(t.cause_seq)
            env["decided_at"] = decided_at
            env["log_index"] = t.seq - 1
            out.append(stamp(env, published_at=published_at, mode=mode))
    return out


def envelopes_of(
    entries: Sequence[LogEntry],
    published_at: str,
    cause: Callable[[int], LogEntry] | None = None,
    leaves: set[str] | None = None,
    *,
    mode: str = ACTUAL,
) -> list[dict[str, Any]]:
    """The transitions among logged `entries` as envelopes (of regions in `leaves`, if given).

    `cause(seq)` fetches a causing event that is not among `entries` (never needed for whole
    commits, where transitions follow their event).
    """
    times: dict[int, tuple[str | None, str | None]] = {}
    out: list[dict[str, Any]] = []
    for entry in entries:
        if entry.kind == "event":
            times[entry.seq] = (_event_time(entry.obj()), entry.recorded_at)
            continue
        env = entry.obj()
        if leaves is not None and env["region"] not in leaves:
            continue
        seq = entry.cause_seq or env["cause_seq"]
        if seq not in times:
            if cause is None:
                raise IntegrityError(f"transition {entry.seq} without its event {seq}")
            ev = cause(seq)
            times[seq] = (_event_time(ev.obj()), ev.recorded_at)
        env["cause_time"], env["decided_at"] = times[seq]
        env["log_index"] = entry.seq - 1
        out.append(stamp(env, published_at=published_at, mode=mode))
    return out


def _event_time(raw: Any) -> str | None:
    """An event's `time` in the canonical form live envelopes use."""
    try:
        return format_time(parse_time(raw["time"]))
    except (KeyError, TypeError, ValueError):
        return None
