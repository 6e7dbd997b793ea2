"""The envelope transitions are published in: one frozen value, built by one function.

An `Envelope` is a transition (its JSON object, as logged) with its `Provenance`: `cause_time`
(the causing event's own time), `decided_at` (when the event was logged), `log_index` (its leaf
in the Merkle log), `published_at` (when this copy went out) and the deployment `mode`
(`tocsin.modes`), so no machine takes a drill for the real thing.

`envelope()` is the only constructor. Its inputs come from one of two places: a `Decision` just
committed (`live_envelopes`: live publishing, the cluster leader) or the log's own entries
(`envelopes_of`: resuming streams, webhooks, follower catch-up, republishing, and the outputs'
`rebuild` on start). Both give the same envelope for the same transition, but `published_at`.

An envelope reads as a `Mapping` of its wire form (the JSON object streams, webhooks and the bus
carry), so an output reads `env["region"]` whichever way it came; `to_dict()` is that object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tocsin.errors import IntegrityError
from tocsin.ledger import Decision
from tocsin.model import format_time, parse_time
from tocsin.modes import ACTUAL, stamp
from tocsin.store.base import LogEntry

__all__ = ["Envelope", "Provenance", "envelope", "envelopes_of", "live_envelopes", "wire"]


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a transition came from and when this copy of it went out."""

    cause_time: str | None
    decided_at: str | None
    log_index: int
    published_at: str
    mode: str = ACTUAL


@dataclass(frozen=True, slots=True, eq=False)
class Envelope(Mapping[str, Any]):
    """A published transition: `seq`, the `transition` as logged, its `provenance`."""

    seq: int
    transition: Mapping[str, Any]
    provenance: Provenance
    # the wire form, made once: every stream, webhook and bus message sends these bytes' source
    _wire: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = self.provenance
        wire = dict(self.transition)
        wire["cause_time"] = p.cause_time
        wire["decided_at"] = p.decided_at
        wire["log_index"] = p.log_index
        object.__setattr__(self, "_wire", stamp(wire, published_at=p.published_at, mode=p.mode))

    def __getitem__(self, key: str) -> Any:
        return self._wire[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._wire)

    def __len__(self) -> int:
        return len(self._wire)

    def to_dict(self) -> dict[str, Any]:
        """The wire form (a JSON object; shared, not a copy: do not change it)."""
        return self._wire


def envelope(
    transition: Mapping[str, Any], *, cause_time: str | None, decided_at: str | None,
    published_at: str, mode: str = ACTUAL,
) -> Envelope:
    """The envelope of one transition's JSON object (the one constructor)."""
    seq = int(transition["seq"])
    return Envelope(seq, transition,
                    Provenance(cause_time, decided_at, seq - 1, published_at, mode))


def wire(batch: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The JSON objects of a batch (envelopes, or objects already in wire form)."""
    return [e.to_dict() if isinstance(e, Envelope) else dict(e) for e in batch]


def live_envelopes(
    decision: Decision, decided_at: str, published_at: str, *, mode: str = ACTUAL
) -> list[Envelope]:
    """The envelopes of the transitions a committed decision made."""
    return [envelope(t.to_dict(), cause_time=decision.cause_times.get(t.cause_seq),
                     decided_at=decided_at, published_at=published_at, mode=mode)
            for res in decision.accepted for t in res.transitions]


def envelopes_of(
    entries: Sequence[LogEntry],
    published_at: str,
    cause: Callable[[int], LogEntry] | None = None,
    leaves: set[str] | None = None,
    *,
    mode: str = ACTUAL,
) -> list[Envelope]:
    """The transitions among logged `entries` as envelopes (of regions in `leaves`, if given).

    `cause(seq)` fetches a causing event that is not among `entries` (never needed for whole
    commits, where transitions follow their event).
    """
    times: dict[int, tuple[str | None, str | None]] = {}
    out: list[Envelope] = []
    for entry in entries:
        if entry.kind == "event":
            times[entry.seq] = (_event_time(entry.obj()), entry.recorded_at)
            continue
        obj = entry.obj()
        if leaves is not None and obj["region"] not in leaves:
            continue
        seq = entry.cause_seq or obj["cause_seq"]
        if seq not in times:
            if cause is None:
                raise IntegrityError(f"transition {entry.seq} without its event {seq}")
            ev = cause(seq)
            times[seq] = (_event_time(ev.obj()), ev.recorded_at)
        cause_time, decided_at = times[seq]
        out.append(envelope(obj, cause_time=cause_time, decided_at=decided_at,
                            published_at=published_at, mode=mode))
    return out


def _event_time(raw: Any) -> str | None:
    """An event's `time` in the canonical form live envelopes use."""
    try:
        return format_time(parse_time(raw["time"]))
    except (KeyError, TypeError, ValueError):
        return None
