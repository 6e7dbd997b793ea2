"""The bus of a cluster: NATS JetStream.

Two streams per cluster, named from `cluster_name` (here the default, `tocsin`):

- `TOCSIN_EVENTS`, subject `tocsin.events`: the events any node's ingest accepted, in the order
  the leader applies them. Each message is `{"event": <as received>, "key": <API key name>,
  "node": <ingest node>, "received_at": <its clock>}` with `Nats-Msg-Id` set to the event's
  `[source, id]` (as JSON), so the server itself drops a sensor's re-send within the duplicate
  window; later re-sends are found in the log by the leader. An ingest answers `202` only after
  JetStream acknowledged the message, i.e. stored it (on a quorum of servers when replicated).
- `TOCSIN_TRANSITIONS`, subject `tocsin.transitions`: every transition the leader committed, as
  the envelope streams get, in log order, `Nats-Msg-Id` and header `Tocsin-Seq` its seq. A new
  leader publishes from the one after the stream's last, so none is repeated or skipped.

`NatsBus` is a `Bus` over the transitions subject (`publish`, `subscribe`), plus what only a
cluster needs: `publish_events` for ingest and `events_after` for the leader's consumer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js import api

from tocsin.bus.base import Bus, BusError, Subscription
from tocsin.model import format_time

__all__ = ["Consumed", "EventFeed", "NatsBus", "Published", "message_id"]

log = logging.getLogger("tocsin.cluster")

SEQ_HEADER = "Tocsin-Seq"
_TIMEOUT = 5.0


def message_id(source: str, event_id: str) -> str:
    """The `Nats-Msg-Id` of an event: its (source, id) as compact JSON (header-safe ASCII)."""
    return json.dumps([source, event_id], ensure_ascii=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Published:
    """JetStream's acknowledgement of one ingested event."""

    stream_seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Consumed:
    """One message of the events stream, as the leader reads it."""

    stream_seq: int
    data: bytes


class EventFeed:
    """The events stream from a position on, in order (an ephemeral pull consumer)."""

    def __init__(self, sub: Any) -> None:
        self._sub = sub

    async def fetch(self, batch: int, timeout: float) -> list[Consumed]:
        """Up to `batch` messages: what is there now, else the first to come within `timeout`."""
        try:
            msgs = await self._sub.fetch(batch, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except nats.errors.Error as exc:
            raise BusError(f"reading the events stream: {exc!r}") from exc
        return [Consumed(m.metadata.sequence.stream, m.data) for m in msgs]

    async def close(self) -> None:
        """Drop the consumer (the server forgets it)."""
        try:
            await self._sub.unsubscribe()
        except Exception:  # the connection may be gone already; the server expires it anyway
            log.debug("closing the events consumer failed", exc_info=True)


class _TransitionSubscription(Subscription):
    """Transitions published on the subject from when the subscription is live.

    A plain subscription also sees a message JetStream then drops as a duplicate (a new leader
    re-publishing), so anything at or below the last seq delivered is skipped here.
    """

    def __init__(self, bus: NatsBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sub: Any = None
        self._last = 0
        self.live = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        nc = self._bus._conn()
        self._sub = await nc.subscribe(self._bus.transitions_subject, cb=self._on_msg)
        await nc.flush()

    async def _on_msg(self, msg: Any) -> None:
        env = json.loads(msg.data)
        if env["seq"] > self._last:
            self._last = env["seq"]
            self._queue.put_nowait(env)

    async def get(self) -> dict[str, Any]:
        return await self._queue.get()

    def close(self) -> None:
        self._bus._subs.discard(self)
        if self._sub is not None:
            asyncio.ensure_future(self._sub.unsubscribe())
        else:
            self.live.cancel()


class NatsBus(Bus):
    """JetStream streams of one cluster; connect with `connect()` before use."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "tocsin",
        node: str = "tocsin",
        replicas: int = 1,
        max_age_s: float = 604_800.0,
        dedup_s: float = 120.0,
    ) -> None:
        self.servers = [u.strip() for u in url.split(",") if u.strip()]
        self.node = node
        base = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        self.events_stream = f"{base.upper()}_EVENTS"
        self.transitions_stream = f"{base.upper()}_TRANSITIONS"
        self.events_subject = f"{base}.events"
        self.transitions_subject = f"{base}.transitions"
        self.replicas = replicas
        self.max_age_s = max_age_s
        self.dedup_s = dedup_s
        self._nc: Any = None
        self._js: Any = None
        self._subs: set[_TransitionSubscription] = set()

    # --- connection ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect (reconnecting for ever after) and make sure both streams exist."""
        if self._nc is not None:
            return

        async def on_error(exc: Exception) -> None:
            log.warning("NATS: %r", exc)

        async def on_disconnect() -> None:
            log.warning("NATS: disconnected; reconnecting")

        async def on_reconnect() -> None:
            log.info("NATS: reconnected")

        try:
            self._nc = await nats.connect(
                servers=self.servers, name=f"tocsin {self.node}", connect_timeout=3,
                max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=on_error,
                disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
            )
            self._js = self._nc.jetstream(timeout=_TIMEOUT)
            for stream, subject in ((self.events_stream, self.events_subject),
                                    (self.transitions_stream, self.transitions_subject)):
                await self._ensure_stream(stream, subject)
        except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            await self.aclose()
            raise BusError(f"NATS at {', '.join(self.servers)}: {exc!r}") from exc

    async def _ensure_stream(self, name: str, subject: str) -> None:
        cfg = api.StreamConfig(
            name=name, subjects=[subject], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD,
            num_replicas=self.replicas, max_age=self.max_age_s,
            duplicate_window=self.dedup_s,
        )
        try:
            await self._js.add_stream(cfg)
        except nats.js.errors.BadRequestError:  # exists with other settings: bring them in line
            await self._js.update_stream(cfg)

    def _conn(self) -> Any:
        if self._nc is None:
            raise BusError("the NATS bus is not connected")
        return self._nc

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._nc is not None and bool(self._nc.is_connected)

    async def aclose(self) -> None:
        """Close the connection (pending publishes are flushed first)."""
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.drain()
            except Exception:
                log.debug("draining the NATS connection failed", exc_info=True)
                await nc.close()

    # --- events (ingest -> leader) -------------------------------------------------------------

    async def publish_events(
        self, raws: Sequence[dict[str, Any]], key_name: str | None
    ) -> list[Published]:
        """Store events in the events stream, in order; returns once JetStream has them all."""
        self._conn()
        received = format_time(datetime.now(UTC))
        futures = []
        try:
            for raw in raws:
                data = json.dumps({"event": raw, "key": key_name, "node": self.node,
                                   "received_at": received}, ensure_ascii=False).encode()
                headers = {"Nats-Msg-Id": message_id(str(raw["source"]), str(raw["id"]))}
                futures.append(await self._js.publish_async(
                    self.events_subject, data, wait_stall=_TIMEOUT, headers=headers,
                    stream=self.events_stream))
            acks = await asyncio.wait_for(asyncio.gather(*futures), _TIMEOUT)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            for fut in futures:
                fut.cancel()
            raise BusError(f"JetStream did not store the event(s): {exc!r}") from exc
        return [Published(int(a.seq), bool(a.duplicate)) for a in acks]

    async def events_after(self, position: int) -> EventFeed:
        """The events stream after stream sequence `position`, for the leader alone to read."""
        cfg = api.ConsumerConfig(
            deliver_policy=(api.DeliverPolicy.BY_START_SEQUENCE if position > 0
                            else api.DeliverPolicy.ALL),
            opt_start_seq=position + 1 if position > 0 else None,
            ack_policy=api.AckPolicy.NONE, inactive_threshold=30.0, max_waiting=4,
        )
        try:
            sub = await self._js.pull_subscribe(self.events_subject, stream=self.events_stream,
                                                config=cfg)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"reading the events stream: {exc!r}") from exc
        return EventFeed(sub)

    async def events_last_seq(self) -> int:
        """The stream sequence of the last event stored."""
        try:
            info = await self._js.stream_info(self.events_stream)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"events stream: {exc!r}") from exc
        return int(info.state.last_seq)

    # --- transitions (leader -> everyone) ------------------------------------------------------

    async def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        """Publish transitions in order; returns once JetStream has them all."""
        if not envelopes:
            return
        self._conn()
        futures = []
        try:
            for env in envelopes:
                seq = str(env["seq"])
                futures.append(await self._js.publish_async(
                    self.transitions_subject,
                    json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode(),
                    wait_stall=_TIMEOUT, headers={"Nats-Msg-Id": seq, SEQ_HEADER: seq},
                    stream=self.transitions_stream))
            await asyncio.wait_for(asyncio.gather(*futures), _TIMEOUT)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            for fut in futures:
                fut.cancel()
            raise BusError(f"publishing transitions: {exc!r}") from exc

    async def last_transition_seq(self) -> int:
        """The log seq of the last transition in the transitions stream (0 when empty)."""
        try:
            msg = await self._js.get_last_msg(self.transitions_stream, self.transitions_subject)
        except nats.js.errors.NotFoundError:
            return 0
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusError(f"transitions stream: {exc!r}") from exc
        headers = msg.headers or {}
        if SEQ_HEADER in headers:
            return int(headers[SEQ_HEADER])
        return int(json.loads(msg.data)["seq"])

    def subscribe(self) -> Subscription:
        """Live transitions as the leader publishes them (`.live` is done once subscribed)."""
        sub = _TransitionSubscription(self)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        """Open subscriptions."""
        return len(self._subs)
