"""`/metrics` as a duty engineer reads it, scraped through the HTTP API and parsed with
prometheus_client's own text parser: alerts in force by type and severity, webhook backlog per
subscription, siren states, MQTT connected (real Mosquitto), streams, HTTP statuses, process."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import servers
from tests.api.helpers import KHARKIV, Api, event, wait_until
from tocsin.geo import RegionSet
from tocsin.outputs.sirens import parse_broker_url, topic
from tocsin.store.admin import AdminStore, SirenRecord

BROKER = servers.MQTT_BROKER
Start = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def broker() -> str:
    """The real Mosquitto; skips loudly when it cannot be reached."""
    return servers.mqtt_broker()


async def scrape(api: Api) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of `/metrics`, by name and sorted labels."""
    r = await api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def one(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str,
        **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


@pytest.mark.mqtt
@pytest.mark.anyio
async def test_what_a_duty_engineer_watches(
    broker: str, start: Start, tmp_path: Path, ua: RegionSet
) -> None:
    kharkiv = ua.locate(*KHARKIV)
    assert kharkiv
    siren = f"m{secrets.token_hex(3)}"  # nobody answers for it: a fault once its ack is due
    admin = AdminStore(tmp_path / "data" / "admin.db")
    admin.put_sirens([SirenRecord(siren, siren, *KHARKIV, kharkiv)])
    admin.close()
    async with start(mqtt_url=broker, siren_ack_s=1.0, allow_private_webhooks=True) as api:
        # a receiver that is not there: its deliveries fail and its backlog grows
        r = await api.client.post("/api/v1/subscriptions", headers=api.auth("admin"),
                                  json={"url": "http://127.0.0.1:9/hook",
                                        "regions": [kharkiv]})
        assert r.status_code == 201, r.text
        sub_id = r.json()["id"]
        output = api.app.state.sirens_output
        await wait_until(lambda: output.current is not None
                         and output.current.connected.is_set(), what="the gateway connects")
        # the siren says it is there, then never acknowledges a command
        async with parse_broker_url(broker).client(f"{siren}-once") as client:
            await client.publish(topic(siren, "status"), json.dumps({"status": "ok"}), qos=1)
        await wait_until(lambda: output.current.sirens[siren].heard, what="the siren's status")
        before = await scrape(api)
        assert one(before, "tocsin_mqtt_connected") == 1.0
        assert sum(before["tocsin_alerts_in_force"].values()) == 0
        assert len(before["tocsin_alerts_in_force"]) == 5 * 3  # every type and severity

        r = await api.post([event("operator_alert", 1, regions=[kharkiv], alert_type="air_raid",
                                  action="raise", operator="duty"),
                            event("operator_alert", 2, regions=[kharkiv],
                                  alert_type="artillery_shelling", action="raise",
                                  operator="duty")])
        assert r.status_code == 202, r.text
        assert (await api.post({"type": "nonsense"})).status_code == 422
        await wait_until(lambda: output.current.sirens[siren].status == "fault",
                         what="the silent siren's fault")
        await wait_until(lambda: any(e.kind == "transition" and "siren_fault" in e.body
                                     for e in api.service.log.read()),
                         what="the fault logged as a transition")

        samples = await scrape(api)
        # alerts in force: the engine's own view, by type and severity
        active: list[dict[str, Any]] = await api.service.read(lambda e: e.active_alerts())
        expected: dict[tuple[str, str], int] = {}
        for a in active:
            expected[(a["alert_type"], a["severity"])] = (
                expected.get((a["alert_type"], a["severity"]), 0) + 1)
        assert expected and {k for k, v in expected.items() if v} == {
            (dict(k)["alert_type"], dict(k)["severity"])
            for k, v in samples["tocsin_alerts_in_force"].items() if v}
        for (atype, severity), n in expected.items():
            assert one(samples, "tocsin_alerts_in_force", alert_type=atype,
                       severity=severity) == n
        # the webhook backlog: entries past the subscription's cursor, stuck on the failing one
        backlog = one(samples, "tocsin_webhook_backlog", subscription=sub_id)
        cursor = next(s.cursor for s in api.service.admin.subscriptions() if s.id == sub_id)
        assert backlog >= 1 and backlog <= api.service.ledger.durable_seq - cursor
        # sirens by status, and the fault among the transitions
        assert one(samples, "tocsin_sirens", status="fault") == 1
        assert one(samples, "tocsin_sirens", status="ok") == 0
        assert one(samples, "tocsin_transitions_total", type="siren_fault") >= 1
        assert one(samples, "tocsin_mqtt_connected") == 1.0
        # and what was there before
        assert one(samples, "tocsin_events_rejected_total") >= 1
        assert one(samples, "tocsin_stream_clients") == 0
        assert one(samples, "tocsin_http_responses_total", status="202") >= 1
        assert one(samples, "tocsin_http_responses_total", status="422") >= 1
        assert one(samples, "process_resident_memory_bytes") > 0


@pytest.mark.anyio
async def test_no_gateway_no_mqtt_gauge(start: Start) -> None:
    """Without a broker there is no gateway to be disconnected: no false alarm."""
    async with start() as api:
        samples = await scrape(api)
        assert "tocsin_mqtt_connected" not in samples and "tocsin_sirens" not in samples
        assert "tocsin_webhook_backlog" not in samples  # no subscription, no sample
