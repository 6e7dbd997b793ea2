"""Simulated sirens that speak tocsin's MQTT protocol (`tocsin.outputs.sirens`), each its own
MQTT client with a last will: for demos, tests and benchmarks (`tocsin siren-sim`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiomqtt

from tocsin.errors import FieldError, ValidationError
from tocsin.modes import ACTUAL, check_mode
from tocsin.outputs.sirens import SIREN_ID_RE, Broker, _json, _now_text, topic

__all__ = ["SimStats", "simulate_sirens"]

log = logging.getLogger("tocsin.sirens")


@dataclass(slots=True)
class SimStats:
    """What a simulation did."""

    sirens: int = 0
    connected: int = 0
    commands: int = 0
    acks: int = 0
    ignored: int = 0
    failing: list[str] = field(default_factory=list)


async def _sim_siren(
    sid: str, broker: Broker, *, failing: bool, heartbeat_s: float, stats: SimStats,
    ready: Callable[[], None], gate: asyncio.Semaphore, stop: asyncio.Event, mode: str,
) -> None:
    will = aiomqtt.Will(topic(sid, "status", mode), json.dumps({"status": "offline"}), qos=1,
                        retain=True)
    first = True
    backoff = 0.5
    while not stop.is_set():
        try:
            async with gate:
                client = broker.client(f"siren-{sid}-{secrets.token_hex(2)}", will=will,
                                       keepalive=max(5, int(heartbeat_s * 2)))
                await client.__aenter__()
            try:
                await client.subscribe(topic(sid, "cmd", mode), qos=1)
                await client.publish(topic(sid, "status", mode),
                                     json.dumps({"status": "ok", "at": _now_text()}),
                                     qos=1, retain=True)
                if first:
                    first = False
                    ready()
                backoff = 0.5
                await _sim_loop(client, sid, failing=failing, heartbeat_s=heartbeat_s,
                                stats=stats, stop=stop, mode=mode)
                await client.publish(topic(sid, "status", mode),
                                     json.dumps({"status": "offline", "reason": "shut down"}),
                                     qos=1, retain=True)
            finally:
                await client.__aexit__(None, None, None)
        except aiomqtt.MqttError as exc:
            if stop.is_set():
                return
            log.warning("siren %s: %s; reconnecting in %.1f s", sid, exc, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 30.0)


async def _sim_loop(client: aiomqtt.Client, sid: str, *, failing: bool, heartbeat_s: float,
                    stats: SimStats, stop: asyncio.Event, mode: str) -> None:
    messages = aiter(client.messages)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            nxt = asyncio.ensure_future(anext(messages))
            done, _ = await asyncio.wait({nxt, stopping}, timeout=heartbeat_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if nxt not in done:
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
                if not stop.is_set():
                    await client.publish(topic(sid, "status", mode),
                                         json.dumps({"status": "ok", "at": _now_text()}),
                                         qos=1, retain=True)
                continue
            message = nxt.result()
            body = _json(message.payload) if message.payload else None
            if body is None:
                continue
            stats.commands += 1
            if failing:
                stats.ignored += 1
                continue
            await client.publish(topic(sid, "ack", mode),
                                 json.dumps({"id": body.get("id"), "status": "ok",
                                             "at": _now_text()}), qos=1)
            stats.acks += 1
    finally:
        stopping.cancel()


async def simulate_sirens(
    ids: Sequence[str],
    broker: Broker,
    *,
    fail_rate: float = 0.0,
    heartbeat_s: float = 30.0,
    seed: int = 1,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[SimStats], None] | None = None,
    connect_at_once: int = 50,
    mode: str = ACTUAL,
) -> SimStats:
    """Run one simulated siren per id, each its own MQTT client, until `stop` is set.

    A siren acknowledges every command it gets, except the `fail_rate` share of them (chosen
    by `seed`), which heartbeat but never acknowledge: what a siren with a broken relay does.
    `on_ready` is called once every siren has connected and said it is ok. `mode` picks the
    topic root the sirens listen on (a drill's sirens are not production's).
    """
    check_mode(mode)
    if not 0.0 <= fail_rate <= 1.0 or math.isnan(fail_rate):
        raise ValidationError(FieldError("fail_rate", "must be between 0 and 1"))
    bad = [sid for sid in ids if not SIREN_ID_RE.match(sid)]
    if bad:
        raise ValidationError(FieldError("ids", f"not a siren id: {bad[0]!r}"))
    stop = stop or asyncio.Event()
    stats = SimStats(sirens=len(ids))
    stats.failing = sorted(random.Random(seed).sample(list(ids), round(len(ids) * fail_rate)))
    failing = set(stats.failing)
    gate = asyncio.Semaphore(connect_at_once)

    def ready() -> None:
        stats.connected += 1
        if stats.connected == len(ids) and on_ready is not None:
            on_ready(stats)

    tasks = [
        asyncio.create_task(_sim_siren(sid, broker, failing=sid in failing,
                                       heartbeat_s=heartbeat_s, stats=stats, ready=ready,
                                       gate=gate, stop=stop, mode=mode))
        for sid in ids
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return stats
