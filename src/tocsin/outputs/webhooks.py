"""Signed webhook delivery, at least once, surviving restarts.

The log is the outbox: each subscription keeps a cursor (the last seq it is done with) in
`admin.db`, and a worker per subscription walks the log from there, delivering matching
transitions in order and retrying a failing receiver with exponential backoff and jitter. A
crash or restart resumes at the cursor, so a receiver sees every matching transition at least
once; `X-Tocsin-Delivery` (subscription id and seq) is stable across retries for de-duplication.

Signature: `X-Tocsin-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
HMAC-SHA256(secret, `<t>.` + raw request body): the timestamp is signed with the body, so a
receiver that refuses old timestamps (and delivery ids it has seen) refuses replays. The
receiver snippet in docs/api.md does both.

Targets: a URL whose host is, or resolves to, a loopback, private, link-local, multicast or
otherwise non-global address is refused (unless `allow_private_webhooks`), when subscribing and
again at every delivery, after resolving the name; the delivery then connects to the address it
checked (so a name that changes its answer in between cannot slip through). Every failure to
connect or to get an answer is logged with the same text, so the delivery log cannot tell a
closed port from a silent service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx

from tocsin.geo import Footprint
from tocsin.model import format_time
from tocsin.store.admin import Delivery, SubscriptionRecord

if TYPE_CHECKING:
    from tocsin.api.metrics import Metrics
    from tocsin.service import Service

__all__ = [
    "CONNECT_FAILED",
    "TargetRefused",
    "TargetUnresolved",
    "WebhookDispatcher",
    "check_target",
    "matcher",
    "resolve_target",
    "sign",
    "verify",
]

CONNECT_FAILED: Final = "could not deliver: no answer from the target"


class TargetRefused(Exception):
    """A webhook target that is not a public address (or cannot be one)."""


class TargetUnresolved(TargetRefused):
    """A webhook target whose name does not resolve (now)."""

log = logging.getLogger("tocsin.webhooks")


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Tocsin-Signature` value of a body sent at `timestamp` (default: now)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, now: float | None = None,
           tolerance_s: float = 300.0) -> int:
    """The timestamp of a correctly signed, fresh delivery; `ValueError` otherwise."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        raise ValueError("no timestamp in the signature") from None
    expected = sign(secret, body, t).split(",v1=")[1]
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        raise ValueError("bad signature")
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        raise ValueError("stale or future timestamp")
    return t


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_target(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL; `TargetRefused` if it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("must be an http(s) URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("bad port") from None
    return parts.hostname, port


def resolve_target(url: str, *, allow_private: bool = False) -> list[str]:
    """The addresses `url` reaches, after checking each is public (blocking: DNS).

    `TargetRefused` if any is not (a name with one private answer among public ones is refused:
    a client may pick any of them) or the name does not resolve.
    """
    host, port = check_target(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TargetUnresolved(f"{host} does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise TargetRefused(f"{host} is or resolves to a non-public address "
                                    "(loopback, private, link-local, multicast or reserved); "
                                    "allow_private_webhooks permits it")
    return addresses


def _pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL to `address` instead of its name, with the Host header and TLS name kept."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = literal + (f":{parts.port}" if parts.port else "")
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    default = {"http": 80, "https": 443}[parts.scheme]
    host_header = host if parts.port in (None, default) else f"{host}:{parts.port}"
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return pinned, {"Host": host_header}, extensions


def matcher(service: Service, spec: dict[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate on transitions for a subscription's regions/point/radius and alert types."""
    regions = service.regions
    leaves: set[str] = set()
    if spec.get("regions"):
        for rid in spec["regions"]:
            leaves.update(regions.leaves_under(rid))
    elif spec.get("point"):
        lat, lon = spec["point"]["lat"], spec["point"]["lon"]
        if spec.get("radius_km"):
            disc = Footprint(lat, lon, spec["radius_km"] * 1000.0, None, 180.0)
            leaves.update(leaf for leaf, _ in regions.hits(disc))
        leaf = regions.locate(lat, lon)
        if leaf:
            leaves.add(leaf)
    types = set(spec.get("alert_types") or ())

    def match(t: Mapping[str, Any]) -> bool:
        if t["region"] not in leaves:
            return False
        return not types or t.get("alert_type") in types or t.get("alert_type") is None

    return match


class WebhookDispatcher:
    """One delivery task per active subscription, woken when something is published."""

    def __init__(
        self,
        service: Service,
        metrics: Metrics | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.client = client or httpx.AsyncClient(timeout=service.settings.webhook_timeout_s)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start delivering (call inside the running loop)."""
        self._supervisor = asyncio.create_task(self._supervise(), name="webhooks")

    def wake(self) -> None:
        """Something was published: look at the log again."""
        self._wake.set()

    def apply(self, _batch: Sequence[Any]) -> None:
        """A committed batch (the `webhooks` output, while it runs): deliver from the log."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop every worker; cursors already saved make the next start resume."""
        tasks = list(self._tasks.values())
        if self._supervisor:
            tasks.append(self._supervisor)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.client.aclose()

    async def _supervise(self) -> None:
        while True:
            active = {s.id: s for s in self.service.admin.subscriptions(active_only=True)}
            for sid, task in list(self._tasks.items()):
                if sid not in active:
                    task.cancel()
                    del self._tasks[sid]
            for sid, sub in active.items():
                if sid not in self._tasks or self._tasks[sid].done():
                    self._tasks[sid] = asyncio.create_task(self._worker(sub), name=f"wh-{sid}")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that lands
            # just as the wake-up arrives, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
            self._wake.clear()

    async def _worker(self, sub: SubscriptionRecord) -> None:
        match = matcher(self.service, sub.spec)
        cursor = sub.cursor
        while True:
            last = self.service.ledger.next_seq - 1
            if last <= cursor:
                await asyncio.sleep(0.2)
                continue
            end = min(last, cursor + 500)
            # transitions with their provenance (cause and decision times), as streams get them
            batch = await asyncio.to_thread(self.service.backlog, cursor, None, end)
            for env in batch:
                if match(env):
                    await self._deliver(sub, env.seq, env.to_dict())
                    await asyncio.to_thread(self.service.admin.advance_cursor, sub.id,
                                            env["seq"])
            cursor = end
            await asyncio.to_thread(self.service.admin.advance_cursor, sub.id, cursor)

    async def _deliver(self, sub: SubscriptionRecord, seq: int, env: dict[str, Any]) -> None:
        body = json.dumps(
            {"subscription": sub.id, "delivery": f"{sub.id}:{seq}", "transition": env},
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Tocsin-Delivery": f"{sub.id}:{seq}",
            "X-Tocsin-Event": env["type"],
            "X-Tocsin-Mode": str(env.get("mode", self.service.settings.mode)),
        }
        allow = self.service.settings.allow_private_webhooks
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            error: str | None = None
            try:
                # checked at every attempt, after resolving: a name may change its answer
                address = (await asyncio.to_thread(resolve_target, sub.url,
                                                   allow_private=allow))[0]
                url, host, extensions = _pinned(sub.url, address)
                signed = {**headers, **host, "X-Tocsin-Signature": sign(sub.secret, body)}
                resp = await self.client.post(url, content=body, headers=signed,
                                              extensions=extensions)
                status = resp.status_code
                if 200 <= status < 300:
                    await self._record(sub, seq, attempt, status, None, "ok")
                    return
                error = f"HTTP {status}"
            except TargetRefused as exc:
                error = f"refused: {exc}"
            except httpx.HTTPError:
                # one text for every way a connection fails: no port-scanner oracle
                error = CONNECT_FAILED
            await self._record(sub, seq, attempt, status, error, "failed")
            delay = min(
                self.service.settings.webhook_max_backoff_s,
                self.service.settings.webhook_base_backoff_s * 2 ** min(attempt - 1, 20),
            )
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _record(
        self,
        sub: SubscriptionRecord,
        seq: int,
        attempt: int,
        status: int | None,
        error: str | None,
        outcome: str,
    ) -> None:
        if self.metrics is not None:
            self.metrics.webhook.labels(outcome).inc()
        d = Delivery(sub.id, seq, attempt, format_time(datetime.now(UTC)), status, error)
        await asyncio.to_thread(self.service.admin.record_delivery, d)
