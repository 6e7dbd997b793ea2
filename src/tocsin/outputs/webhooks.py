"""Signed webhook delivery, at least once, surviving restarts.

The log is the outbox: each subscription keeps a cursor (the last seq it is done with) in
`admin.db`, and a worker per subscription walks the log from there, delivering matching
transitions in order and retrying a failing receiver with exponential backoff and jitter. A
crash or restart resumes at the cursor, so a receiver sees every matching transition at least
once; `X-Tocsin-Delivery` (subscription id and seq) is stable across retries for de-duplication.

Signature: `X-Tocsin-Signature: sha256=<hex>` = HMAC-SHA256(secret, raw request body). Verify:

    import hmac, hashlib
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request.headers["X-Tocsin-Signature"])
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from tocsin.geo import Footprint
from tocsin.model import format_time
from tocsin.store.admin import Delivery, SubscriptionRecord

if TYPE_CHECKING:
    from tocsin.api.metrics import Metrics
    from tocsin.service import Service

__all__ = ["WebhookDispatcher", "matcher", "sign"]

log = logging.getLogger("tocsin.webhooks")


def sign(secret: str, body: bytes) -> str:
    """The signature header value of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def matcher(service: Service, spec: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
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

    def match(t: dict[str, Any]) -> bool:
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
                    await self._deliver(sub, env["seq"], env)
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
            "X-Tocsin-Signature": sign(sub.secret, body),
            "X-Tocsin-Delivery": f"{sub.id}:{seq}",
            "X-Tocsin-Event": env["type"],
        }
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            error: str | None = None
            try:
                resp = await self.client.post(sub.url, content=body, headers=headers)
                status = resp.status_code
                if 200 <= status < 300:
                    await self._record(sub, seq, attempt, status, None, "ok")
                    return
                error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
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
