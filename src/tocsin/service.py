"""Wiring of a node: the log, the ledger behind one writer thread, the bus, the read models.

A `Service` is composed of two strategies:

- an *ingest* (`Ingest`): what `submit` does with a batch parsed and checked at the edge. The
  embedded `LocalIngest` decides and commits it in the writer thread and answers with log seqs;
  a cluster node's (`tocsin.cluster.ingest`) publishes it to the events stream for the leader;
- a *role* (`Role`): who writes the log and moves the clock. The embedded `SoleWriter` recovers,
  ticks and signs heads; a cluster node's (`tocsin.cluster.node`) follows the log and leads
  when it holds the lock.

All writes to the log go through one thread (`writer`), so the engine sees events in exactly
the order they are logged and the asyncio loop never blocks on fsync. What was committed is
handed to `publish` — the one post-commit fan-out, to the `outputs` (`tocsin.outputs.base`),
which `recover_sync` rebuilds from the log on start. Envelopes are built in `tocsin.envelopes`;
which outputs a node has is decided in one place, `tocsin.bootstrap.compose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tocsin.audit import TreeHead
from tocsin.bus import MemoryBus
from tocsin.config import Settings
from tocsin.engine.core import Engine
from tocsin.engine.policy import load_policy
from tocsin.envelopes import Envelope, envelopes_of, live_envelopes
from tocsin.errors import TocsinError, ValidationError
from tocsin.geo import RegionSet, load_region_set
from tocsin.ledger import NOTHING, Accepted, Ledger, parse_batch
from tocsin.model import Event, format_time
from tocsin.outputs.base import Outputs
from tocsin.readmodels import AlertHistory
from tocsin.snapshots import Snapshots
from tocsin.store import EventLog, open_admin, open_history, open_log, open_signing_key
from tocsin.store.admin import AdminBackend
from tocsin.store.merkle import MerkleLog
from tocsin.threats import load_catalog
from tocsin.trust import Caller, admit, needs_tick
from tocsin.witness import load_witness_keys

__all__ = ["Ingest", "LocalIngest", "Role", "Service", "SoleWriter",
           "SubmitResult", "wall_now"]

T = TypeVar("T")

REBUILD_PAGE = 1_000  # log entries per page when the outputs are rebuilt on start (bounded memory)

log = logging.getLogger("tocsin")


def wall_now() -> datetime:
    """The wall clock, in UTC (the shells' only clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What a submit did: per-event results and every envelope it published."""

    accepted: list[Accepted]
    envelopes: list[Envelope]


class Ingest(Protocol):
    """What a node does with a batch parsed and checked at the edge."""

    async def submit(
        self, events: list[Event], *, key_name: str | None, tick: bool,
        caller: Caller | None = None,
    ) -> SubmitResult:
        """Take the batch in; raise `ValidationError` if the engine refuses it."""
        ...


class Role(Protocol):
    """Who writes the log on this node, and how it starts and stops."""

    name: str

    @property
    def is_leader(self) -> bool:
        """Whether this node writes the log (and runs the leader-only outputs) right now."""
        ...

    async def start(self) -> None:
        """Recover from the log and start working; the service is ready when it returns."""
        ...

    async def stop(self) -> None:
        """Stop working (the writer and the stores are closed by the service afterwards)."""
        ...

    async def sign_head(self) -> TreeHead | None:
        """Sign a head over everything logged, or take up the one the writer signed."""
        ...

    async def status(self) -> dict[str, Any]:
        """`GET /api/v1/cluster`."""
        ...


class Service:
    """One tocsin node: log, engine, admin state, bus and read models, with its two strategies."""

    def __init__(
        self,
        settings: Settings,
        *,
        bus: MemoryBus | None = None,
        clock: Callable[[], datetime] = wall_now,
        log: EventLog | None = None,
        strategies: Callable[[Service], tuple[Ingest, Role]] | None = None,
    ) -> None:
        """`strategies` makes this node's ingest and role (default: the embedded ones)."""
        self.settings = settings
        self.clock = clock
        self.regions: RegionSet = load_region_set(settings.regions)
        self.policy = load_policy(settings.policy)
        catalog = load_catalog()
        data_dir = Path(settings.data_dir)
        # settings.store picks the backends by URL (PostgreSQL for a cluster), else SQLite files
        self.log: EventLog = log if log is not None else open_log(settings.store or data_dir)
        self.admin: AdminBackend = open_admin(settings.store, data_dir)
        self._check_meta()
        self.merkle = MerkleLog(self.log)
        self.log_key = open_signing_key(self.log, settings.log_key, data_dir,
                                        settings.config_dir)
        self.witnesses = load_witness_keys(settings.witnesses)
        self.ledger = Ledger(
            self.log, lambda: Engine(self.regions, catalog, self.policy), merkle=self.merkle
        )
        self.bus: MemoryBus = bus if bus is not None else MemoryBus()
        self.archive = open_history(settings.store, data_dir, self.regions)
        self.history = AlertHistory(self.archive)
        self.snapshots = Snapshots(self.log, data_dir / "snapshots", self.log_key,
                                   prefix=settings.node_id or "snapshot")
        self.ready = False
        self.ready_once = False  # recovered at least once (so a snapshot would be whole)
        self.started_at = time.monotonic()
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tocsin-writer")
        # every output (streams, webhooks, CAP, national views, sirens, metrics, the history):
        # registered by `tocsin.bootstrap.compose`, fed by `publish`, rebuilt by `recover_sync`
        self.outputs = Outputs()
        self.refused = 0  # events refused since start (4xx), for the metrics
        self.closing = asyncio.Event()
        self.closing_loop: asyncio.AbstractEventLoop | None = None
        self.ingest: Ingest
        self.role: Role
        if strategies is None:
            self.ingest, self.role = LocalIngest(self), SoleWriter(self)
        else:
            self.ingest, self.role = strategies(self)

    @property
    def read_models(self) -> dict[str, Any]:
        """The outputs' models that snapshots keep (`tocsin.snapshots`), by name."""
        return self.outputs.read_models

    def _check_meta(self) -> None:
        stored = self.log.get_meta("regions")
        if stored is None:
            self.log.set_meta("regions", self.settings.regions)
            self.log.set_meta("policy", json.dumps(self.policy.to_dict(), sort_keys=True))
        elif stored != self.settings.regions:
            raise TocsinError(
                f"{self.settings.data_dir} holds a log decided on region set {stored!r}; "
                f"start with --regions {stored} (or use another data directory)"
            )
        # A drill and the real thing never share a log: every copy of a transition (a resumed
        # stream, a webhook retried after a restart) is marked with the mode of the server
        # sending it, which must be the mode it was decided in.
        mode = self.log.get_meta("mode")
        if mode is None:
            self.log.set_meta("mode", self.settings.mode)
        elif mode != self.settings.mode:
            raise TocsinError(
                f"{self.settings.data_dir} holds the log of a server in {mode} mode; start "
                f"with --mode {mode}, or use another data directory for this {self.settings.mode}"
                " one (--demo runs in exercise mode)"
            )

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild state (and the outputs) from the log, let the role work, start the outputs."""
        self.closing_loop = asyncio.get_running_loop()
        await self.role.start()
        await self.outputs.start(leading=self.role.is_leader)
        # the tree's nodes older than the snapshot, filled in behind a node that is ready
        self.merkle.start_filling()

    def recover_sync(self, end: int | None = None) -> int:
        """Rebuild the engine and read models (in the writer thread): from the newest snapshot
        whose digest checks, then the log after it, up to `end` (default: what the Merkle tree
        holds, a prefix every part agrees on while a leader goes on writing); the last seq."""
        ledger = self.ledger
        loaded = self.snapshots.load(ledger.new_engine, self.read_models,
                                     self.log.max_seq() if end is None else end)
        if loaded is not None and loaded.frontier is None:
            log.warning("the snapshot at seq %d keeps no Merkle tree; rebuilding the tree from "
                        "every stored leaf hash", loaded.seq)
        self.merkle.load(frontier=None if loaded is None else loaded.frontier, fill=False)
        end = self.merkle.size if end is None else end
        engine, start = (loaded.engine, loaded.seq) if loaded is not None else (
            ledger.new_engine(), 0)
        last = ledger.resume(engine, start, end=end)
        # the read models of a snapshot skip what they have (each knows its last transition);
        # outputs no snapshot holds are fed the whole log
        models_from = min([start] + [m.last_seq for m in self.read_models.values()])
        first = 1 if self.outputs.need_whole_log else models_from + 1
        if first <= last:
            self._rebuild_outputs(first, last)
        log.info("recovered %d log entries (from a snapshot at seq %d)", last, start)
        self.regions.warm()  # this is the writer thread: the first detection need not wait
        self.ready_once = True
        return last

    def _rebuild_outputs(self, first: int, last: int) -> None:
        """Feed the outputs the log's transitions in [`first`, `last`], as envelopes made by the
        same function as live ones, a page at a time (bounded memory on any log)."""
        published = format_time(self.clock())
        entries = iter(self.log.read(first, last))
        while page := list(itertools.islice(entries, REBUILD_PAGE)):
            self.outputs.rebuild(envelopes_of(page, published, self.entry,
                                              mode=self.settings.mode))

    async def snapshot(self, *, force: bool = False) -> None:
        """Take a snapshot when one is due (or now, with `force`): the read models here on the
        loop that feeds them, then the engine in the writer thread."""
        ledger = self.ledger
        seq = ledger.durable_seq
        if not self.ready_once or seq <= self.snapshots.last_seq:
            return
        if not (force or self.snapshots.due(seq)):
            return
        models = self.snapshots.capture(self.read_models)
        layout = self.snapshots.layout(ledger.new_engine, self.read_models)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self.writer, lambda: self.snapshots.take(ledger.engine, ledger.durable_seq, models,
                                                     self.merkle.frontier(), layout=layout))

    def begin_shutdown(self) -> None:
        """Tell long-lived streams to end so a graceful shutdown does not wait on them."""
        self.ready = False
        self.closing.set()

    async def stop(self, *, snapshot: bool = True) -> None:
        """Stop the outputs (they may still log, e.g. siren statuses) and the role, let the
        writer finish, close the stores; `snapshot`: take one first (a node's own, so a
        one-off process on a shared store takes none)."""
        self.begin_shutdown()
        await self.outputs.stop()
        await self.role.stop()
        if snapshot:
            with contextlib.suppress(Exception):  # a clean stop restarts without replaying
                await self.snapshot(force=True)
        self.writer.shutdown(wait=True)
        await self.bus.aclose()
        self.merkle.close()
        self.archive.close()
        self.log.close()
        self.admin.close()

    async def leadership(self, leading: bool) -> None:
        """The role gained or lost the lead: start or stop the leader-only outputs."""
        await self.outputs.leadership(leading)

    async def sign_head(self) -> TreeHead | None:
        """Sign a tree head over everything logged (None if the last one covers it all)."""
        return await self.role.sign_head()

    async def status(self) -> dict[str, Any]:
        """This node, whether it leads, who leads, how far it got."""
        return await self.role.status()

    # --- writes --------------------------------------------------------------------------------

    async def submit(
        self, raws: Sequence[Any], *, key_name: str | None = None, tick: bool = False,
        caller: Caller | None = None,
    ) -> SubmitResult:
        """Parse and check a batch once, here at the edge, and hand it to the ingest.

        `caller` (a key) is held to the ownership rules of `tocsin.trust`; the server's own
        callers (no caller) are not.
        """
        try:
            events = parse_batch(raws, region_known=self.regions.regions.__contains__)
        except ValidationError:
            self.rejected(len(raws))
            raise  # a malformed batch leaves the log untouched, clock tick included
        return await self.ingest.submit(events, key_name=key_name, tick=tick, caller=caller)

    def rejected(self, n: int) -> None:
        """Count `n` refused events."""
        self.refused += n

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """The one post-commit fan-out: every output, in registration order."""
        self.outputs.apply(envelopes)

    # --- reads ---------------------------------------------------------------------------------

    async def read(self, fn: Callable[[Engine], Any]) -> Any:
        """Run a read of the engine in the writer thread, so it never sees a half-applied event."""
        loop = asyncio.get_running_loop()
        ledger = self.ledger
        return await loop.run_in_executor(self.writer, lambda: fn(ledger.engine))

    def leaves_for(
        self, region: str | None, lat: float | None, lon: float | None
    ) -> set[str] | None:
        """The leaf filter of a request: a region (any level), a point, or None for all."""
        if region is not None:
            return set(self.regions.leaves_under(region))
        if lat is not None and lon is not None:
            leaf = self.regions.locate(lat, lon)
            return {leaf} if leaf else set()
        return None

    def backlog(
        self, after: int, leaves: set[str] | None, end: int | None = None
    ) -> list[Envelope]:
        """Transitions logged in (`after`, `end`], as envelopes, for resuming streams.

        They carry the provenance of live ones (from the log); `published_at` is now, when this
        copy is published again.
        """
        return envelopes_of(list(self.log.read(after + 1, end)), format_time(self.clock()),
                            self.entry, leaves, mode=self.settings.mode)

    def body_at(self, seq: int) -> Any:
        """The JSON body of the log entry at `seq` (None if there is none)."""
        return next((e.obj() for e in self.log.read(seq, seq)), None)

    def entry(self, seq: int) -> Any:
        """The log entry at `seq`."""
        (entry,) = self.log.read(seq, seq)
        return entry


class LocalIngest:
    """The embedded ingest: decide and commit in the writer thread, answer with log seqs."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def submit(
        self, events: list[Event], *, key_name: str | None, tick: bool,
        caller: Caller | None = None,
    ) -> SubmitResult:
        """Apply a batch durably (in the writer thread) and publish what it decided."""
        svc = self.service
        loop = asyncio.get_running_loop()
        result, error = await loop.run_in_executor(
            svc.writer, self.commit_sync, events, key_name, tick, caller)
        await svc.publish(result.envelopes)
        await svc.snapshot()
        if error is not None:
            svc.rejected(len(events))
            raise error
        return result

    def commit_sync(
        self, events: list[Event], key_name: str | None, tick: bool,
        caller: Caller | None = None,
    ) -> tuple[SubmitResult, TocsinError | None]:
        """Decide a batch (after a clock tick when the clock moved) and commit it at once."""
        svc = self.service
        ledger = svc.ledger
        now = svc.clock()
        recorded = format_time(now)
        decision = NOTHING
        # The engine judges "too far in the future" against its latest tick, so bring it up to
        # the wall clock first; a tick is logged when the clock really moved, or when an event
        # is dated after the last tick (so it counts as of its own time, not an older tick's).
        engine = ledger.engine
        if tick or needs_tick(now, engine.tick_us, [e.raw for e in events]):
            decision = ledger.decide_tick(now, recorded_at=recorded)
        accepted: list[Accepted] = []
        error: TocsinError | None = None
        if events:
            try:
                mine = ledger.decide(
                    events, key_name=key_name, recorded_at=recorded,
                    admit=lambda checked: admit(caller, checked, live=engine.track_sources,
                                                find=svc.log.find_event, body_at=svc.body_at))
            except TocsinError as exc:
                error = exc
            else:
                accepted = mine.accepted
                decision = decision + mine
        if decision.entries:
            ledger.commit(decision)
        envelopes = live_envelopes(decision, recorded, recorded,
                                   mode=self.service.settings.mode)
        return SubmitResult(accepted, envelopes), error


class SoleWriter:
    """The embedded role: this node alone writes the log, ticks the clock and signs heads."""

    name = "embedded"
    is_leader = True

    def __init__(self, service: Service) -> None:
        self.service = service
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Recover from the log, then start the clock."""
        svc = self.service
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(svc.writer, svc.recover_sync)
        svc.ready = True
        self._ticker = asyncio.create_task(self._tick_loop(), name="tocsin-ticker")

    async def stop(self) -> None:
        """Stop the clock."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def _tick_loop(self) -> None:
        svc = self.service
        while True:
            await asyncio.sleep(svc.settings.tick_s)
            try:
                deadline = svc.ledger.engine.next_deadline()
                if deadline is not None and deadline <= svc.clock():
                    await svc.submit([], tick=True)
            except TocsinError:
                log.exception("tick failed; will retry")

    async def sign_head(self) -> TreeHead | None:
        """Sign in the writer thread."""
        svc = self.service
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            svc.writer, lambda: svc.merkle.sign(svc.log_key, svc.clock()))

    async def status(self) -> dict[str, Any]:
        """The one node is its own leader; nothing is refused after a `202`."""
        import socket

        settings = self.service.settings
        me = settings.node_id or f"{socket.gethostname()}:{settings.port}"
        return {"node": me, "is_leader": True, "leader": me, "role": self.name,
                "log_seq": self.service.ledger.durable_seq, "rejected": 0}
