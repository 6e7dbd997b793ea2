"""A cluster node's role: follow the shared log, and lead while it holds the lock.

How the parts fit is told in `tocsin.cluster`. This is the `Role` of a `Service` whose ingest
is a `StreamIngest`; the decisions are the `Ledger`'s, exactly as in the embedded server, and
only how they are committed differs: a batch of stream messages at once, with the stream
position and the refused events, under this node's epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from tocsin.audit import TreeHead
from tocsin.bus.nats import Consumed, EventFeed, NatsBus
from tocsin.cluster.lease import LeaderLease, lock_held
from tocsin.config import Settings
from tocsin.envelopes import Envelope, envelopes_of, live_envelopes, wire
from tocsin.errors import (
    Fenced,
    IntegrityError,
    ReplayMismatch,
    StoreError,
    TocsinError,
    ValidationError,
)
from tocsin.ledger import Accepted, Decision, parse_batch
from tocsin.model import dumps, format_time
from tocsin.service import Service
from tocsin.store.base import LogEntry, Rejection
from tocsin.store.postgres import KEEPALIVE, PostgresLog
from tocsin.trust import needs_tick

__all__ = ["BATCH", "ClusterNode"]

log = logging.getLogger("tocsin.cluster")

BATCH = 512  # events stream messages per leader transaction, at most
LEASE_CHECK_S = 0.5  # how often a leader makes sure it still holds the lock
COMMIT_BUDGET_S = 0.05  # work per leader transaction before it commits and publishes


class ClusterNode:
    """The cluster `Role`: follower, leader, or (after a disagreement with the log) diverged."""

    name = "cluster"

    def __init__(self, service: Service, store: PostgresLog, nats: NatsBus) -> None:
        self.service = service
        self.store = store
        self.nats = nats
        self.node_id = self.node_name(service.settings)
        self.lease = LeaderLease(store)
        # the lock's session dies after `timeout_s` of silence: its checks get a thread of their
        # own, so a busy default executor (status polls, ingest look-ups) never starves them
        self._lease_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tocsin-lease")
        self.state = "starting"  # then follower | leader; "diverged" stops it for good
        self.epoch: int | None = None
        self.position = 0  # the events stream position this node committed up to, as leader
        self.leader_since: str | None = None
        self.takeover_s: float | None = None  # lock taken -> consuming, the last time it led
        self.first_commit_s: float | None = None  # lock taken -> first events committed
        self._taken = 0.0
        self.problem: str | None = None
        self.consumed = 0
        self.refused = 0
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._main: asyncio.Task[None] | None = None
        self._republish = True

    @staticmethod
    def node_name(settings: Settings) -> str:
        """This node's name in the cluster: `--node-id`, else host name and port."""
        return settings.node_id or f"{socket.gethostname()}:{settings.port}"

    @property
    def is_leader(self) -> bool:
        """Whether this node leads (holds the lock and an epoch) right now."""
        return self.state == "leader" and self.epoch is not None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to NATS, rebuild state from the shared log, then follow or lead."""
        svc = self.service
        loop = asyncio.get_running_loop()
        await self.nats.connect()
        await loop.run_in_executor(svc.writer, svc.recover_sync)
        self.state = "follower"
        svc.ready = True
        self._listener = asyncio.create_task(self._listen(), name="tocsin-listen")
        self._main = asyncio.create_task(self._run(), name="tocsin-cluster")

    async def stop(self) -> None:
        """Step down (if leading), stop following, close the bus."""
        for task in (self._listener, self._main):  # the main loop steps down on its way out
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.nats.aclose()
        self.lease.release()
        self._lease_thread.shutdown(wait=False)

    async def sign_head(self) -> TreeHead | None:
        """The leader signs heads; a follower takes up the newest one its tree covers."""
        svc = self.service
        loop = asyncio.get_running_loop()
        if self.is_leader:
            return await loop.run_in_executor(
                svc.writer, lambda: svc.merkle.sign(svc.log_key, svc.clock()))
        await loop.run_in_executor(svc.writer, svc.merkle.refresh)
        return None

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
                    await asyncio.sleep(self.service.settings.lease_poll_s)
            finally:
                stop.set()  # let a catch-up in progress finish and publish, then stop
                self._wake.set()
                await follower
            if not await self._lead():
                await asyncio.sleep(0.5)  # it failed: give another node its chance first

    async def _try_lock(self) -> bool:
        if self.state == "diverged":
            return False
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._lease_thread, self.lease.try_acquire)
        except StoreError as exc:
            log.warning("leader lock: %s", exc)
            return False

    async def _follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)  # and every second anyway
            self._wake.clear()
            if stop.is_set() or self.state == "diverged":
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
                    self.store.url, autocommit=True, application_name="tocsin listen",
                    **KEEPALIVE)
                async with conn:
                    await conn.execute(f'LISTEN "{self.store.channel}"')
                    self._wake.set()  # whatever was committed while nobody listened
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.Error as exc:
                log.warning("listening for commits: %s; retrying", exc)
                await asyncio.sleep(1.0)

    # --- following -----------------------------------------------------------------------------

    async def _catch_up(self) -> None:
        svc = self.service
        loop = asyncio.get_running_loop()
        envelopes = await loop.run_in_executor(svc.writer, self._catch_up_sync)
        await svc.publish(envelopes)
        await svc.snapshot()

    def _catch_up_sync(self) -> list[Envelope]:
        """Apply what others committed after this node's last seq; their envelopes."""
        svc = self.service
        start = svc.ledger.next_seq
        end = svc.log.max_seq()
        if end < start:
            return []
        entries = list(svc.log.read(start, end))
        hashes = svc.merkle.hashes_of(entries)  # all reads first: a failed one changes nothing
        try:
            svc.ledger.follow(entries)
        except (ReplayMismatch, IntegrityError) as exc:
            # this node's engine disagrees with the log (another region set, policy or
            # version): it must neither serve nor lead
            self.state = "diverged"
            svc.ready = False
            self.problem = f"diverged from the log: {exc}"
            log.critical("node %s %s", self.node_id, self.problem)
            return []
        svc.merkle.follow(entries, hashes)
        return envelopes_of(entries, format_time(svc.clock()), svc.entry,
                            mode=svc.settings.mode)

    # --- leading -------------------------------------------------------------------------------

    async def _lead(self) -> bool:
        """Lead until deposed or failing; False if it ended in an error."""
        svc = self.service
        taken = self._taken = time.monotonic()
        self.first_commit_s = None
        feed: EventFeed | None = None
        ok = True
        try:
            self.epoch, self.position = await asyncio.to_thread(
                svc.log.start_epoch, self.node_id, format_time(svc.clock()))
            self.state = "leader"
            await self._catch_up()  # whatever the last leader committed
            if self.state != "leader":
                return False
            feed = await self.nats.events_after(self.position)
            self._republish = True
            self.leader_since = format_time(svc.clock())
            self.takeover_s = time.monotonic() - taken
            log.info("node %s leads (epoch %d) from stream position %d, log seq %d; "
                     "took %.3f s", self.node_id, self.epoch, self.position,
                     svc.ledger.durable_seq, self.takeover_s)
            await svc.leadership(True)
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
            if self.state == "leader":
                self.state = "follower"
            self.lease.release()
            if feed is not None:
                await feed.close()
            await svc.leadership(False)
        return ok

    async def _keep_lease(self, lost: asyncio.Event) -> None:
        """Keep the lock's session busy (the server ends a silent one); set `lost` when it is
        gone. A task of its own, so a long batch in the writer never looks like silence."""
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(self._lease_thread, self.lease.check):
            await asyncio.sleep(LEASE_CHECK_S)
        lost.set()

    async def _consume(self, feed: EventFeed, lost: asyncio.Event) -> None:
        svc = self.service
        loop = asyncio.get_running_loop()
        wait = min(svc.settings.tick_s, 0.5)
        backlog: list[Consumed] = []
        while True:
            # between batches only: a batch committed is always published here too
            if lost.is_set():
                raise Fenced("the leader lock was lost (its session ended)")
            if self._republish:
                await self._republish_transitions()
            if not backlog:
                backlog = await feed.fetch(BATCH, wait)
            envelopes, used = await loop.run_in_executor(svc.writer, self._commit_sync, backlog)
            backlog = backlog[used:]
            if self.first_commit_s is None and used and self.position > 0:
                self.first_commit_s = time.monotonic() - self._taken
                log.info("node %s committed its first events %.3f s after taking the lock",
                         self.node_id, self.first_commit_s)
            if envelopes:
                await svc.publish(envelopes)
                if not self._republish:
                    try:
                        await self.nats.publish(wire(envelopes))
                    except TocsinError as exc:
                        log.warning("publishing transitions: %s; will catch up", exc)
                        self._republish = True
            await svc.snapshot()

    async def _republish_transitions(self) -> None:
        """Publish the log's transitions the transitions stream lacks (after a takeover)."""
        svc = self.service
        last = await self.nats.last_transition_seq()
        end = svc.ledger.durable_seq
        if last < end:
            entries = await asyncio.to_thread(lambda: list(svc.log.read(last + 1, end)))
            envelopes = envelopes_of(entries, format_time(svc.clock()), svc.entry,
                                     mode=svc.settings.mode)
            for start in range(0, len(envelopes), 1000):
                await self.nats.publish(wire(envelopes[start:start + 1000]))
            if envelopes:
                log.info("published %d transitions the stream lacked", len(envelopes))
        self._republish = False

    def _commit_sync(self, msgs: list[Consumed]) -> tuple[list[Envelope], int]:
        """Decide messages of the events stream (and the clock), then commit them, fenced.

        Stops after `COMMIT_BUDGET_S` of work, so a long backlog (after a takeover) is
        committed, and its alerts published, in steps rather than all at the end. Returns the
        envelopes and how many of `msgs` it used.
        """
        svc = self.service
        ledger = svc.ledger
        now = svc.clock()
        recorded = format_time(now)
        engine = ledger.engine
        decoded = [_decode(m) for m in msgs]
        deadline = engine.next_deadline()
        raws = [raw for _, raw, _ in decoded if raw is not None]
        moved = needs_tick(now, engine.tick_us, raws)
        due = deadline is not None and deadline <= now
        fresh = any(m.stream_seq > self.position for m in msgs)
        if not fresh and not due:
            return [], len(msgs)
        known = svc.log.find_events((str(raw.get("source")), str(raw.get("id")))
                                    for _, raw, _ in decoded if raw is not None)
        region_known = svc.regions.regions.__contains__
        budget = time.monotonic() + COMMIT_BUDGET_S
        accepted: list[Accepted] = []
        entries: list[LogEntry] = []
        times: dict[int, str] = {}
        rejections: list[Rejection] = []
        position: int | None = None
        used = applied = 0
        try:
            if due or (fresh and moved):
                tick = ledger.decide_tick(now, recorded_at=recorded)
                accepted += tick.accepted
                entries += tick.entries
                times.update(tick.cause_times)
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
                    # the stream carries JSON: this is the leader's edge
                    events = parse_batch([raw], region_known=region_known)
                    mine = ledger.decide(events, key_name=key_name, recorded_at=recorded,
                                         known=known)
                except ValidationError as exc:
                    rejections.append(Rejection(
                        m.stream_seq, _text(raw.get("source")), _text(raw.get("id")), key_name,
                        dumps(raw), [{"field": e.field, "reason": e.reason} for e in exc.errors],
                        body.get("node"), body.get("received_at"), recorded))
                    continue
                accepted += mine.accepted
                entries += mine.entries
                times.update(mine.cause_times)
                applied += 1
            svc.merkle.append(entries, epoch=self.epoch, position=position,
                              rejections=rejections)
        except BaseException:
            ledger.discard()  # memory ran ahead of the log: rebuild from what is there
            raise
        ledger.committed()
        if position is not None:
            self.position = position
        self.consumed += applied
        self.refused += len(rejections)
        if rejections:
            log.warning("refused %d event(s) after their 202; see GET /api/v1/cluster/rejected",
                        len(rejections))
        return live_envelopes(Decision(accepted, entries, times), recorded, recorded,
                              mode=svc.settings.mode), used

    # --- status --------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """`GET /api/v1/cluster`: this node, who leads, how far everything got."""
        state = await asyncio.to_thread(self.store.cluster_state)
        held = await asyncio.to_thread(lock_held, self.store)
        refused = await asyncio.to_thread(self.store.rejected_count)
        try:
            stream_last: int | None = await self.nats.events_last_seq()
        except TocsinError:
            stream_last = None
        leading = self.is_leader and state.epoch == self.epoch
        return {
            "node": self.node_id,
            "is_leader": leading,
            "leader": state.leader if held else None,
            "role": self.state,
            "epoch": state.epoch,
            "leader_since": state.leader_since if held else None,
            "log_seq": self.service.ledger.durable_seq,
            "stream": {
                "name": self.nats.events_stream,
                "last_seq": stream_last,
                "committed_seq": state.stream_seq,
                "pending": None if stream_last is None else stream_last - state.stream_seq,
            },
            "rejected": refused,
            "takeover_s": self.takeover_s,
            "first_commit_s": self.first_commit_s,
            "store": self.store.where,
            "bus": {"servers": self.nats.servers, "connected": self.nats.connected},
            "problem": self.problem,
        }


def _decode(m: Consumed) -> tuple[Consumed, dict[str, Any] | None, dict[str, Any]]:
    """A stream message as (message, its event or None, the whole body or why it is bad)."""
    try:
        body = json.loads(m.data)
        raw = body["event"]
        if not isinstance(raw, dict):
            raise TypeError("not an object")
        return m, raw, body
    except (ValueError, KeyError, TypeError) as exc:
        return m, None, {"error": f"not a tocsin event message: {exc}"}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
