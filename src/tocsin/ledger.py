"""The engine and its log kept in step: decide, then commit.

An event is parsed and checked once, at the edge (`parse_batch`: schema, known regions, I-JSON).
`Ledger.decide` then checks the parsed batch against the engine (nothing of a bad batch is
applied), gives each new event the next seq, applies it, puts its transitions right after it,
and returns the entries to write (`Decision`). Writing them is the caller's: the embedded
service appends them with their leaf hashes (`Ledger.commit`), a cluster leader gathers the
decisions of a batch of stream messages and appends them with its stream position under its
epoch. Until `committed()` the engine is ahead of the log; `discard()` rebuilds it from what is
durable, so memory never runs ahead of what is on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tocsin.engine.core import Engine
from tocsin.errors import FieldError, IntegrityError, ReplayMismatch, ValidationError
from tocsin.model import Event, Tick, Transition, dumps, format_time, logged_event, parse_event
from tocsin.store.base import EventLog, LogEntry
from tocsin.store.leaves import check_canonical
from tocsin.store.merkle import MerkleLog

__all__ = ["Accepted", "Decision", "Ledger", "parse_batch", "replay_into", "replay_rows",
           "tick_event"]

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


@dataclass(frozen=True, slots=True)
class Decision:
    """What the engine decided for a batch: per-event results and the log entries to write."""

    accepted: list[Accepted]
    entries: list[LogEntry]
    cause_times: dict[int, str]  # seq of each new event -> its own time, canonical form

    def __add__(self, other: Decision) -> Decision:
        return Decision(self.accepted + other.accepted, self.entries + other.entries,
                        {**self.cause_times, **other.cause_times})


NOTHING = Decision([], [], {})


def parse_batch(
    raws: Sequence[Any], *, region_known: Callable[[str], bool] | None = None
) -> list[Event]:
    """Parse and check a batch at the edge; raise `ValidationError` naming `[i].field` for
    each error (schema, known regions, I-JSON), so nothing of a bad batch goes further."""
    errors: list[FieldError] = []
    events: list[Event] = []
    for i, raw in enumerate(raws):
        prefix = f"[{i}]." if len(raws) > 1 else ""
        try:
            event = parse_event(raw, region_known=region_known)
            check_canonical(raw)
        except ValidationError as exc:
            errors.extend(FieldError(prefix + e.field, e.reason) for e in exc.errors)
            continue
        events.append(event)
    if errors:
        raise ValidationError(errors)
    return events


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
    rows = ((entry.seq, entry.kind, entry.body) for entry in entries)
    return replay_rows(engine, rows, progress=progress, after=after)


def replay_rows(
    engine: Engine,
    rows: Iterable[tuple[int, str, str]],
    *,
    progress: Callable[[int], None] | None = None,
    after: int = 0,
) -> int:
    """`replay_into` over (seq, kind, body) rows, as `EventLog.read_bodies` gives them."""
    pending: list[Transition] = []
    last = after
    apply, loads = engine.apply, json.loads
    for seq, kind, body in rows:
        if seq != last + 1:
            raise IntegrityError(f"the log jumps from seq {last} to {seq}")
        last = seq
        if kind == "event":
            if pending:
                raise ReplayMismatch(pending[0].seq, None, pending[0].to_json())
            transitions = apply(logged_event(loads(body)), last).transitions
            if transitions:  # most events (ticks, most detections) decide nothing
                pending = transitions[::-1]
        else:
            got = pending.pop() if pending else None
            got_json = got.to_json() if got is not None else None
            if got_json != body:
                raise ReplayMismatch(seq, body, got_json)
        if progress is not None:
            progress(seq)
    if pending:
        raise ReplayMismatch(pending[-1].seq, None, pending[-1].to_json())
    return last


class Ledger:
    """The engine over a log: decides batches of parsed events, idempotently."""

    def __init__(
        self, log: EventLog, engine_factory: Callable[[], Engine], *,
        merkle: MerkleLog | None = None,
    ) -> None:
        self.log = log
        self.merkle = merkle if merkle is not None else MerkleLog(log)
        self._factory = engine_factory
        self.engine = engine_factory()
        self.next_seq = 1  # of the next entry decided
        self.durable_seq = 0  # the last entry known to be in the log
        self._pending: dict[tuple[str, str], int] = {}  # decided, not committed yet

    def new_engine(self) -> Engine:
        """A fresh engine of this ledger's configuration."""
        return self._factory()

    def recover(
        self, progress: Callable[[int], None] | None = None, *, end: int | None = None
    ) -> int:
        """Rebuild the engine from the log (up to `end`), checking each transition; the last seq."""
        return self.resume(self._factory(), 0, progress=progress, end=end)

    def resume(
        self, engine: Engine, after: int, *,
        progress: Callable[[int], None] | None = None, end: int | None = None,
    ) -> int:
        """Take `engine` (as of seq `after`, e.g. from a snapshot) and replay the log after it."""
        self.engine = engine
        self._pending.clear()
        last = replay_rows(engine, self.log.read_bodies(after + 1, end), progress=progress,
                           after=after)
        self.next_seq = last + 1
        self.durable_seq = last
        return last

    def follow(self, entries: Sequence[LogEntry]) -> None:
        """Apply entries another node committed, checking this engine decides the same."""
        start = self.next_seq
        replay_into(self.engine, entries, after=start - 1)
        if entries:
            self.next_seq = entries[-1].seq + 1
            self.durable_seq = entries[-1].seq

    def check(self, events: Sequence[Event]) -> None:
        """Raise `ValidationError` naming `[i].field` for each event the engine would refuse."""
        errors: list[FieldError] = []
        for i, event in enumerate(events):
            try:
                self.engine.check(event)
            except ValidationError as exc:
                prefix = f"[{i}]." if len(events) > 1 else ""
                errors.extend(FieldError(prefix + e.field, e.reason) for e in exc.errors)
        if errors:
            raise ValidationError(errors)

    def decide(
        self,
        events: Sequence[Event],
        *,
        key_name: str | None = None,
        recorded_at: str | None = None,
        known: Mapping[tuple[str, str], int] | None = None,
        admit: Callable[[Sequence[Event]], None] | None = None,
    ) -> Decision:
        """Check a parsed batch, apply it and return the entries to write.

        Duplicates (already logged, decided earlier and not committed yet, or twice in the
        batch) are reported, not re-applied; `known` answers "already logged" for keys looked
        up in advance (else the log is asked, once for the batch). The engine is then ahead of
        the log until `committed()` or `discard()`. `admit(events)`, when given, may refuse
        the checked batch (sources, ownership, repeated ids) before anything is applied.
        """
        self.check(events)
        if admit is not None:
            admit(events)
        if known is None:
            known = self.log.find_events({e.key for e in events} - self._pending.keys())
        results: list[Accepted] = []
        entries: list[LogEntry] = []
        times: dict[int, str] = {}
        seq = self.next_seq
        # `check` above judged every event against the engine before any was applied; what it
        # reads of the engine's state moves only with a tick, so until the batch has applied
        # one those checks still hold and the engine need not run them again
        ticked = False
        for event in events:
            earlier = self._pending.get(event.key) or known.get(event.key)
            if earlier is not None:
                results.append(Accepted(event.id, event.source, earlier, True))
                continue
            step = self.engine.apply(event, seq, checked=not ticked)
            ticked = ticked or isinstance(event, Tick)
            entries.append(
                LogEntry(seq, "event", dumps(dict(event.raw)), event.source, event.id,
                         key_name, recorded_at=recorded_at)
            )
            entries.extend(
                LogEntry(t.seq, "transition", t.to_json(), cause_seq=t.cause_seq)
                for t in step.transitions
            )
            self._pending[event.key] = seq
            times[seq] = format_time(event.time)
            results.append(
                Accepted(event.id, event.source, seq, False, step.transitions, step.notes)
            )
            seq += 1 + len(step.transitions)
        self.next_seq = seq
        return Decision(results, entries, times)

    def decide_tick(
        self, when: datetime, *, recorded_at: str | None = None, server: bool = True
    ) -> Decision:
        """Advance the clock to `when` (fires due timers); `server`: a wall clock's tick."""
        return self.decide([parse_event(tick_event(when, server=server))],
                           recorded_at=recorded_at)

    def committed(self) -> None:
        """What was decided is durable now."""
        self._pending.clear()
        self.durable_seq = self.next_seq - 1

    def discard(self) -> None:
        """What was decided was not written: rebuild the engine from what is durable."""
        self.recover()

    def commit(self, decision: Decision) -> None:
        """The embedded way: append a decision with its leaf hashes; on failure, discard."""
        try:
            if self.merkle.size != self.durable_seq:
                self.merkle.load()  # a tree nobody loaded yet (a simulation into a data dir)
            self.merkle.append(decision.entries)
        except BaseException:
            self.discard()
            raise
        self.committed()

    def submit(
        self,
        raws: Sequence[Any],
        *,
        key_name: str | None = None,
        recorded_at: str | None = None,
        admit: Callable[[Sequence[Event]], None] | None = None,
    ) -> list[Accepted]:
        """Parse, decide and commit a batch (simulations, imports and tests).

        `admit(events)`, when given, may refuse the checked batch (before anything is applied).
        """
        events = parse_batch(raws, region_known=self.engine.regions.regions.__contains__)
        decision = self.decide(events, key_name=key_name, recorded_at=recorded_at, admit=admit)
        self.commit(decision)
        return decision.accepted

    def tick(
        self, when: datetime, *, recorded_at: str | None = None, server: bool = True
    ) -> Accepted:
        """Advance the clock to `when` (fires due timers); logged like any event."""
        decision = self.decide_tick(when, recorded_at=recorded_at, server=server)
        self.commit(decision)
        return decision.accepted[0]

    def drain(self) -> list[Transition]:
        """Run the clock forward until no timer is pending; the transitions that fired."""
        out: list[Transition] = []
        while (deadline := self.engine.next_deadline()) is not None:
            out.extend(self.tick(deadline, server=False).transitions)
        return out

    def is_tick(self, event: Event) -> bool:
        """Whether an event is one of the shells' own clock ticks."""
        return isinstance(event, Tick) and event.source == TICK_SOURCE
