"""A log held in memory: for `simulate`, tests and benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from tocsin.audit import TreeHead
from tocsin.audit.witness import Cosignature
from tocsin.errors import Fenced, IntegrityError
from tocsin.store.base import (
    MAX_COSIGNATURES,
    ClusterState,
    EventLog,
    LogEntry,
    Rejection,
    SnapshotRecord,
    check_continues,
    fenced_message,
)

__all__ = ["MemoryLog"]


class MemoryLog(EventLog):
    """An `EventLog` in Python lists and dicts (one lock, so threads see whole batches)."""

    where = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[LogEntry] = []
        self._events: dict[tuple[str, str], int] = {}
        self._meta: dict[str, str] = {}
        self._leaves: dict[int, bytes] = {}
        self._heads: list[TreeHead] = []
        self._state = ClusterState(0, None, None, 0)
        self._rejected: dict[int, Rejection] = {}
        self._snapshots: dict[str, SnapshotRecord] = {}
        self._cosignatures: dict[int, list[tuple[bytes, Cosignature]]] = {}

    def _append(
        self,
        entries: Sequence[LogEntry],
        leaf_hashes: Sequence[bytes],
        position: int | None,
        epoch: int | None,
        rejections: Sequence[Rejection],
    ) -> None:
        with self._lock:
            if epoch is not None and epoch != self._state.epoch:
                raise Fenced(fenced_message(epoch, self._state))
            check_continues(len(self._rows), entries)
            keys: dict[tuple[str, str], int] = {}
            for e in entries:
                if e.kind == "event":
                    key = (e.source or "", e.event_id or "")
                    if key in self._events or key in keys:
                        raise IntegrityError(f"event {key} is already in the log")
                    keys[key] = e.seq
            self._rows.extend(entries)
            self._events.update(keys)
            self._leaves.update(zip((e.seq for e in entries), leaf_hashes, strict=True))
            for r in rejections:
                self._rejected.setdefault(r.stream_seq, r)
            if position is not None and position > self._state.stream_seq:
                s = self._state
                self._state = ClusterState(s.epoch, s.leader, s.leader_since, position)

    def max_seq(self) -> int:
        """The seq of the last entry."""
        return len(self._rows)

    def read(self, start: int = 1, end: int | None = None) -> Iterator[LogEntry]:
        """Entries in [start, end]."""
        stop = len(self._rows) if end is None else min(end, len(self._rows))
        yield from self._rows[max(start, 1) - 1 : stop]

    def find_events(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The seqs of those of `keys` that are logged."""
        return {k: self._events[k] for k in keys if k in self._events}

    def get_meta(self, key: str) -> str | None:
        """A stored metadata value."""
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        """Store a metadata value."""
        self._meta[key] = value

    def leaf_hashes(self, start: int = 1, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Stored leaf hashes in [start, end]."""
        with self._lock:
            rows = sorted((s, h) for s, h in self._leaves.items()
                          if s >= start and (end is None or s <= end))
        yield from rows

    def add_leaf_hashes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Store hashes of entries written without one."""
        with self._lock:
            for seq, digest in rows:
                self._leaves.setdefault(seq, digest)

    def leaf_count(self) -> int:
        """How many leaf hashes are stored."""
        return len(self._leaves)

    def add_head(self, head: TreeHead, key_id: str) -> None:
        """Keep a signed tree head."""
        with self._lock:
            self._heads.append(head)

    def heads(self, since: str | None = None, limit: int = 1000) -> list[TreeHead]:
        """Stored heads signed after `since`, oldest first."""
        with self._lock:
            return [h for h in self._heads if since is None or h.timestamp > since][:limit]

    def latest_head(self, max_size: int | None = None) -> TreeHead | None:
        """The newest stored head, within `max_size` entries when given."""
        with self._lock:
            for h in reversed(self._heads):
                if max_size is None or h.tree_size <= max_size:
                    return h
        return None

    def start_epoch(self, node: str, now: str) -> tuple[int, int]:
        """Start a new epoch led by `node`."""
        with self._lock:
            s = self._state
            self._state = ClusterState(s.epoch + 1, node, now, s.stream_seq)
            return self._state.epoch, self._state.stream_seq

    def cluster_state(self) -> ClusterState:
        """The fencing row."""
        return self._state

    def rejections(self, after: int = 0, limit: int = 100) -> list[Rejection]:
        """Refused events by stream position."""
        with self._lock:
            return [self._rejected[k] for k in sorted(self._rejected) if k > after][:limit]

    def rejection(self, source: str, event_id: str) -> Rejection | None:
        """The latest refusal of (source, id)."""
        with self._lock:
            found = [r for r in self._rejected.values()
                     if r.source == source and r.event_id == event_id]
        return max(found, key=lambda r: r.stream_seq) if found else None

    def rejected_count(self) -> int:
        """How many events were refused."""
        return len(self._rejected)

    def record_snapshot(self, record: SnapshotRecord) -> None:
        """Note a snapshot written."""
        with self._lock:
            self._snapshots[record.name] = record

    def snapshots(self, limit: int = 10) -> list[SnapshotRecord]:
        """Recorded snapshots, newest first."""
        with self._lock:
            return sorted(self._snapshots.values(), key=lambda r: (-r.seq, r.name))[:limit]

    def add_cosignature(self, tree_size: int, root_hash: bytes, cosig: Cosignature) -> str:
        """Keep a checked cosignature: "added", "known" (already kept) or "full"."""
        with self._lock:
            kept = self._cosignatures.setdefault(tree_size, [])
            if any(c.key_id == cosig.key_id for _, c in kept):
                return "known"
            if len(kept) >= MAX_COSIGNATURES:
                return "full"
            kept.append((root_hash, cosig))
            return "added"

    def cosignatures(self, tree_size: int, root_hash: bytes) -> list[Cosignature]:
        """Cosignatures of the tree of `tree_size` leaves with this root, oldest first."""
        with self._lock:
            found = [c for r, c in self._cosignatures.get(tree_size, []) if r == root_hash]
        return sorted(found, key=lambda c: (c.time, c.key_id))
