"""The log interface every backend implements: everything a node writes goes through it.

The log is one sequence: each accepted event, immediately followed by the transitions it caused.
`seq` is the position in that sequence, starting at 1. Next to the entries the same store keeps
what must agree with them, written in the same transaction (as eventsourcing's
`ProcessRecorder` keeps its tracking records with the events):

- the Merkle leaf hash of every entry (`tocsin.store.leaves`), so a leaf hash exists exactly
  when its entry does;
- a cluster's fencing epoch and the events-stream position the entries were consumed up to,
  and the events a leader refused on the way (`Rejection`);
- signed tree heads, and the snapshots taken of the engine (by seq and digest).

`append` is the one write of entries. A backend implements `_append` (and the reads); the
checks every backend needs are made here once. A new backend is one module plus one test
subclass of each contract (`tests/store/contract.py`, `tests/store/merkle_contract.py`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tocsin.audit import TreeHead
from tocsin.audit.witness import Cosignature
from tocsin.errors import IntegrityError

__all__ = ["MAX_COSIGNATURES", "ClusterState", "EventLog", "LogEntry", "Rejection",
           "SnapshotRecord"]

MAX_COSIGNATURES = 32


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


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event a cluster's ingest accepted (202) and its leader then refused, kept for its
    sender."""

    stream_seq: int
    source: str | None
    event_id: str | None
    key_name: str | None
    body: str
    errors: list[dict[str, str]]
    node: str | None = None
    received_at: str | None = None
    rejected_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        try:
            event: Any = json.loads(self.body)
        except ValueError:
            event = self.body
        return {"stream_seq": self.stream_seq, "source": self.source, "id": self.event_id,
                "key": self.key_name, "errors": self.errors, "node": self.node,
                "received_at": self.received_at, "rejected_at": self.rejected_at,
                "event": event}


@dataclass(frozen=True, slots=True)
class ClusterState:
    """The fencing row: the current epoch, who started it and when, the committed position."""

    epoch: int
    leader: str | None
    leader_since: str | None
    stream_seq: int


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A snapshot of the engine and read models as of `seq`, and the digest of its bytes."""

    seq: int
    digest: str
    name: str


class EventLog(ABC):
    """An append-only, durable log of events and transitions, with what is written beside it."""

    where: str = "the log"  # for messages: a path or a URL without its password

    # --- writes --------------------------------------------------------------------------------

    def append(
        self,
        entries: Sequence[LogEntry],
        leaf_hashes: Sequence[bytes],
        *,
        position: int | None = None,
        epoch: int | None = None,
        rejections: Sequence[Rejection] = (),
    ) -> None:
        """Append entries, their leaf hashes, the stream position and refused events at once.

        Entries must continue the log without gaps; `leaf_hashes` are theirs, one per entry
        (`tocsin.store.leaves.entry_leaf_hash`). With `epoch`, refuse (`Fenced`) unless the
        store's epoch is still that one; `position` only ever moves forward.
        """
        if len(leaf_hashes) != len(entries):
            raise ValueError("one leaf hash per entry")
        if entries:
            # every seq, not only the first: a gap inside a batch would be committed silently
            for expected, e in enumerate(entries, entries[0].seq):
                if e.seq != expected:
                    raise IntegrityError(f"seq {e.seq} does not continue the batch at {expected}")
        elif position is None and not rejections and epoch is None:
            return
        self._append(entries, leaf_hashes, position, epoch, rejections)

    @abstractmethod
    def _append(
        self,
        entries: Sequence[LogEntry],
        leaf_hashes: Sequence[bytes],
        position: int | None,
        epoch: int | None,
        rejections: Sequence[Rejection],
    ) -> None:
        """Write one checked batch atomically (see `append`)."""

    # --- reads ---------------------------------------------------------------------------------

    @abstractmethod
    def max_seq(self) -> int:
        """The seq of the last entry (0 when empty)."""

    @abstractmethod
    def read(self, start: int = 1, end: int | None = None) -> Iterator[LogEntry]:
        """Entries with start <= seq <= end, in seq order."""

    def read_bodies(self, start: int = 1, end: int | None = None) -> Iterator[tuple[int, str, str]]:
        """`read`, as (seq, kind, body) only: what a replay needs (a store may skip the rest)."""
        for entry in self.read(start, end):
            yield entry.seq, entry.kind, entry.body

    @abstractmethod
    def find_events(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The seqs of those of `keys` (source, id) that are logged."""

    def find_event(self, source: str, event_id: str) -> int | None:
        """The seq of the event accepted under (source, id), if any."""
        return self.find_events([(source, event_id)]).get((source, event_id))

    def count(self) -> int:
        """Number of entries."""
        return self.max_seq()

    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A small named value stored with the log (None when unset)."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Store a small named value with the log."""

    # --- Merkle storage ------------------------------------------------------------------------

    @abstractmethod
    def leaf_hashes(self, start: int = 1, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Stored (seq, leaf hash) with start <= seq <= end, in seq order."""

    @abstractmethod
    def add_leaf_hashes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Store hashes of entries written without one (a log from an older version); rows
        already there are kept as they are."""

    @abstractmethod
    def leaf_count(self) -> int:
        """How many leaf hashes are stored."""

    @abstractmethod
    def add_head(self, head: TreeHead, key_id: str) -> None:
        """Keep a signed tree head (every one ever signed is kept)."""

    @abstractmethod
    def heads(self, since: str | None = None, limit: int = 1000) -> list[TreeHead]:
        """Stored heads signed after `since` (an STH timestamp), oldest first."""

    @abstractmethod
    def latest_head(self, max_size: int | None = None) -> TreeHead | None:
        """The newest stored head (covering at most `max_size` entries, when given)."""

    # --- fencing and refused events ------------------------------------------------------------

    @abstractmethod
    def start_epoch(self, node: str, now: str) -> tuple[int, int]:
        """Start a new epoch led by `node`: (the epoch, the stream position committed so far).

        Waits for a fenced append in flight (it holds the fencing row), so the position
        returned follows it.
        """

    @abstractmethod
    def cluster_state(self) -> ClusterState:
        """The fencing row as it stands."""

    @abstractmethod
    def rejections(self, after: int = 0, limit: int = 100) -> list[Rejection]:
        """Refused events after stream position `after`, in stream order."""

    @abstractmethod
    def rejection(self, source: str, event_id: str) -> Rejection | None:
        """The latest refusal of (source, id), if any."""

    @abstractmethod
    def rejected_count(self) -> int:
        """How many events were refused."""

    # --- snapshots -----------------------------------------------------------------------------

    @abstractmethod
    def record_snapshot(self, record: SnapshotRecord) -> None:
        """Note that a snapshot as of `record.seq` with that digest was written."""

    @abstractmethod
    def snapshots(self, limit: int = 10) -> list[SnapshotRecord]:
        """Recorded snapshots, newest (highest seq) first."""

    # --- the rest ------------------------------------------------------------------------------

    # --- witnesses' cosignatures of tree heads -------------------------------------------------
    # At most one per witness and tree size (a witness signs a tree once; the first kept wins)
    # and `MAX_COSIGNATURES` per tree size: what outsiders can make the server store is bounded
    # by the witnesses it trusts times the heads it signs.

    @abstractmethod
    def add_cosignature(self, tree_size: int, root_hash: bytes, cosig: Cosignature) -> str:
        """Keep a checked cosignature: "added", "known" (already kept) or "full"."""

    @abstractmethod
    def cosignatures(self, tree_size: int, root_hash: bytes) -> list[Cosignature]:
        """Cosignatures of the tree of `tree_size` leaves with this root, oldest first."""

    #: whether the store keeps the log's signing key for every node (`stored_signing_key`)
    keeps_signing_key = False

    def stored_signing_key(self, *, create: bool) -> bytes | None:
        """The log's signing key (PKCS#8 PEM) when the store keeps it for every node; None for
        stores whose key is a file of the operator's."""
        return None

    def close(self) -> None:  # noqa: B027 - backends without resources need nothing here
        """Release the backend's resources."""

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_continues(top: int, entries: Sequence[LogEntry]) -> None:
    """Raise `IntegrityError` unless `entries` start right after seq `top`."""
    if entries and entries[0].seq != top + 1:
        raise IntegrityError(f"seq {entries[0].seq} does not continue the log at {top + 1}")


def fenced_message(epoch: int, current: ClusterState | None) -> str:
    """Why an append under `epoch` is refused."""
    now = "?" if current is None else f"{current.epoch} ({current.leader})"
    return f"epoch {epoch} is over: the cluster is at epoch {now}"
