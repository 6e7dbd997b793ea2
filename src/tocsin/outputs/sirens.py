"""Sirens over MQTT: commands out, acknowledgements and heartbeats in, faults into the log.

Topics (prefix `tocsin/v1/sirens/{id}`; a siren id is 1-64 of `A-Z a-z 0-9 . _ -`). A server in
`exercise` or `test` mode uses its own root, `tocsin/exercise/v1/sirens/{id}` or
`tocsin/test/v1/sirens/{id}`, which a production siren never subscribes to, and clears the
commands it retained there when it stops:

- `…/{id}/cmd`, from tocsin, QoS 1, retained: `{"id", "command": "sound" or "stop",
  "pattern": "alert", "all_clear" or "test", "alert": {region, alert_type, severity, seq} or
  null, "issued_at", "mode": "actual", "exercise" or "test"}`.
- `…/{id}/ack`, from the siren, QoS 1: `{"id": <the command's id>, "status": "ok" or "fault",
  "reason"?, "at"?}`.
- `…/{id}/status`, from the siren, QoS 1, retained: `{"status": "ok", "fault" or "offline",
  "reason"?, "at"?}`, sent on connecting and as a heartbeat; its MQTT last will is
  `{"status": "offline"}`.

The retained command is the state a siren must be in, so a siren that (re)connects learns it at
once. When an alert starts in a region with none before, each siren of the region gets `sound`
(`pattern` `alert`); when the region's last alert ends, `stop` (`all_clear`). On every
(re)connection to the broker the gateway sends each registered siren the command for the state
of its region now, which also checks every siren answers. A test (`pattern` `test`) is sent
without retain: it is an event, not a state.

A siren that does not acknowledge its latest command within `siren_ack_s`, or reports a fault,
becomes `fault`; a last will or `offline` status makes it `offline` (its pending command waits:
the broker hands the retained command over when it is back). Each change is logged as a
`siren_status` event (source `sirens`, key `sirens`), which the engine turns into a
`siren_fault` transition; the siren recovers (`ok`) when it acknowledges again.

`tocsin.outputs.sirensim` runs simulated sirens that speak this protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import heapq
import io
import itertools
import json
import logging
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

import aiomqtt

from tocsin.errors import TocsinError
from tocsin.geo import RegionSet
from tocsin.model import format_time
from tocsin.modes import ACTUAL, check_mode
from tocsin.store.admin import SirenRecord

if TYPE_CHECKING:
    from tocsin.service import Service

__all__ = [
    "PREFIX",
    "SIREN_ID_RE",
    "Broker",
    "SirenGateway",
    "SirenView",
    "parse_broker_url",
    "prefix",
    "read_registry",
    "topic",
]

log = logging.getLogger("tocsin.sirens")

PREFIX: Final = "tocsin/v1/sirens"
SIREN_ID_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ALERT_TRANSITIONS: Final = ("alert_started", "alert_updated", "alert_ended")


def prefix(mode: str = ACTUAL) -> str:
    """The topic root of a deployment mode: production's, or `tocsin/<mode>/v1/sirens`."""
    return PREFIX if check_mode(mode) == ACTUAL else f"tocsin/{mode}/v1/sirens"


def topic(siren: str, kind: str, mode: str = ACTUAL) -> str:
    """The topic of one siren: kind is `cmd`, `ack` or `status`."""
    return f"{prefix(mode)}/{siren}/{kind}"


def _now_text() -> str:
    return format_time(datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the MQTT broker is: from `mqtt://[user[:password]@]host[:port]`."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None

    def client(self, identifier: str, **kwargs: Any) -> aiomqtt.Client:
        """A new aiomqtt client for this broker (not yet connected)."""
        return aiomqtt.Client(self.host, self.port, username=self.username,
                              password=self.password, identifier=identifier, **kwargs)


def parse_broker_url(url: str) -> Broker:
    """`mqtt://host:port` (with optional user:password@) as a `Broker`; `TocsinError` if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise TocsinError(f"MQTT broker URL must look like mqtt://host:1883 (got {url!r})")
    try:
        port = parts.port or 1883
    except ValueError:
        raise TocsinError(f"bad port in MQTT broker URL {url!r}") from None
    return Broker(
        parts.hostname, port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def _json(payload: bytes | bytearray | str | Any) -> dict[str, Any] | None:
    try:
        obj = json.loads(payload)
    except (TypeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


# --- the gateway ------------------------------------------------------------------------------


@dataclass(slots=True)
class SirenView:
    """What the gateway knows of one siren now."""

    record: SirenRecord
    status: str = "unknown"  # unknown | ok | fault | offline: what it is now
    reported: str = "ok"  # the last status logged for it (the engine's view)
    reason: str | None = None
    last_seen: str | None = None
    last_ack: str | None = None
    command: dict[str, Any] | None = None  # the latest command sent
    pending: str | None = None  # id of the command awaiting its ack
    deadline: float | None = None  # monotonic time the ack is due (None while offline)
    issued: float = 0.0  # monotonic time the pending command was decided
    acked: float = 0.0  # monotonic time of the latest acknowledgement
    heard: bool = False  # anything ever received from it

    def to_dict(self) -> dict[str, Any]:
        """JSON form for `GET /api/v1/sirens`."""
        return {
            **self.record.to_dict(), "status": self.status, "reason": self.reason,
            "last_seen": self.last_seen, "last_ack": self.last_ack,
            "command": None if self.command is None else self.command["command"],
            "pattern": None if self.command is None else self.command["pattern"],
            "awaiting_ack": self.pending is not None,
        }


class SirenGateway:
    """Publishes siren commands for alert starts and ends; watches acks and heartbeats."""

    def __init__(
        self,
        service: Service,
        url: str,
        *,
        ack_s: float | None = None,
        reload_s: float = 5.0,
        flush_s: float = 0.2,
    ) -> None:
        self.service = service
        self.broker = parse_broker_url(url)
        self.mode = service.settings.mode
        self.prefix = prefix(self.mode)
        self.ack_s = service.settings.siren_ack_s if ack_s is None else ack_s
        self.reload_s = reload_s
        self.flush_s = flush_s
        self.sirens: dict[str, SirenView] = {}
        self.by_region: dict[str, list[str]] = {}
        self.active: dict[str, dict[str, dict[str, Any]]] = {}  # region -> type -> alert
        self.connected = asyncio.Event()
        self.latencies: deque[float] = deque(maxlen=100_000)  # decided -> acknowledged, s
        self._outbox: asyncio.Queue[tuple[str, dict[str, Any], bool]] = asyncio.Queue()
        self._reports: list[dict[str, Any]] = []
        self._due: list[tuple[float, str, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._cmd_n = itertools.count(1)
        self._run_id = f"{int(time.time() * 1000):x}"
        self._client: aiomqtt.Client | None = None
        self._odd_window = -60.0
        self._odd_lines = self._odd_dropped = 0

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the registry and the engine's view, then connect (call after `Service.start`)."""
        known = await self.service.read(lambda e: dict(e.sirens))
        alerts = await self.service.read(lambda e: e.active_alerts())
        for a in alerts:
            self.active.setdefault(a["region"], {})[a["alert_type"]] = {
                "region": a["region"], "alert_type": a["alert_type"], "severity": a["severity"],
                "seq": a["cause_seq"],
            }
        await self._load(known)
        self._tasks = [
            asyncio.create_task(self._connection(), name="sirens-mqtt"),
            asyncio.create_task(self._watch(), name="sirens-watch"),
        ]

    async def stop(self) -> None:
        """Stop publishing and watching; flush the status changes not yet logged.

        An exercise or test clears the commands it retained, so nothing of a drill stays on the
        broker for a siren to pick up later.
        """
        if self.mode != ACTUAL:
            await self._clear_retained()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._flush()

    async def _load(self, known: Mapping[str, str] | None = None) -> list[str]:
        records = await asyncio.to_thread(self.service.admin.sirens)
        added: list[str] = []
        seen = set()
        for rec in records:
            seen.add(rec.id)
            view = self.sirens.get(rec.id)
            if view is None:
                view = SirenView(rec)
                if known:
                    view.reported = known.get(rec.id, "ok")
                self.sirens[rec.id] = view
                added.append(rec.id)
            else:
                view.record = rec
        for gone in set(self.sirens) - seen:
            del self.sirens[gone]
        by_region: dict[str, list[str]] = {}
        for sid, view in sorted(self.sirens.items()):
            by_region.setdefault(view.record.region, []).append(sid)
        self.by_region = by_region
        return added

    # --- alerts to commands --------------------------------------------------------------------

    def apply(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        """A committed batch (the `sirens` output, while it runs): a region's first alert
        sounds its sirens, its last stops them."""
        decided = time.monotonic()
        for env in envelopes:
            kind = env.get("type")
            if kind not in _ALERT_TRANSITIONS or env.get("alert_type") is None:
                continue
            region = str(env["region"])
            alert = {"region": region, "alert_type": env["alert_type"],
                     "severity": env.get("severity"), "seq": env["seq"]}
            types = self.active.setdefault(region, {})
            was = bool(types)
            if kind == "alert_ended":
                types.pop(str(env["alert_type"]), None)
            else:
                types[str(env["alert_type"])] = alert
            if not types:
                del self.active[region]
            if was != bool(types):
                for sid in self.by_region.get(region, ()):
                    self._command(sid, "sound" if types else "stop", alert, decided)

    def desired(self, region: str) -> tuple[str, dict[str, Any] | None]:
        """The command a siren of `region` should hold now, and the alert behind it."""
        types = self.active.get(region)
        if not types:
            return "stop", None
        return "sound", types[min(types)]

    def _command(self, sid: str, command: str, alert: Mapping[str, Any] | None,
                 decided: float, *, test: bool = False) -> None:
        view = self.sirens[sid]
        cmd_id = f"{self._run_id}-{next(self._cmd_n)}"
        payload: dict[str, Any] = {
            "id": cmd_id,
            "command": command,
            "pattern": "test" if test else "alert" if command == "sound" else "all_clear",
            "alert": None if alert is None else dict(alert),
            "issued_at": self._now(),
            "mode": self.mode,
        }
        if not test:
            view.command = payload
        if not self.connected.is_set():
            # Sent with every siren's state when the broker is back; an outage is not a fault.
            return
        view.pending = cmd_id
        view.issued = decided
        view.deadline = None if view.status == "offline" else decided + self.ack_s
        if view.deadline is not None:
            heapq.heappush(self._due, (view.deadline, sid, cmd_id))
        self._outbox.put_nowait((sid, payload, not test))

    def test(self, sids: Sequence[str]) -> list[str]:
        """Send a one-off test (`sound`, pattern `test`, not retained); the ids it went to."""
        now = time.monotonic()
        done = [sid for sid in sids if sid in self.sirens]
        for sid in done:
            self._command(sid, "sound", None, now, test=True)
        return done

    async def _clear_retained(self) -> None:
        client = self._client
        if client is None or not self.connected.is_set():
            return
        try:
            async with asyncio.timeout(10):
                await asyncio.gather(*(
                    client.publish(self._topic(sid, "cmd"), b"", qos=1, retain=True)
                    for sid in self.sirens
                ))
        except (TimeoutError, aiomqtt.MqttError) as exc:
            log.warning("sirens: could not clear the retained %s commands (%s)", self.mode, exc)

    def _topic(self, sid: str, kind: str) -> str:
        return f"{self.prefix}/{sid}/{kind}"

    def _reconcile(self, sids: Iterable[str]) -> None:
        now = time.monotonic()
        for sid in sids:
            command, alert = self.desired(self.sirens[sid].record.region)
            self._command(sid, command, alert, now)

    # --- MQTT ----------------------------------------------------------------------------------

    async def _connection(self) -> None:
        backoff = 0.5
        while True:
            ident = f"tocsin-gateway-{os.getpid()}-{secrets.token_hex(3)}"
            try:
                async with self.broker.client(ident, max_inflight_messages=1000) as client:
                    client.pending_calls_threshold = 100_000  # a wave is thousands at once
                    self._client = client
                    # QoS 0 from the broker to us: over one live connection nothing is lost,
                    # and the broker's per-client queue (1,000 QoS 1 messages by default in
                    # Mosquitto) would drop acks when thousands of sirens answer at once. A
                    # reconnect sends every siren its command again anyway.
                    await client.subscribe(f"{self.prefix}/+/ack", qos=0)
                    await client.subscribe(f"{self.prefix}/+/status", qos=0)
                    log.info("sirens: connected to MQTT %s:%d, topics %s/", self.broker.host,
                             self.broker.port, self.prefix)
                    self._drain_outbox()
                    self.connected.set()
                    self._reconcile(list(self.sirens))
                    backoff = 0.5
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._publisher(client))
                        group.create_task(self._listener(client))
            except* aiomqtt.MqttError as exc:
                log.warning("sirens: MQTT connection lost or refused (%s); retrying in %.1f s",
                            exc.exceptions[0], backoff)
            except* Exception:
                log.exception("sirens: MQTT connection failed; retrying in %.1f s", backoff)
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def _drain_outbox(self) -> None:
        # Commands queued while disconnected are replaced by the reconciliation that follows.
        while not self._outbox.empty():
            self._outbox.get_nowait()

    async def _publisher(self, client: aiomqtt.Client) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 1000:
                batch.append(self._outbox.get_nowait())
            await asyncio.gather(*(
                client.publish(self._topic(sid, "cmd"), json.dumps(payload), qos=1,
                               retain=retain)
                for sid, payload, retain in batch
            ))

    async def _listener(self, client: aiomqtt.Client) -> None:
        root = self.prefix + "/"
        async for message in client.messages:
            name = message.topic.value
            if not name.startswith(root):
                continue
            sid, _, kind = name[len(root):].partition("/")
            if sid not in self.sirens:
                if kind == "ack":
                    self._odd("an ack from %r, a siren not in the registry", sid)
                continue
            body = _json(message.payload) if message.payload else None
            if body is None:
                if kind == "ack":
                    self._odd("%s sent an ack that is not a JSON object: %r", sid,
                              bytes(message.payload or b"")[:80])
                continue
            if kind == "ack":
                self._on_ack(sid, body)
            elif kind == "status":
                self._on_status(sid, body)

    # --- what sirens say -----------------------------------------------------------------------

    def _on_ack(self, sid: str, body: Mapping[str, Any]) -> None:
        view = self.sirens[sid]
        now = self._now()
        view.heard, view.last_seen = True, now
        if body.get("id") != view.pending:
            # an answer to a command since replaced, or to none tocsin sent: worth a line, as a
            # siren that answers with ids of its own is broken even though it looks alive
            self._odd("%s acknowledged %r, not its pending command %r", sid,
                      str(body.get("id"))[:80], view.pending)
            return
        view.pending = view.deadline = None
        view.last_ack = now
        view.acked = time.monotonic()
        self.latencies.append(view.acked - view.issued)
        if body.get("status", "ok") == "fault":
            self._set(view, "fault", str(body.get("reason") or "the siren reports a fault"))
        else:
            self._set(view, "ok", None)

    def _on_status(self, sid: str, body: Mapping[str, Any]) -> None:
        view = self.sirens[sid]
        status = body.get("status")
        reason = body.get("reason")
        if status == "offline":
            view.deadline = None
            self._set(view, "offline", str(reason or "the siren went offline"))
            return
        view.heard, view.last_seen = True, self._now()
        if status == "fault":
            self._set(view, "fault", str(reason or "the siren reports a fault"))
        elif status == "ok":
            if view.pending is not None:
                if view.deadline is None:
                    # Back online: the broker hands it the retained command now.
                    view.deadline = time.monotonic() + self.ack_s
                    heapq.heappush(self._due, (view.deadline, sid, view.pending))
                if view.status in ("unknown", "offline"):
                    view.status = "ok"
            else:
                self._set(view, "ok", None)

    def _odd(self, message: str, *args: Any) -> None:
        """Log a message a siren should not have sent, at most 20 lines a minute.

        A broken or hostile client can send thousands a second; the log must stay readable.
        """
        now = time.monotonic()
        if now - self._odd_window >= 60.0:
            if self._odd_dropped:
                log.warning("sirens: %d more such messages in the last minute",
                            self._odd_dropped)
            self._odd_window, self._odd_lines, self._odd_dropped = now, 0, 0
        if self._odd_lines < 20:
            self._odd_lines += 1
            log.warning("sirens: " + message, *args)
        else:
            self._odd_dropped += 1

    def _set(self, view: SirenView, status: str, reason: str | None) -> None:
        view.status, view.reason = status, reason
        if status == view.reported:
            return
        view.reported = status
        self._reports.append({
            "id": f"{view.record.id}/{self._run_id}-{next(self._cmd_n)}",
            "type": "siren_status",
            "time": self._now(),
            "source": "sirens",
            "siren": view.record.id,
            "region": view.record.region,
            "status": status,
            **({"reason": reason[:500]} if reason else {}),
        })

    # --- the clock -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        next_load = time.monotonic() + self.reload_s
        while True:
            await asyncio.sleep(self.flush_s)
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, sid, cmd = heapq.heappop(self._due)
                view = self.sirens.get(sid)
                if view is None or view.pending != cmd or view.deadline is None:
                    continue
                if view.deadline > now:
                    continue
                view.deadline = None
                if view.heard:
                    self._set(view, "fault", f"no acknowledgement within {self.ack_s:g} s")
                else:
                    self._set(view, "offline", "never heard from since tocsin started")
            if now >= next_load:
                next_load = now + self.reload_s
                try:
                    added = await self._load()
                except TocsinError:
                    log.exception("sirens: could not reload the registry")
                    added = []
                if added and self.connected.is_set():
                    self._reconcile(added)
            await self._flush()

    async def _flush(self) -> None:
        if not self._reports:
            return
        batch, self._reports = self._reports, []
        try:
            await self.service.submit(batch, key_name="sirens")
        except TocsinError:
            log.exception("sirens: could not log %d siren status change(s)", len(batch))

    def _now(self) -> str:
        return format_time(self.service.clock())

    def views(self) -> list[SirenView]:
        """Every registered siren's view, by id."""
        return [self.sirens[k] for k in sorted(self.sirens)]


# --- the registry file ------------------------------------------------------------------------


def read_registry(text: str, regions: RegionSet) -> tuple[list[SirenRecord], list[str]]:
    """Sirens from CSV text with a header `id,lat,lon[,name]`, each located in a leaf region.

    Returns the records and one message per bad line (`line N: field: reason`); a siren
    outside every region of the set is an error, since no alert could ever sound it.
    """
    records: list[SirenRecord] = []
    errors: list[str] = []
    reader = csv.DictReader(io.StringIO(text))
    missing = {"id", "lat", "lon"} - set(reader.fieldnames or ())
    if missing:
        return [], [f"line 1: the header needs columns id, lat, lon (missing {sorted(missing)})"]
    seen: dict[str, int] = {}
    for lineno, row in enumerate(reader, 2):
        sid = (row.get("id") or "").strip()
        if not SIREN_ID_RE.match(sid):
            errors.append(f"line {lineno}: id: {sid!r} is not 1-64 of A-Z a-z 0-9 . _ -")
            continue
        if sid in seen:
            errors.append(f"line {lineno}: id: {sid!r} repeats line {seen[sid]}")
            continue
        seen[sid] = lineno
        try:
            lat, lon = float(row.get("lat") or ""), float(row.get("lon") or "")
        except ValueError:
            errors.append(f"line {lineno}: lat, lon: not numbers")
            continue
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            errors.append(f"line {lineno}: lat, lon: ({lat}, {lon}) is out of range")
            continue
        leaf = regions.locate(lat, lon)
        if leaf is None:
            errors.append(f"line {lineno}: lat, lon: ({lat}, {lon}) is in no region of "
                          f"{regions.name}")
            continue
        name = (row.get("name") or "").strip() or sid
        records.append(SirenRecord(sid, name, lat, lon, leaf))
    return records, errors
