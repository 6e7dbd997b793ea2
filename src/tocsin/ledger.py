"""The engine and its log kept in step: the one place events are accepted.

Order of work for a batch: validate everything (nothing of a bad batch is applied), give each
new event the next seq, apply it, put its transitions right after it, and append the whole batch
in one durable transaction. If the append fails the engine is rebuilt from the log, so memory
never runs ahead of what is on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tocsin.engine.core import Engine
from tocsin.errors import FieldError, IntegrityError, ReplayMismatch, ValidationError
from tocsin.model import Event, Tick, Transition, dumps, format_time, parse_event
from tocsin.store.base import EventLog, LogEntry
from tocsin.store.merkle import MerkleLog, check_canonical

__all__ = ["Accepted", "Ledger", "replay_into", "tick_event"]

TICK_SOURCE = "tocsin"


@dataclass(frozen=True, slots=True)
class Accepted:
    """What became of one submitted event."""

    id: str
    source: str
    seq: int
    duplicate: bool
    transitions: list[Transition] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stream_seq: int | None = None  # cluster ingest: its place in the events stream (seq 0)


def tick_event(when: datetime, *, server: bool = False) -> dict[str, Any]:
    """The raw tick the shells append to move the engine's clock (`server`: a wall clock's,
    which no event may then run ahead of; see `Engine.apply`)."""
    stamp = format_time(when)
    raw = {"id": f"tick-{stamp}", "type": "tick", "time": stamp, "source": TICK_SOURCE}
    if server:
        raw["clock"] = "server"
    return raw


def replay_into(
    engine: Engine,
    entries: Iterable[LogEntry],
    *,
    progress: Callable[[int], None] | None = None,
    after: int = 0,
) -> int:
    """Feed a log's events to `engine`, checking it reproduces the logged transitions.

    `entries` start at seq `after + 1` (an engine that has applied the log up to `after` can
    follow it on). Returns the last seq. Raises `ReplayMismatch` at the first seq that differs.
    """
    pending: list[Transition] = []
    last = after
    for entry in entries:
        if entry.seq != last + 1:
            raise IntegrityError(f"the log jumps from seq {last} to {entry.seq}")
        last = entry.seq
        if entry.kind == "event":
            if pending:
                raise ReplayMismatch(pending[0].seq, None, pending[0].to_json())
            event = parse_event(entry.obj())
            pending = list(reversed(engine.apply(event, entry.seq).transitions))
        else:
            got = pending.pop() if pending else None
            got_json = got.to_json() if got is not None else None
            if got_json != entry.body:
                raise ReplayMismatch(entry.seq, entry.body, got_json)
        if progress is not None:
            progress(entry.seq)
    if pending:
        raise ReplayMismatch(pending[-1].seq, None, pending[-1].to_json())
    return last


class Ledger:
    """Accepts events into a log and its engine, atomically and idempotently."""

    def __init__(
        self, log: EventLog, engine_factory: Callable[[], Engine], *,
        merkle: MerkleLog | None = None,
    ) -> None:
        self.log = log
        self.merkle = merkle  # when given, appends go through it so the Merkle tree keeps step
        self._factory = engine_factory
        self.engine = engine_factory()
        self.next_seq = 1

    def recover(
        self, progress: Callable[[int], None] | None = None, *, end: int | None = None
    ) -> int:
        """Rebuild the engine from the log (up to `end`), checking each transition; the last seq."""
        self.engine = self._factory()
        last = replay_into(self.engine, self.log.read(1, end), progress=progress)
        self.next_seq = last + 1
        return last

    def validate(self, raws: Sequence[Any]) -> list[Event]:
        """Parse and check a batch; raise `ValidationError` naming `[i].field` for each error."""
        errors: list[FieldError] = []
        events: list[Event] = []
        known = self.engine.regions.regions.__contains__
        for i, raw in enumerate(raws):
            prefix = f"[{i}]." if len(raws) > 1 else ""
            try:
                event = parse_event(raw, region_known=known)
                self.engine.check(event)
                check_canonical(raw)
            except ValidationError as exc:
                errors.extend(FieldError(prefix + e.field, e.reason) for e in exc.errors)
                continue
            events.append(event)
        if errors:
            raise ValidationError(errors)
        return events

    def submit(
        self,
        raws: Sequence[Any],
        *,
        key_name: str | None = None,
        recorded_at: str | None = None,
        admit: Callable[[Sequence[Event]], None] | None = None,
    ) -> list[Accepted]:
        """Validate, apply and durably append a batch; duplicates are reported, not re-applied.

        `admit(events)`, when given, may refuse the checked batch (before anything is applied).
        """
        events = self.validate(raws)
        if admit is not None:
            admit(events)
        results: list[Accepted] = []
        entries: list[LogEntry] = []
        seen: dict[tuple[str, str], int] = {}
        seq = self.next_seq
        try:
            for event in events:
                earlier = seen.get(event.key) or self.log.find_event(*event.key)
                if earlier is not None:
                    results.append(Accepted(event.id, event.source, earlier, True))
                    continue
                step = self.engine.apply(event, seq)
                entries.append(
                    LogEntry(seq, "event", dumps(dict(event.raw)), event.source, event.id,
                             key_name, recorded_at=recorded_at)
                )
                entries.extend(
                    LogEntry(t.seq, "transition", t.to_json(), cause_seq=t.cause_seq)
                    for t in step.transitions
                )
                seen[event.key] = seq
                results.append(
                    Accepted(event.id, event.source, seq, False, step.transitions, step.notes)
                )
                seq += 1 + len(step.transitions)
            if self.merkle is not None:
                self.merkle.append(entries)
            else:
                self.log.append(entries)
        except Exception:
            # memory may be ahead of the disk now: rebuild it from what is durable
            self.recover()
            raise
        self.next_seq = seq
        return results

    def tick(
        self, when: datetime, *, recorded_at: str | None = None, server: bool = True
    ) -> Accepted:
        """Advance the clock to `when` (fires due timers); logged like any event."""
        return self.submit([tick_event(when, server=server)], recorded_at=recorded_at)[0]

    def drain(self) -> list[Transition]:
        """Run the clock forward until no timer is pending; the transitions that fired."""
        out: list[Transition] = []
        while (deadline := self.engine.next_deadline()) is not None:
            out.extend(self.tick(deadline, server=False).transitions)
        return out

    def is_tick(self, event: Event) -> bool:
        """Whether an event is one of the shells' own clock ticks."""
        return isinstance(event, Tick) and event.source == TICK_SOURCE
