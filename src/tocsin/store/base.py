"""The event-log interface every backend implements.

The log is one sequence: each accepted event, immediately followed by the transitions it caused.
`seq` is the position in that sequence, starting at 1. Appends are atomic per call: a batch of
events and their transitions is either wholly durable or not there at all.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EventLog", "LogEntry", "open_log"]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One row of the log: an event as received, or a transition as decided."""

    seq: int
    kind: str  # "event" | "transition"
    body: str  # the JSON text, exactly as stored
    source: str | None = None  # events: the submitting source
    event_id: str | None = None  # events: the id unique per source
    key_name: str | None = None  # events: the name of the API key that submitted it
    cause_seq: int | None = None  # transitions: the event that caused it
    recorded_at: str | None = None  # events: wall time it was appended (not part of replay)

    def obj(self) -> Any:
        """The body parsed from JSON."""
        return json.loads(self.body)


class EventLog(ABC):
    """An append-only, durable log of events and transitions."""

    @abstractmethod
    def append(self, entries: Sequence[LogEntry]) -> None:
        """Append entries atomically; their seqs must continue the log without gaps."""

    @abstractmethod
    def max_seq(self) -> int:
        """The seq of the last entry (0 when empty)."""

    @abstractmethod
    def read(self, start: int = 1, end: int | None = None) -> Iterator[LogEntry]:
        """Entries with start <= seq <= end, in seq order."""

    @abstractmethod
    def find_event(self, source: str, event_id: str) -> int | None:
        """The seq of the event accepted under (source, id), if any."""

    def count(self) -> int:
        """Number of entries."""
        return self.max_seq()

    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A small named value stored with the log (None when unset)."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Store a small named value with the log."""

    def close(self) -> None:  # noqa: B027 - backends without resources need nothing here
        """Release the backend's resources."""

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_log(url_or_dir: str | Path) -> EventLog:
    """Open a log by URL (`sqlite:///path.db`, `postgresql://…`, `memory:`) or data directory."""
    text = str(url_or_dir)
    if text.startswith(("postgresql://", "postgres://")):
        from tocsin.store.postgres import PostgresLog

        return PostgresLog(text)
    if text == "memory:":
        from tocsin.store.memory import MemoryLog

        return MemoryLog()
    from tocsin.store.sqlite import SQLiteLog

    if text.startswith("sqlite:///"):
        return SQLiteLog(Path(text.removeprefix("sqlite:///")))
    return SQLiteLog(Path(text) / "tocsin.db")
