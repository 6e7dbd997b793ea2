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

The digest is an HMAC-SHA256 keyed by a secret derived from the log's signing key, checked
before the file is unpickled: a snapshot is trusted no more than a head signed by that key.
`tocsin replay` ignores snapshots and checks the whole log from seq 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tocsin import __version__
from tocsin.engine.core import Engine
from tocsin.store.base import EventLog, SnapshotRecord

__all__ = ["ENGINE_SHARED", "SNAPSHOT_EVERY", "Snapshots", "engine_state"]

SNAPSHOT_EVERY = 100_000  # log entries between snapshots
KEEP = 2  # snapshot files kept per node

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

    def take(self, engine: Engine, seq: int, models: bytes) -> SnapshotRecord | None:
        """Save the engine as of durable seq `seq` with read models `capture`d at or before
        it, and record it in the log; None if it failed (a snapshot is an optimisation:
        failing to take one never stops the node)."""
        if seq <= 0:
            return None
        data = pickle.dumps(
            {"version": __version__, "seq": seq, "engine": engine_state(engine),
             "models": models},
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
    ) -> tuple[Engine, int] | None:
        """The engine (and read models, restored in place) from the newest good snapshot at or
        before seq `end`, with its seq; None when there is none."""
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
                state = pickle.loads(data)  # noqa: S301
                saved = pickle.loads(state["models"])  # noqa: S301
                if (state["seq"] != record.seq or state["version"] != __version__
                        or set(saved) != set(models)):
                    continue  # another version, or read models added or removed since
                engine = make_engine()
                vars(engine).update(state["engine"])
            except Exception as exc:  # a snapshot of another shape: replay instead
                log.warning("%s: not loaded (%s)", path, exc)
                continue
            for name, fields in saved.items():
                for field, value in fields.items():
                    setattr(models[name], field, value)
            self.last_seq = record.seq
            return engine, record.seq
        return None
