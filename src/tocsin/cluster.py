"""A cluster node: every node ingests and serves; one leader, elected in PostgreSQL, decides.

`tocsin serve --store postgresql://… --bus nats://…` runs a `ClusterService`. Theory of
operation:

**Ingest (any node).** `submit` checks a batch as the embedded server does before it touches the
clock (schema, known regions, I-JSON; the key and its role were checked by the API), answers
events already in the log from the log, and publishes the others to the JetStream events stream
(`tocsin.bus.nats`). The `202` goes out once JetStream has stored them, with each event's
`stream_seq`; its log `seq` is not known yet. Whether an event is too far ahead of the clock is
the leader's call, since only the leader has the clock: an event it refuses is recorded in the
table `rejected`, with the reason, and served at `GET /api/v1/cluster/rejected` and
`GET /api/v1/cluster/event` — its sender already had a `202`.

**Leader (one node).** The node that holds the `LeaderLease` starts an epoch, applies whatever
the log has that it has not applied yet, and reads the events stream from the position that was
committed with the log. For each batch of messages it ticks the engine up to its wall clock
(when that moved a second, as the embedded server does), applies each event through the same
`Ledger` — so the log is exactly what `tocsin simulate` makes of the same events — and commits
entries, their leaf hashes, the stream position and the refused events in one fenced
transaction. Then it publishes: to this node's own streams (SSE, webhooks, CAP, …) and to the
JetStream transitions stream. Due timers fire from ticks it logs the same way. Webhook delivery
(and any other output made with `leading()`) runs on the leader only.

**Followers (every other node).** Woken by the `NOTIFY` of each commit (and every
`lease_poll_s` anyway), a follower reads the new entries from the log, applies them to its own
engine — checking that it decides exactly what the leader logged, byte for byte — extends its
Merkle tree from the stored leaf hashes, and publishes the transitions to its own streams. Its
reads, SSE streams (which resume from the shared log), CAP feed, alerts.in.ua API and dashboard
are those of the leader, milliseconds later. It serves signed tree heads the leader signed.

**Failover.** The lock is a session lock: the leader's death ends its session and frees it. A
standby (trying every `lease_poll_s`) takes it, bumps the epoch — waiting for a commit of the
old leader still in flight, which lands first — applies the few entries its warm engine lacks,
and resumes reading at the committed position. Events the old leader consumed but did not commit
are read again; those it committed are not (position and entries are one transaction). A deposed
leader that comes back cannot commit: its epoch is stale (`Fenced`), and it steps down.

**Why a PostgreSQL advisory lock, not a NATS KV lease.** The fence has to be checked where the
commit happens, and the commit happens in PostgreSQL: with the lock, the epoch and the log in
one database there is no window in which a lease expired in one system while a commit still
lands in the other. A session lock also needs no renewal: it lasts exactly as long as the
leader's connection, and is released the moment the leader's process dies (its socket closes),
which is what makes a takeover take a fraction of a second instead of a lease's TTL. NATS KV
would add a second clock (the TTL) to reason about, and a paused leader could still commit after
its lease lapsed unless the store checked a fence anyway — which is the part doing the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import psycopg

from tocsin.audit import TreeHead
from tocsin.bus.nats import Consumed, EventFeed, NatsBus
from tocsin.config import Settings
from tocsin.errors import (
    Fenced,
    IntegrityError,
    ReplayMismatch,
    StoreError,
    TocsinError,
    ValidationError,
)
from tocsin.ledger import Accepted, replay_into
from tocsin.model import dumps, format_time, parse_event, parse_time
from tocsin.service import Service, SubmitResult, wall_now
from tocsin.store.base import EventLog, LogEntry
from tocsin.store.postgres import (
    KEEPALIVE,
    LeaderLease,
    PostgresLog,
    PostgresMerkleLog,
    Rejection,
    is_postgres_url,
)
from tocsin.trust import Caller, admit, needs_tick

__all__ = ["ClusterService", "envelopes_of"]

log = logging.getLogger("tocsin.cluster")

T = TypeVar("T")
BATCH = 512  # events stream messages per leader transaction, at most
LEASE_CHECK_S = 0.5  # how often a leader makes sure it still holds the lock
COMMIT_BUDGET_S = 0.05  # work per leader transaction before it commits and publishes


def _event_time(raw: Any) -> str | None:
    try:
        return format_time(parse_time(raw["time"]))
    except (KeyError, TypeError, ValueError):
        return None


def envelopes_of(
    entries: Sequence[LogEntry],
    published: str,
    cause: Callable[[int], LogEntry] | None = None,
) -> list[dict[str, Any]]:
    """The transitions among `entries` as the envelopes streams get (as `Service.backlog`).

    `cause(seq)` fetches a causing event that is not among `entries` (never needed for whole
    commits, where transitions follow their event).
    """
    times: dict[int, tuple[str | None, str | None]] = {}
    out: list[dict[str, Any]] = []
    for entry in entries:
        if entry.kind == "event":
            times[entry.seq] = (_event_time(entry.obj()), entry.recorded_at)
            continue
        env = entry.obj()
        seq = entry.cause_seq or env["cause_seq"]
        if seq not in times:
            if cause is None:
                raise IntegrityError(f"transition {entry.seq} without its event {seq}")
            ev = cause(seq)
            times[seq] = (_event_time(ev.obj()), ev.recorded_at)
        env["cause_time"], env["decided_at"] = times[seq]
        env["log_index"] = entry.seq - 1
        env["published_at"] = published
        out.append(env)
    return out


class _Pending(EventLog):
    """The log as a leader's batch sees it: the store plus the entries not committed yet.

    The `Ledger` appends here; the batch is committed in one transaction afterwards. Reads go to
    the store, so a `Ledger.recover` after a failed batch rebuilds from what is committed.
    """

    def __init__(self, log: PostgresLog) -> None:
        self.store = log
        self.entries: list[LogEntry] = []
        self._mine: dict[tuple[str, str], int] = {}
        self._known: dict[tuple[str, str], int] = {}
        self._asked: set[tuple[str, str]] = set()

    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Look a batch's event keys up in the store in one query."""
        wanted = set(keys)
        self._known.update(self.store.find_events(wanted))
        self._asked |= wanted

    def append(self, entries: Sequence[LogEntry]) -> None:
        if self.entries and entries and entries[0].seq != self.entries[-1].seq + 1:
            raise IntegrityError(f"seq {entries[0].seq} does not continue the batch")
        self.entries.extend(entries)
        for e in entries:
            if e.kind == "event":
                self._mine[(e.source or "", e.event_id or "")] = e.seq

    def max_seq(self) -> int:
        return self.entries[-1].seq if self.entries else self.store.max_seq()

    def read(self, start: int = 1, end: int | None = None) -> Iterator[LogEntry]:
        return self.store.read(start, end)

    def get_meta(self, key: str) -> str | None:
        return self.store.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.store.set_meta(key, value)

    def find_event(self, source: str, event_id: str) -> int | None:
        key = (source, event_id)
        if key in self._mine:
            return self._mine[key]
        if key in self._known or key in self._asked:
            return self._known.get(key)
        return self.store.find_event(source, event_id)


class _LeaderOnly:
    """An output that runs on whichever node leads; a fresh one each time this node does.

    Stands in for the output itself: `start()` and `stop()` say whether it is wanted, the node
    starts and stops the real one as it gains and loses the lead, and any other attribute
    (`wake()` …) goes to the running one, or does nothing while there is none.
    """

    def __init__(self, node: ClusterService, make: Callable[[], Any]) -> None:
        self._node = node
        self._make = make
        self._wanted = False
        self._current: Any = None

    def start(self) -> None:
        self._wanted = True
        if self._node.is_leader:
            asyncio.ensure_future(self.activate())

    async def stop(self) -> None:
        self._wanted = False
        await self.deactivate()

    async def activate(self) -> None:
        if not self._wanted or self._current is not None:
            return
        output = self._make()
        started = output.start()
        if inspect.isawaitable(started):
            await started
        self._current = output

    async def deactivate(self) -> None:
        output, self._current = self._current, None
        if output is not None:
            try:
                await output.stop()
            except Exception:
                log.exception("stopping a leader-only output failed")

    @property
    def current(self) -> Any:
        """The running output while this node leads, else None."""
        return self._current

    def __getattr__(self, name: str) -> Any:
        current = self.__dict__.get("_current")
        if current is None:
            return lambda *_args, **_kwargs: None
        return getattr(current, name)


class ClusterService(Service):
    """A node of a cluster: the embedded service's API over a shared store and a NATS bus."""

    def __init__(
        self, settings: Settings, *, clock: Callable[[], datetime] = wall_now
    ) -> None:
        if not is_postgres_url(settings.store):
            raise TocsinError("a cluster (--bus) needs a shared store: --store postgresql://...")
        super().__init__(settings, clock=clock)
        assert isinstance(self.log, PostgresLog) and isinstance(self.merkle, PostgresMerkleLog)
        self.pg: PostgresLog = self.log
        self.tree: PostgresMerkleLog = self.merkle
        self._check_cluster_meta()
        self.node_id = settings.node_id or f"{socket.gethostname()}:{settings.port}"
        assert settings.bus is not None
        self.nats = NatsBus(
            settings.bus, name=settings.cluster_name, node=self.node_id,
            replicas=settings.stream_replicas, max_age_s=settings.stream_max_age_s,
            dedup_s=settings.stream_dedup_s,
        )
        self.lease = LeaderLease(self.pg)
        self.role = "starting"  # then follower | leader; "diverged" stops it for good
        self.epoch: int | None = None
        self.position = 0  # the events stream position this node committed up to, as leader
        self.leader_since: str | None = None
        self.takeover_s: float | None = None  # lock taken -> consuming, the last time it led
        self.first_commit_s: float | None = None  # lock taken -> first events committed
        self._taken = 0.0
        self.problem: str | None = None
        self.consumed = 0
        self.refused = 0
        self._outputs: list[_LeaderOnly] = []
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._republish = True

    def _check_cluster_meta(self) -> None:
        mine = json.dumps(self.policy.to_dict(), sort_keys=True)
        if self.log.get_meta("policy") != mine:
            raise TocsinError(
                f"{self.pg.where} holds a log decided with another policy; every node of a "
                "cluster must run the same --policy")
        stored = self.log.get_meta("cluster_name")
        if stored is None:
            self.log.set_meta("cluster_name", self.settings.cluster_name)
        elif stored != self.settings.cluster_name:
            raise TocsinError(f"{self.pg.where} is the store of cluster {stored!r}, not "
                              f"{self.settings.cluster_name!r} (--cluster-name)")

    @property
    def is_leader(self) -> bool:
        """Whether this node leads (holds the lock and an epoch) right now."""
        return self.role == "leader" and self.epoch is not None

    def leading(self, make: Callable[[], T]) -> T:
        """An output to run on the leader only; a fresh one each time this node leads."""
        proxy = _LeaderOnly(self, make)
        self._outputs.append(proxy)
        return cast(T, proxy)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to NATS, rebuild state from the shared log, then follow or lead."""
        loop = asyncio.get_running_loop()
        self.closing_loop = loop
        await self.nats.connect()
        await loop.run_in_executor(self._writer, self._recover)
        self.role = "follower"
        self.ready = True
        self._listener = asyncio.create_task(self._listen(), name="tocsin-listen")
        self._ticker = asyncio.create_task(self._run(), name="tocsin-cluster")

    def _recover(self) -> None:
        self.merkle.load()
        end = self.merkle.size  # a prefix every part agrees on, while the leader goes on
        last = self.ledger.recover(end=end)
        for entry in self.log.read(1, end):
            if entry.kind == "transition":
                obj = entry.obj()
                self.history.apply_dict(obj)
                for hook in self.on_recover:
                    hook(obj)
        log.info("node %s recovered %d log entries", self.node_id, last)

    async def stop(self) -> None:
        """Step down (if leading), stop following, close the stores and the bus."""
        self.begin_shutdown()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await super().stop()  # cancels the main loop, which steps down on its way out
        await self.nats.aclose()
        self.lease.release()

    async def sign_head(self) -> TreeHead | None:
        """The leader signs heads; a follower takes up the newest one its tree covers."""
        loop = asyncio.get_running_loop()
        if self.is_leader:
            return await super().sign_head()
        await loop.run_in_executor(self._writer, self.tree.refresh)
        return None

    # --- ingest --------------------------------------------------------------------------------

    async def submit(
        self, raws: Sequence[Any], *, key_name: str | None = None, tick: bool = False,
        caller: Caller | None = None,
    ) -> SubmitResult:
        """Check a batch's shape and publish it to the events stream; returns once stored.

        Repeated ids are checked against the shared log, track ownership against this node's
        state (the leader's, milliseconds later)."""
        if tick or not raws:
            return SubmitResult([], [])  # the clock is the leader's
        batch = list(raws)
        error = self._check_shape(batch)
        if error is not None:
            for reject in self.on_reject:
                reject(len(batch))
            raise error
        keys = [(str(r["source"]), str(r["id"])) for r in batch]
        logged = await asyncio.to_thread(self.pg.find_events, keys)
        await asyncio.get_running_loop().run_in_executor(
            self._writer, lambda: admit(caller, [parse_event(r) for r in batch],
                                        live=self._track_sources, find=lambda *k: logged.get(k),
                                        body_at=self._body_at))
        fresh = [i for i, key in enumerate(keys) if key not in logged]
        acks = await self.nats.publish_events([batch[i] for i in fresh], key_name)
        by_index = dict(zip(fresh, acks, strict=True))
        results = []
        for i, (source, event_id) in enumerate(keys):
            ack = by_index.get(i)
            if ack is None:
                results.append(Accepted(event_id, source, logged[(source, event_id)], True))
            else:
                results.append(Accepted(event_id, source, 0, ack.duplicate,
                                        stream_seq=ack.stream_seq))
        return SubmitResult(results, [])

    # --- the main loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        """Follow the log, and try for the lock every `lease_poll_s`; lead when it is ours.

        The two run side by side, so a follower busy applying a large catch-up still notices
        at once that the leader is gone.
        """
        while True:
            stop = asyncio.Event()
            follower = asyncio.create_task(self._follow(stop), name="tocsin-follow")
            try:
                while not await self._try_lock():
                    await asyncio.sleep(self.settings.lease_poll_s)
            finally:
                stop.set()  # let a catch-up in progress finish and publish, then stop
                self._wake.set()
                await follower
            if not await self._lead():
                await asyncio.sleep(0.5)  # it failed: give another node its chance first

    async def _try_lock(self) -> bool:
        if self.role == "diverged":
            return False
        try:
            return await asyncio.to_thread(self.lease.try_acquire)
        except StoreError as exc:
            log.warning("leader lock: %s", exc)
            return False

    async def _follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)  # and every second anyway
            self._wake.clear()
            if stop.is_set() or self.role == "diverged":
                return
            try:
                await self._catch_up()
            except StoreError as exc:
                log.warning("following the log: %s", exc)
                await asyncio.sleep(0.5)

    async def _listen(self) -> None:
        """Set `_wake` on every commit's NOTIFY (reconnecting as needed)."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.pg.url, autocommit=True, application_name="tocsin listen",
                    **KEEPALIVE)
                async with conn:
                    await conn.execute(f'LISTEN "{self.pg.channel}"')
                    self._wake.set()  # whatever was committed while nobody listened
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.Error as exc:
                log.warning("listening for commits: %s; retrying", exc)
                await asyncio.sleep(1.0)

    # --- following -----------------------------------------------------------------------------

    async def _catch_up(self) -> None:
        loop = asyncio.get_running_loop()
        envelopes = await loop.run_in_executor(self._writer, self._catch_up_sync)
        if envelopes:
            await self._publish_here(envelopes)

    def _catch_up_sync(self) -> list[dict[str, Any]]:
        """Apply what others committed after this node's last seq; their envelopes."""
        start = self.ledger.next_seq
        end = self.pg.max_seq()
        if end < start:
            return []
        entries = list(self.pg.read(start, end))
        hashes = self.tree.hashes_of(entries)  # all reads first: a failed one changes nothing
        try:
            replay_into(self.ledger.engine, entries, after=start - 1)
        except (ReplayMismatch, IntegrityError) as exc:
            # this node's engine disagrees with the log (another region set, policy or
            # version): it must neither serve nor lead
            self.role = "diverged"
            self.ready = False
            self.problem = f"diverged from the log: {exc}"
            log.critical("node %s %s", self.node_id, self.problem)
            return []
        self.tree.follow(entries, hashes)
        self.ledger.next_seq = end + 1
        return envelopes_of(entries, format_time(self.clock()), self._entry)

    def _entry(self, seq: int) -> LogEntry:
        (entry,) = self.pg.read(seq, seq)
        return entry

    async def _publish_here(self, envelopes: list[dict[str, Any]]) -> None:
        """Hand transitions to this node's outputs: read models, hooks, its SSE bus."""
        self.history.apply_many(envelopes)
        for hook in self.on_publish:
            hook(envelopes)
        await self.bus.publish(envelopes)

    # --- leading -------------------------------------------------------------------------------

    async def _lead(self) -> bool:
        """Lead until deposed or failing; False if it ended in an error."""
        taken = self._taken = time.monotonic()
        self.first_commit_s = None
        feed: EventFeed | None = None
        ok = True
        try:
            self.epoch, self.position = await asyncio.to_thread(
                self.pg.take_leadership, self.node_id)
            self.role = "leader"
            await self._catch_up()  # whatever the last leader committed
            if self.role != "leader":
                return False
            feed = await self.nats.events_after(self.position)
            self._republish = True
            self.leader_since = format_time(self.clock())
            self.takeover_s = time.monotonic() - taken
            log.info("node %s leads (epoch %d) from stream position %d, log seq %d; "
                     "took %.3f s", self.node_id, self.epoch, self.position,
                     self.ledger.next_seq - 1, self.takeover_s)
            for output in self._outputs:
                await output.activate()
            lost = asyncio.Event()
            keeper = asyncio.create_task(self._keep_lease(lost), name="tocsin-lease")
            try:
                await self._consume(feed, lost)
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
        except asyncio.CancelledError:
            raise
        except Fenced as exc:
            log.warning("node %s was deposed: %s", self.node_id, exc)
        except Exception:
            log.exception("node %s stops leading after an error", self.node_id)
            ok = False
        finally:
            self.epoch = None
            if self.role == "leader":
                self.role = "follower"
            self.lease.release()
            if feed is not None:
                await feed.close()
            for output in self._outputs:
                await output.deactivate()
        return ok

    async def _keep_lease(self, lost: asyncio.Event) -> None:
        """Keep the lock's session busy (the server ends a silent one); set `lost` when it is
        gone. A task of its own, so a long batch in the writer never looks like silence."""
        while await asyncio.to_thread(self.lease.check):
            await asyncio.sleep(LEASE_CHECK_S)
        lost.set()

    async def _consume(self, feed: EventFeed, lost: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        wait = min(self.settings.tick_s, 0.5)
        backlog: list[Consumed] = []
        while True:
            # between batches only: a batch committed is always published here too
            if lost.is_set():
                raise Fenced("the leader lock was lost (its session ended)")
            if self._republish:
                await self._republish_transitions()
            if not backlog:
                backlog = await feed.fetch(BATCH, wait)
            envelopes, used = await loop.run_in_executor(self._writer, self._commit_sync,
                                                         backlog)
            backlog = backlog[used:]
            if self.first_commit_s is None and used and self.position > 0:
                self.first_commit_s = time.monotonic() - self._taken
                log.info("node %s committed its first events %.3f s after taking the lock",
                         self.node_id, self.first_commit_s)
            if envelopes:
                await self._publish_here(envelopes)
                if not self._republish:
                    try:
                        await self.nats.publish(envelopes)
                    except TocsinError as exc:
                        log.warning("publishing transitions: %s; will catch up", exc)
                        self._republish = True

    async def _republish_transitions(self) -> None:
        """Publish the log's transitions the transitions stream lacks (after a takeover)."""
        last = await self.nats.last_transition_seq()
        end = self.ledger.next_seq - 1
        if last < end:
            entries = await asyncio.to_thread(lambda: list(self.pg.read(last + 1, end)))
            envelopes = envelopes_of(entries, format_time(self.clock()), self._entry)
            for start in range(0, len(envelopes), 1000):
                await self.nats.publish(envelopes[start:start + 1000])
            if envelopes:
                log.info("published %d transitions the stream lacked", len(envelopes))
        self._republish = False

    def _commit_sync(self, msgs: list[Consumed]) -> tuple[list[dict[str, Any]], int]:
        """Apply messages of the events stream (and the clock) and commit them, fenced.

        Stops after `COMMIT_BUDGET_S` of work, so a long backlog (after a takeover) is
        committed, and its alerts published, in steps rather than all at the end. Returns the
        envelopes and how many of `msgs` it used.
        """
        now = self.clock()
        recorded = format_time(now)
        engine = self.ledger.engine
        pending = _Pending(self.pg)
        rejections: list[Rejection] = []
        position: int | None = None
        decoded: list[tuple[Consumed, dict[str, Any] | None, dict[str, Any]]] = []
        for m in msgs:
            try:
                body = json.loads(m.data)
                raw = body["event"]
                if not isinstance(raw, dict):
                    raise TypeError("not an object")
                decoded.append((m, raw, body))
            except (ValueError, KeyError, TypeError) as exc:
                decoded.append((m, None, {"error": f"not a tocsin event message: {exc}"}))
        pending.prefetch((str(raw.get("source")), str(raw.get("id")))
                         for _, raw, _ in decoded if raw is not None)
        deadline = engine.next_deadline()
        moved = needs_tick(now, engine.tick_us, [raw for _, raw, _ in decoded if raw is not None])
        due = deadline is not None and deadline <= now
        fresh = any(m.stream_seq > self.position for m in msgs)
        if not fresh and not due:
            return [], len(msgs)
        budget = time.monotonic() + COMMIT_BUDGET_S
        used = applied = 0
        with self._batching(pending):
            if due or (fresh and moved):
                self.ledger.tick(now, recorded_at=recorded)
            for m, raw, body in decoded:
                if used and time.monotonic() > budget:
                    break
                used += 1
                if m.stream_seq <= self.position:
                    continue  # committed already (a consumer may start a little early)
                position = m.stream_seq
                if raw is None:
                    rejections.append(Rejection(
                        m.stream_seq, None, None, None, m.data.decode("utf-8", "replace"),
                        [{"field": "(message)", "reason": body["error"]}], None, None,
                        recorded))
                    continue
                key_name = body.get("key")
                try:
                    self.ledger.submit([raw], key_name=key_name, recorded_at=recorded)
                except ValidationError as exc:
                    rejections.append(Rejection(
                        m.stream_seq, _text(raw.get("source")), _text(raw.get("id")), key_name,
                        dumps(raw), [{"field": e.field, "reason": e.reason} for e in exc.errors],
                        body.get("node"), body.get("received_at"), recorded))
                    continue
                applied += 1
        try:
            self.tree.commit(pending.entries, epoch=self.epoch, position=position,
                             rejections=rejections)
        except Exception:
            self.ledger.recover()  # memory ran ahead of the log: rebuild from what is there
            raise
        if position is not None:
            self.position = position
        self.consumed += applied
        self.refused += len(rejections)
        if rejections:
            log.warning("refused %d event(s) after their 202; see GET /api/v1/cluster/rejected",
                        len(rejections))
        return envelopes_of(pending.entries, recorded, self._entry), used

    @contextlib.contextmanager
    def _batching(self, pending: _Pending) -> Iterator[None]:
        """Let the ledger append to `pending` instead of the store, for one batch."""
        ledger = self.ledger
        saved = ledger.log, ledger.merkle
        ledger.log, ledger.merkle = pending, None
        try:
            yield
        finally:
            ledger.log, ledger.merkle = saved

    # --- status --------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """`GET /api/v1/cluster`: this node, who leads, how far everything got."""
        state = await asyncio.to_thread(self.pg.cluster_state)
        refused = await asyncio.to_thread(self.pg.rejected_count)
        try:
            stream_last: int | None = await self.nats.events_last_seq()
        except TocsinError:
            stream_last = None
        leading = self.is_leader and state["epoch"] == self.epoch
        return {
            "node": self.node_id,
            "is_leader": leading,
            "leader": state["leader"],
            "role": self.role,
            "epoch": state["epoch"],
            "leader_since": state["leader_since"],
            "log_seq": self.ledger.next_seq - 1,
            "stream": {
                "name": self.nats.events_stream,
                "last_seq": stream_last,
                "committed_seq": state["stream_seq"],
                "pending": None if stream_last is None else stream_last - state["stream_seq"],
            },
            "rejected": refused,
            "takeover_s": self.takeover_s,
            "first_commit_s": self.first_commit_s,
            "store": self.pg.where,
            "bus": {"servers": self.nats.servers, "connected": self.nats.connected},
            "problem": self.problem,
        }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
