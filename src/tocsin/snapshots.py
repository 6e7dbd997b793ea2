"""Snapshots of the engine and the read models, so a restart replays only the log's tail.

Every `SNAPSHOT_EVERY` entries (and on a clean stop) a node saves each registered read model's
state (`Service.read_models`, the attributes a model names in its `SNAPSHOT_FIELDS`, captured on
the event loop that feeds them, after a publish) and then, in the writer thread, the engine's
state as of the last durable seq: one file in the data directory's `snapshots/`,
written to a temporary name, fsynced and renamed (atomic), then recorded in the log's store by
seq and digest (`EventLog.record_snapshot`). On start, the newest recorded snapshot whose file is
here and whose digest checks is loaded, and only the entries after it are replayed (each logged
transition still checked against what the engine decides). The read models may lag the engine
by the batches in flight when they were captured; each knows the last transition it folded in
(`last_seq`) and skips what it has, so they are fed from the oldest of those. Anything wrong
with a snapshot — missing, cut short, altered, from another version — only means replaying from
an older one, or from the start.

A snapshot also keeps the Merkle tree's frontier at its seq (`tocsin.store.merkle.Frontier`:
O(log n) hashes), so a restart appends to the tree at once instead of rehashing every leaf
before it is ready; the older nodes are filled in behind it (`MerkleLog.load`). A snapshot
without one (the tree was not at its seq) means the tree is rebuilt from every leaf hash, and
the log says so.

A snapshot is the pickled state of the engine's objects, so it is only loaded into an engine of
the same state layout: each records a `fingerprint` of the layout — the snapshot's own `FORMAT`,
the names and types of a fresh engine's state (and of the objects in it), the fields of the
classes its tables hold (`STATE_CLASSES`) and each read model's `SNAPSHOT_FIELDS` — and one
written under another is skipped, with a warning, for an older one or a full replay.

The digest is an HMAC-SHA256 keyed by a secret derived from the log's signing key, checked
before the file is unpickled: a snapshot is trusted no more than a head signed by that key.
`tocsin replay` ignores snapshots and checks the whole log from seq 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import hmac
import json
import logging
import os
import pickle
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tocsin import __version__
from tocsin.engine.core import Engine
from tocsin.engine.rules import Alert
from tocsin.store.base import EventLog, SnapshotRecord
from tocsin.store.merkle import Frontier
from tocsin.threats.tracks import Track

__all__ = ["ENGINE_SHARED", "FORMAT", "SNAPSHOT_EVERY", "STATE_CLASSES", "Restored",
           "Snapshots", "engine_state", "fingerprint"]

SNAPSHOT_EVERY = 100_000  # log entries between snapshots
KEEP = 2  # snapshot files kept per node
# The layout of the snapshot file itself (what `Snapshots.take` writes); bump it when that
# changes. Changes to the engine's state are caught by the fingerprint without a bump.
FORMAT = 2
# Classes whose instances fill the engine's tables: a fresh engine holds none to look at.
STATE_CLASSES: tuple[type, ...] = (Track, Alert)

# what an engine shares with the configuration it was made from, rather than owns
ENGINE_SHARED = frozenset({"regions", "catalog", "policy", "_shelter", "_alert_s", "_leaf_pos",
                           "_shelter_arr"})

log = logging.getLogger("tocsin")


def engine_state(engine: Engine) -> dict[str, Any]:
    """The part of an engine that events change (the rest comes from its configuration)."""
    return {k: v for k, v in vars(engine).items() if k not in ENGINE_SHARED}


def model_state(model: Any) -> dict[str, Any]:
    """The attributes a read model names in `SNAPSHOT_FIELDS`."""
    return {f: getattr(model, f) for f in model.SNAPSHOT_FIELDS}


def _shape(value: Any, depth: int = 0) -> Any:
    """The layout of a value: its type, and for an object the layout of its attributes."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if hasattr(value, "dtype") and hasattr(value, "ndim"):  # numpy
        return f"{name}[{value.dtype}]{value.ndim}"
    if depth < 3 and hasattr(value, "__dict__") and not isinstance(value, type):
        return {name: {k: _shape(v, depth + 1) for k, v in sorted(vars(value).items())}}
    return name


def fingerprint(fresh: Engine, models: Mapping[str, Any]) -> str:
    """The state layout a snapshot of `fresh`'s kind of engine and these read models has."""
    layout = {
        "format": FORMAT,
        "engine": {k: _shape(v) for k, v in sorted(engine_state(fresh).items())},
        "classes": {f"{c.__module__}.{c.__qualname__}": [f.name for f in dataclasses.fields(c)]
                    for c in STATE_CLASSES},
        "models": {name: [f"{type(m).__module__}.{type(m).__qualname__}",
                          *m.SNAPSHOT_FIELDS] for name, m in sorted(models.items())},
    }
    return hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a while: unpickling the read models makes millions
    of containers, each allocation counting towards a collection that finds nothing to free
    (three to four times the unpickling's own time on a 2,000,000-entry log)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclasses.dataclass(frozen=True, slots=True)
class Restored:
    """What `Snapshots.load` brought back: the engine as of `seq`, and the Merkle tree's
    frontier then (None when the snapshot has none to give)."""

    engine: Engine
    seq: int
    frontier: Frontier | None


class Snapshots:
    """The snapshots of one node's engine and read models, in `directory`."""

    def __init__(
        self,
        log: EventLog,
        directory: Path,
        key: Ed25519PrivateKey,
        *,
        prefix: str = "snapshot",
        every: int = SNAPSHOT_EVERY,
    ) -> None:
        self.log = log
        self.directory = directory
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", prefix)
        self.every = every
        self._secret = hashlib.sha256(b"tocsin snapshot\0" + key.private_bytes_raw()).digest()
        self.last_seq = 0  # of the newest snapshot taken or loaded here
        self._layout: str | None = None

    def layout(self, make_engine: Callable[[], Engine], models: Mapping[str, Any]) -> str:
        """The `fingerprint` of this node's engine and read models (computed once)."""
        if self._layout is None:
            self._layout = fingerprint(make_engine(), models)
        return self._layout

    def digest(self, data: bytes) -> str:
        """The keyed digest recorded for a snapshot's bytes."""
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    # --- taking --------------------------------------------------------------------------------

    def due(self, seq: int) -> bool:
        """Whether `every` entries were logged since the last snapshot."""
        return seq - self.last_seq >= self.every

    @staticmethod
    def capture(models: Mapping[str, Any]) -> bytes:
        """The read models' state now (call where they are fed, so none is half-updated)."""
        return pickle.dumps({name: model_state(m) for name, m in models.items()},
                            protocol=pickle.HIGHEST_PROTOCOL)

    def take(
        self, engine: Engine, seq: int, models: bytes, frontier: Frontier | None = None,
        *, layout: str,
    ) -> SnapshotRecord | None:
        """Save the engine as of durable seq `seq` with read models `capture`d at or before
        it, and the Merkle tree's `frontier` when it is the tree at `seq`, and record it in the
        log; None if it failed (a snapshot is an optimisation: failing to take one never stops
        the node). `layout`: the `fingerprint` of the engine and read models."""
        if seq <= 0:
            return None
        if frontier is not None and frontier.size != seq:
            frontier = None
        data = pickle.dumps(
            {"version": __version__, "format": layout, "seq": seq,
             "engine": engine_state(engine), "models": models,
             "merkle": None if frontier is None else (frontier.size, list(frontier.nodes))},
            protocol=pickle.HIGHEST_PROTOCOL)
        record = SnapshotRecord(seq, self.digest(data), f"{self.prefix}-{seq:012d}.pickle")
        try:
            self._write(record.name, data)
            self.log.record_snapshot(record)
        except Exception as exc:
            log.warning("snapshot at seq %d not taken: %s", seq, exc)
            return None
        self.last_seq = seq
        self._prune()
        return record

    def _write(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself must survive a crash
        finally:
            os.close(fd)

    def _prune(self) -> None:
        mine = sorted(self.directory.glob(f"{self.prefix}-*.pickle"))
        for old in mine[:-KEEP]:
            with contextlib.suppress(OSError):
                old.unlink()

    # --- loading -------------------------------------------------------------------------------

    def load(
        self, make_engine: Callable[[], Engine], models: Mapping[str, Any], end: int
    ) -> Restored | None:
        """The engine (and read models, restored in place) from the newest good snapshot at or
        before seq `end`; None when there is none."""
        for record in self.log.snapshots(limit=20):
            if record.seq > end or not record.name.startswith(self.prefix + "-"):
                continue
            path = self.directory / record.name
            try:
                data = path.read_bytes()
            except OSError:
                continue  # another node's, or pruned
            if not hmac.compare_digest(self.digest(data), record.digest):
                log.warning("%s: digest does not match the log's record; not used", path)
                continue
            try:
                # both authenticated by the HMAC above
                with _collector_paused():
                    state = pickle.loads(data)  # noqa: S301
                layout = self.layout(make_engine, models)
                if state.get("format") != layout or state["version"] != __version__:
                    log.warning("%s: written by tocsin %s with another state layout than this "
                                "one's (%s); not used", path, state.get("version"),
                                str(state.get("format"))[:12] + " != " + layout[:12])
                    continue
                with _collector_paused():
                    saved = pickle.loads(state["models"])  # noqa: S301
                if state["seq"] != record.seq or set(saved) != set(models):
                    continue  # read models added or removed since
                engine = make_engine()
                vars(engine).update(state["engine"])
                tree = state.get("merkle")
                frontier = None if tree is None else Frontier(tree[0], tuple(tree[1]))
            except Exception as exc:  # a snapshot of another shape: replay instead
                log.warning("%s: not loaded (%s)", path, exc)
                continue
            for name, fields in saved.items():
                for field, value in fields.items():
                    setattr(models[name], field, value)
            self.last_seq = record.seq
            return Restored(engine, record.seq, frontier)
        return None
