"""A log held in memory: for `simulate`, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tocsin.errors import IntegrityError
from tocsin.store.base import EventLog, LogEntry

__all__ = ["MemoryLog"]


class MemoryLog(EventLog):
    """An `EventLog` in a Python list."""

    def __init__(self) -> None:
        self._rows: list[LogEntry] = []
        self._events: dict[tuple[str, str], int] = {}
        self._meta: dict[str, str] = {}

    def append(self, entries: Sequence[LogEntry]) -> None:
        """Append entries, checking seqs continue and event keys are new."""
        expected = len(self._rows) + 1
        keys: dict[tuple[str, str], int] = {}
        for e in entries:
            if e.seq != expected:
                raise IntegrityError(f"seq {e.seq} does not continue the log at {expected}")
            if e.kind == "event":
                key = (e.source or "", e.event_id or "")
                if key in self._events or key in keys:
                    raise IntegrityError(f"event {key} is already in the log")
                keys[key] = e.seq
            expected += 1
        self._rows.extend(entries)
        self._events.update(keys)

    def max_seq(self) -> int:
        """The seq of the last entry."""
        return len(self._rows)

    def read(self, start: int = 1, end: int | None = None) -> Iterator[LogEntry]:
        """Entries in [start, end]."""
        stop = len(self._rows) if end is None else min(end, len(self._rows))
        yield from self._rows[max(start, 1) - 1 : stop]

    def find_event(self, source: str, event_id: str) -> int | None:
        """The seq of (source, id), if logged."""
        return self._events.get((source, event_id))

    def get_meta(self, key: str) -> str | None:
        """A stored metadata value."""
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        """Store a metadata value."""
        self._meta[key] = value
