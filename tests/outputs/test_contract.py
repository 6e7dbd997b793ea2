"""The output contract: every output the composition root registers is driven through the one
protocol (start → apply(batch) → rebuild(entries) → stop) with the same envelopes, and shows
the same state whether it was fed live or rebuilt from the log.

`OBSERVE` says what each output shows the world; an output registered without an entry here
fails the first test, so a new output comes with its observation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.api.fixtures import anyio_backend
from tests.api.helpers import FakeClock
from tests.engine.helpers import T0, detection, event
from tocsin.api.feed import LogPages
from tocsin.bootstrap import compose
from tocsin.config import Settings
from tocsin.envelopes import Envelope
from tocsin.outputs.base import LeaderOnly, Output, ReadModel
from tocsin.service import Service

__all__ = ["anyio_backend"]

BROKER = servers.MQTT_BROKER
LVIV_OBLAST = "UA46000000000026241"
NEAR_KHARKIV = (50.25, 36.70)
ODESA = (46.48, 30.73)
FEED_TIME = "2026-11-25T02:00:00Z"


def _broker() -> str:
    return servers.mqtt_broker()


def _plain(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # `published_at` says when a copy went out: the one field live and rebuilt copies differ in
    return [{k: v for k, v in i.items() if k != "published_at"} for i in items]


def _sirens(output: LeaderOnly[Any]) -> Any:
    gateway = output.current
    assert gateway is not None, "the gateway runs on the node that leads"
    return {region: {t: a["severity"] for t, a in types.items()}
            for region, types in gateway.active.items()}


OBSERVE: dict[str, Callable[[Service, Any], Any]] = {
    "history": lambda svc, o: o.model.query(limit=10_000),
    "cap": lambda svc, o: (sorted(o.model.latest), o.model.feed(updated=FEED_TIME)),
    "alertsinua": lambda svc, o: (o.model.statuses(levels=True), o.model.active()),
    "oref": lambda svc, o: (o.model.current(), o.model.history(svc.clock())),
    "incidents": lambda svc, o: _plain(o.model.latest(500)),
    "metrics": lambda svc, o: o.alerts_in_force(),
    # what a stream is sent: live, what the bus carried; rebuilt, what a resuming client reads
    "stream": lambda svc, o: [(e["seq"], e["type"], e["region"])
                              for e in LogPages(svc.log, svc.clock, svc.settings.mode)
                              .page(0, 100_000)[0]],
    # delivery state lives in the admin store (cursors), tested in tests/api/test_webhooks.py;
    # here: a dispatcher runs where the node leads
    "webhooks": lambda svc, o: type(o.current).__name__,
    "sirens": lambda svc, o: _sirens(o),
    # the stream workers' pipes it rings (what the workers read is the log itself)
    "doorbell": lambda svc, o: len(o.fds),
}

EVENTS = [
    [event("operator_alert", 1, regions=[LVIV_OBLAST], alert_type="air_raid", action="raise",
           operator="duty")],
    [event("threat_level", 2, regions=[LVIV_OBLAST], level=2, operator="duty")],
    [detection("D-1", 3, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230)],
    [event("impact", 4, position={"lat": ODESA[0], "lon": ODESA[1]}, kind="explosion")],
    [event("operator_alert", 5, regions=[LVIV_OBLAST], alert_type="air_raid", action="clear",
           operator="duty"),
     event("operator_alert", 6, regions=[LVIV_OBLAST], alert_type="artillery_shelling",
           action="raise", operator="duty")],
]


def _settings(data: Path, broker: str) -> Settings:
    return Settings(data_dir=data, regions="ua-oblasts", tick_s=3600.0, mqtt_url=broker)


@pytest.mark.anyio
async def test_every_output_is_fed_live_and_rebuilt_alike(tmp_path: Path) -> None:
    broker = _broker()
    clock = FakeClock(T0 + timedelta(seconds=30))
    ring, bell = os.pipe()
    os.set_blocking(bell, False)
    live_svc = compose(Service(_settings(tmp_path / "d", broker), clock=clock),
                       doorbells=[bell])
    outputs = list(live_svc.outputs)
    names = [o.name for o in outputs]
    assert set(names) == set(OBSERVE), "every registered output needs an observation here"
    assert all(isinstance(o, Output) for o in outputs)
    sub = live_svc.bus.subscribe()
    await live_svc.start()  # rebuild (an empty log) and start every output
    batches: list[list[Envelope]] = []
    for raws in EVENTS:
        result = await live_svc.submit(raws)
        assert all(isinstance(e, Envelope) for e in result.envelopes)
        batches.append(result.envelopes)  # each output had apply(batch) with these
    sent = [e for batch in batches for e in batch]
    kinds = {e["type"] for e in sent}
    assert {"alert_started", "alert_ended", "level_changed", "silent_impact"} <= kinds
    streamed = []
    while sum(len(b) for b in streamed) < len(sent):
        streamed.append(await asyncio.wait_for(sub.get_batch(), 5))
    sub.close()
    live = {o.name: OBSERVE[o.name](live_svc, o) for o in outputs}
    live["stream"] = [(e["seq"], e["type"], e["region"]) for b in streamed for e in b]
    for name in ("history", "metrics", "incidents", "sirens", "stream"):
        assert live[name], f"{name}: nothing to compare"
    assert live["webhooks"] == "WebhookDispatcher"

    # the log's envelopes, made by the same function: equal to the live ones but for when
    # this copy goes out
    entries = live_svc.backlog(0, None)
    assert [e.transition for e in entries] == [e.transition for e in sent]
    assert [e.provenance.cause_time for e in entries] == [e.provenance.cause_time for e in sent]

    # apply → rebuild with the same envelopes on the same outputs changes nothing
    for o in outputs:
        o.rebuild(entries)
        assert OBSERVE[o.name](live_svc, o) == live[o.name], f"{o.name}: rebuild after apply"
    await live_svc.stop()  # stop every output

    # a fresh node on the same log: its outputs rebuilt from those envelopes, then started
    assert os.read(ring, 4096) == b"\x01" * len(EVENTS)  # rung once per committed batch
    cold_svc = compose(Service(_settings(tmp_path / "d", broker), clock=clock),
                       doorbells=[bell])
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(cold_svc.writer, _engine_only, cold_svc)
    for o in cold_svc.outputs:
        o.rebuild(entries)
    await cold_svc.outputs.start(leading=True)
    try:
        for o in cold_svc.outputs:
            assert OBSERVE[o.name](cold_svc, o) == live[o.name], f"{o.name}: live != rebuilt"
    finally:
        await cold_svc.stop()
        os.close(ring)
        os.close(bell)


def _engine_only(svc: Service) -> None:
    """Recover the engine alone (a leader-only output reads it when it starts)."""
    svc.merkle.load()
    svc.ledger.resume(svc.ledger.new_engine(), 0, end=svc.merkle.size)


@pytest.mark.anyio
async def test_an_output_that_fails_never_starves_the_others(tmp_path: Path) -> None:
    seen: list[int] = []

    class Broken:
        def apply_many(self, envelopes: Any) -> None:
            raise RuntimeError("a bug in one output")

    class Tap:
        def apply_many(self, envelopes: Any) -> None:
            seen.extend(e.seq for e in envelopes)

    svc = Service(Settings(data_dir=tmp_path / "d", regions="ua-oblasts", tick_s=3600.0),
                  clock=FakeClock(T0 + timedelta(seconds=30)))
    svc.outputs.add(ReadModel("broken", Broken()))
    svc.outputs.add(ReadModel("tap", Tap()))
    with pytest.raises(ValueError, match="registered already"):
        svc.outputs.add(ReadModel("tap", Tap()))
    await svc.start()
    try:
        result = await svc.submit(EVENTS[0])
        assert seen == [e.seq for e in result.envelopes] and seen
    finally:
        await svc.stop()
