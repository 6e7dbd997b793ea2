"""Wiring of the embedded server: the ledger behind one writer thread, a bus, read models.

All writes to the log go through one thread (`_writer`), so the engine sees events in exactly
the order they are logged and the asyncio loop never blocks on fsync. What the writer decided
is then published on the bus, from which the SSE stream, webhooks and other outputs read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tocsin.audit import TreeHead
from tocsin.bus import Bus, MemoryBus
from tocsin.config import Settings
from tocsin.engine.core import Engine
from tocsin.engine.policy import load_policy
from tocsin.errors import FieldError, TocsinError, ValidationError
from tocsin.geo import RegionSet, load_region_set
from tocsin.ledger import Accepted, Ledger
from tocsin.model import Transition, format_time, parse_event, parse_time
from tocsin.readmodels import AlertHistory
from tocsin.store import EventLog, open_log, open_merkle, open_signing_key
from tocsin.store.admin import AdminBackend, open_admin
from tocsin.store.cosignatures import open_cosignatures
from tocsin.store.history import HistoryStore
from tocsin.store.merkle import check_canonical
from tocsin.threats import load_catalog
from tocsin.trust import Caller, admit, needs_tick
from tocsin.witness import load_witness_keys

__all__ = ["Service", "SubmitResult", "make_service"]

T = TypeVar("T")

log = logging.getLogger("tocsin")


def wall_now() -> datetime:
    """The wall clock, in UTC (the shells' only clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What a submit did: per-event results and every envelope it published."""

    accepted: list[Accepted]
    envelopes: list[dict[str, Any]]


class Service:
    """One embedded tocsin: log, engine, admin state, bus and read models."""

    def __init__(
        self,
        settings: Settings,
        *,
        bus: Bus | None = None,
        clock: Callable[[], datetime] = wall_now,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.regions: RegionSet = load_region_set(settings.regions)
        self.policy = load_policy(settings.policy)
        catalog = load_catalog()
        data_dir = Path(settings.data_dir)
        # settings.store picks the backends by URL (PostgreSQL for a cluster), else SQLite files
        self.log: EventLog = open_log(settings.store or data_dir)
        self.admin: AdminBackend = open_admin(settings.store, data_dir)
        self._check_meta()
        self.merkle = open_merkle(self.log)
        self.log_key = open_signing_key(self.log, settings.log_key, data_dir,
                                        settings.config_dir)
        self.cosignatures = open_cosignatures(self.log)
        self.witnesses = load_witness_keys(settings.witnesses)
        self.ledger = Ledger(
            self.log, lambda: Engine(self.regions, catalog, self.policy), merkle=self.merkle
        )
        self.bus: Bus = bus if bus is not None else MemoryBus()
        self.archive = HistoryStore(data_dir / "tocsin.db", self.regions)
        self.history = AlertHistory(self.archive)
        self.ready = False
        self.started_at = time.monotonic()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tocsin-writer")
        self._ticker: asyncio.Task[None] | None = None
        self.on_publish: list[Callable[[list[dict[str, Any]]], None]] = []
        self.on_reject: list[Callable[[int], None]] = []
        # Read models fed by on_publish are rebuilt through on_recover: each logged transition,
        # as its JSON object, in log order, before the service is ready.
        self.on_recover: list[Callable[[dict[str, Any]], None]] = []
        self.closing = asyncio.Event()
        self.closing_loop: asyncio.AbstractEventLoop | None = None

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

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild state from the log, then start the clock."""
        loop = asyncio.get_running_loop()
        self.closing_loop = loop
        await loop.run_in_executor(self._writer, self._recover)
        self.ready = True
        self._ticker = asyncio.create_task(self._tick_loop(), name="tocsin-ticker")

    def _recover(self) -> None:
        self.merkle.load()
        last = self.ledger.recover()
        for entry in self.log.read():
            if entry.kind == "transition":
                obj = entry.obj()
                self.history.apply(Transition.from_dict(obj))
                for hook in self.on_recover:
                    hook(obj)
        log.info("recovered %d log entries", last)

    def begin_shutdown(self) -> None:
        """Tell long-lived streams to end so a graceful shutdown does not wait on them."""
        self.ready = False
        self.closing.set()

    async def stop(self) -> None:
        """Stop the clock, let the writer finish, close the stores."""
        self.begin_shutdown()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._writer.shutdown(wait=True)
        await self.bus.aclose()
        self.merkle.close()
        self.cosignatures.close()
        self.archive.close()
        self.log.close()
        self.admin.close()

    def leading(self, make: Callable[[], T]) -> T:
        """An output that must run on one node only (webhook delivery): here, this one.

        `make()` builds it (with `start()` and `async stop()`); a cluster node
        (`tocsin.cluster.ClusterService`) runs a fresh one each time it becomes the leader.
        """
        return make()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            try:
                deadline = self.ledger.engine.next_deadline()
                if deadline is not None and deadline <= self.clock():
                    await self.submit([], tick=True)
            except TocsinError:
                log.exception("tick failed; will retry")

    async def sign_head(self) -> TreeHead | None:
        """Sign a tree head over everything logged (None if the last one covers it all)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._writer, lambda: self.merkle.sign(self.log_key, self.clock())
        )

    # --- writes --------------------------------------------------------------------------------

    async def submit(
        self, raws: Sequence[Any], *, key_name: str | None = None, tick: bool = False,
        caller: Caller | None = None,
    ) -> SubmitResult:
        """Apply a batch durably (in the writer thread) and publish what it decided.

        `caller` (a key) is held to the ownership rules of `tocsin.trust`; the server's own
        callers (no caller) are not.
        """
        loop = asyncio.get_running_loop()
        result, error = await loop.run_in_executor(
            self._writer, self._submit_sync, list(raws), key_name, tick, caller
        )
        if result.envelopes:
            stamp = format_time(self.clock())
            for env in result.envelopes:
                env["published_at"] = stamp
            self.history.apply_many(result.envelopes)
            for hook in self.on_publish:
                hook(result.envelopes)
            await self.bus.publish(result.envelopes)
        if error is not None:
            for reject in self.on_reject:
                reject(len(raws))
            raise error
        return result

    def _submit_sync(
        self, raws: list[Any], key_name: str | None, tick: bool, caller: Caller | None = None
    ) -> tuple[SubmitResult, TocsinError | None]:
        now = self.clock()
        recorded = format_time(now)
        engine = self.ledger.engine
        done: list[Accepted] = []
        times: dict[int, str] = {}
        if raws:
            # A malformed batch must leave the log untouched, clock tick included.
            shape_error = self._check_shape(raws)
            if shape_error is not None:
                return SubmitResult([], []), shape_error
        # The engine judges "too far in the future" against its latest tick, so bring it up to
        # the wall clock first; a tick is logged only when the clock really moved.
        if tick or needs_tick(now, engine.tick_us, raws):
            res = self.ledger.tick(now, recorded_at=recorded)
            done.append(res)
            times[res.seq] = recorded
        results: list[Accepted] = []
        error: TocsinError | None = None
        if raws:
            try:
                results = self.ledger.submit(
                    raws, key_name=key_name, recorded_at=recorded,
                    admit=lambda events: admit(caller, events, live=self._track_sources,
                                               find=self.log.find_event, body_at=self._body_at))
            except TocsinError as exc:
                error = exc
            for raw, res in zip(raws, results, strict=False):
                if not res.duplicate:
                    times[res.seq] = format_time(parse_time(raw["time"]))
        return SubmitResult(results, self._envelopes(done + results, times, recorded)), error

    def _track_sources(self, track: str) -> frozenset[str] | None:
        return self.ledger.engine.track_sources(track)

    def _body_at(self, seq: int) -> Any:
        return next((e.obj() for e in self.log.read(seq, seq)), None)

    def _check_shape(self, raws: list[Any]) -> ValidationError | None:
        """Field errors of a batch that do not depend on the clock (as `Ledger.validate`)."""
        known = self.regions.regions.__contains__
        errors: list[FieldError] = []
        for i, raw in enumerate(raws):
            prefix = f"[{i}]." if len(raws) > 1 else ""
            try:
                parse_event(raw, region_known=known)
                check_canonical(raw)
            except ValidationError as exc:
                errors.extend(FieldError(prefix + e.field, e.reason) for e in exc.errors)
        return ValidationError(errors) if errors else None

    @staticmethod
    def _envelopes(
        accepted: list[Accepted], times: dict[int, str], decided: str
    ) -> list[dict[str, Any]]:
        out = []
        for res in accepted:
            for t in res.transitions:
                env = t.to_dict()
                env["cause_time"] = times.get(t.cause_seq)
                env["decided_at"] = decided
                env["log_index"] = t.seq - 1  # its leaf in the Merkle log
                out.append(env)
        return out

    # --- reads ---------------------------------------------------------------------------------

    async def read(self, fn: Callable[[Engine], Any]) -> Any:
        """Run a read of the engine in the writer thread, so it never sees a half-applied event."""
        loop = asyncio.get_running_loop()
        engine = self.ledger
        return await loop.run_in_executor(self._writer, lambda: fn(engine.engine))

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
    ) -> list[dict[str, Any]]:
        """Transitions logged in (`after`, `end`], as envelopes, for resuming streams.

        They carry the provenance of live ones: `cause_time` (the causing event's own time) and
        `decided_at` (when it was logged) come from the log; `published_at` is now, when this
        copy is published again.
        """
        out: list[dict[str, Any]] = []
        times: dict[int, tuple[str | None, str | None]] = {}
        published = format_time(self.clock())
        for entry in self.log.read(after + 1, end):
            if entry.kind == "event":
                times[entry.seq] = (_event_time(entry.obj()), entry.recorded_at)
                continue
            env = entry.obj()
            if leaves is not None and env["region"] not in leaves:
                continue
            cause = entry.cause_seq or env["cause_seq"]
            if cause not in times:
                (ev,) = self.log.read(cause, cause)
                times[cause] = (_event_time(ev.obj()), ev.recorded_at)
            env["cause_time"], env["decided_at"] = times[cause]
            env["log_index"] = entry.seq - 1  # as live envelopes have it
            env["published_at"] = published
            out.append(env)
        return out


def _event_time(raw: dict[str, Any]) -> str | None:
    """An event's `time` in the canonical form live envelopes use."""
    try:
        return format_time(parse_time(raw["time"]))
    except (KeyError, TypeError, ValueError):
        return None


def make_service(settings: Settings) -> Service:
    """The service the settings describe: a cluster node when they name a bus, else embedded."""
    if settings.bus:
        from tocsin.cluster import ClusterService

        return ClusterService(settings)
    return Service(settings)
