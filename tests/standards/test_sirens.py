"""Sirens over MQTT, against the real Mosquitto: commands, acks, faults, recovery, the simulator."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests import servers
from tests.api.helpers import KHARKIV, LVIV, Api, wait_until
from tests.engine.helpers import event
from tocsin.cli import main
from tocsin.geo import RegionSet
from tocsin.outputs.sirens import parse_broker_url, topic
from tocsin.outputs.sirensim import simulate_sirens
from tocsin.store.admin import AdminStore, SirenRecord

Start = Callable[..., AbstractAsyncContextManager[Api]]
BROKER = servers.MQTT_BROKER


@pytest.fixture(scope="module")
def broker() -> str:
    """The real Mosquitto; skips loudly when it cannot be reached."""
    return servers.mqtt_broker()


@asynccontextmanager
async def mqtt(name: str) -> AsyncIterator[aiomqtt.Client]:
    async with parse_broker_url(BROKER).client(f"{name}-{secrets.token_hex(3)}") as client:
        yield client


async def retained(client: aiomqtt.Client, topic_name: str) -> dict[str, Any]:
    """The retained message of a topic (fails after 10 s)."""
    await client.subscribe(topic_name, qos=1)
    async with asyncio.timeout(10):
        async for message in client.messages:
            if message.topic.matches(topic_name) and message.payload:
                assert message.retain and message.qos == 1
                await client.unsubscribe(topic_name)
                body: dict[str, Any] = json.loads(message.payload)
                return body
    raise AssertionError("unreachable")


async def forget(ids: list[str]) -> None:
    """Clear the retained messages a test left on the broker."""
    async with mqtt("cleanup") as client:
        for sid in ids:
            for kind in ("cmd", "status"):
                await client.publish(topic(sid, kind), b"", qos=1, retain=True)


def faults(api: Api, siren: str) -> list[str]:
    return [e.obj()["status"] for e in api.service.log.read() if e.kind == "transition"
            and e.obj()["type"] == "siren_fault" and e.obj()["siren"] == siren]


# --- the registry ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_registry_import_list_and_api_without_a_broker(
    start: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str], ua: RegionSet
) -> None:
    data = tmp_path / "data"
    csv = tmp_path / "sirens.csv"
    csv.write_text("id,lat,lon,name\ns-1,49.99,36.23,Kharkiv centre\ns-2,49.84,24.03,\n")
    assert main(["sirens", "import", str(csv), "--data-dir", str(data)]) == 0
    assert "imported 2 sirens in 2 regions" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("id,lat,lon\nok-1,49.99,36.23\nbad/id,49.9,36.2\nsea,40.0,20.0\n")
    assert main(["sirens", "import", str(bad), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "line 3: id" in err and "line 4: lat, lon" in err and "nothing was imported" in err
    assert main(["sirens", "list", "--data-dir", str(data)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["s-1", ua.locate(*KHARKIV)], ["s-2", ua.locate(*LVIV)]]
    async with start() as api:
        r = await api.client.get("/api/v1/sirens")
        assert r.json()["mqtt"] == "off"
        assert [(s["id"], s["name"], s["status"]) for s in r.json()["sirens"]] == [
            ("s-1", "Kharkiv centre", "unknown"), ("s-2", "s-2", "unknown")]
        r = await api.client.post("/api/v1/sirens/s-1/test", headers=api.auth("operator"))
        assert r.status_code == 409


# --- over MQTT -------------------------------------------------------------------------------


@pytest.mark.mqtt
@pytest.mark.anyio
async def test_alerts_sound_sirens_and_silence_is_a_logged_fault(
    broker: str, start: Start, tmp_path: Path, ua: RegionSet
) -> None:
    tag = secrets.token_hex(3)
    kharkiv, lviv = ua.locate(*KHARKIV), ua.locate(*LVIV)
    assert kharkiv and lviv
    good = [f"t{tag}-k{i}" for i in range(3)]
    quiet = f"t{tag}-quiet"  # a siren this test answers for by hand
    far = f"t{tag}-lviv"
    everyone = [*good, quiet, far]
    admin = AdminStore(tmp_path / "data" / "admin.db")
    admin.put_sirens([SirenRecord(s, s, *KHARKIV, kharkiv) for s in [*good, quiet]]
                     + [SirenRecord(far, far, *LVIV, lviv)])
    admin.close()
    stop = asyncio.Event()
    ready = asyncio.Event()
    sim = asyncio.create_task(simulate_sirens(
        [*good, far], parse_broker_url(broker), stop=stop, heartbeat_s=1.0,
        on_ready=lambda _stats: ready.set()))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        will = aiomqtt.Will(topic(quiet, "status"), json.dumps({"status": "offline"}), 1, True)
        async with parse_broker_url(broker).client(f"quiet-{tag}", will=will) as siren, \
                start(mqtt_url=broker, siren_ack_s=1.0) as api:
            output = api.app.state.sirens_output  # a leader-only output: this node leads
            await siren.subscribe(topic(quiet, "cmd"), qos=1)
            await siren.publish(topic(quiet, "status"), json.dumps({"status": "ok"}), qos=1,
                                retain=True)
            await wait_until(lambda: output.current is not None
                             and output.current.connected.is_set(), what="the gateway connects")
            gateway = output.current
            # the answering sirens acknowledge the state sent on connecting; the quiet one is
            # reported faulty once its second is up
            await wait_until(lambda: all(gateway.sirens[s].status == "ok" for s in good),
                             what="acks of the connect-time commands")
            await wait_until(lambda: faults(api, quiet) == ["fault"], what="the quiet fault")
            assert faults(api, good[0]) == []
            # an alert sounds Kharkiv's sirens, and only those
            await api.post(event("operator_alert", 1, regions=[kharkiv], alert_type="air_raid",
                                 action="raise", operator="duty"))
            async with mqtt("watch") as watch:
                for sid in good:
                    cmd = await retained(watch, topic(sid, "cmd"))
                    assert cmd["command"] == "sound" and cmd["pattern"] == "alert"
                    assert cmd["alert"]["region"] == kharkiv and cmd["issued_at"]
                assert (await retained(watch, topic(far, "cmd")))["command"] == "stop"
            await wait_until(lambda: all(gateway.sirens[s].pending is None for s in good),
                             what="acks of the sound commands")
            # the quiet siren answers at last: it recovers
            async with asyncio.timeout(10):
                async for message in siren.messages:
                    body = json.loads(message.payload)
                    if body["command"] == "sound":
                        break
            await siren.publish(topic(quiet, "ack"), json.dumps({"id": body["id"]}), qos=1)
            await wait_until(lambda: faults(api, quiet) == ["fault", "recovered"],
                             what="the recovery")
            # and then goes offline (what its last will says)
            await siren.publish(topic(quiet, "status"), json.dumps({"status": "offline"}),
                                qos=1, retain=True)
            await wait_until(lambda: faults(api, quiet) == ["fault", "recovered", "offline"],
                             what="offline")
            r = await api.client.get("/api/v1/sirens")
            by_id = {s["id"]: s for s in r.json()["sirens"]}
            assert r.json()["mqtt"] == "connected"
            assert by_id[quiet]["status"] == "offline" and by_id[good[0]]["status"] == "ok"
            assert by_id[good[0]]["command"] == "sound"
            # the alert ends: stop, all clear
            await api.post(event("operator_alert", 2, regions=[kharkiv], alert_type="air_raid",
                                 action="clear", operator="duty"))
            async with mqtt("watch") as watch:
                await wait_until(lambda: gateway.sirens[good[0]].command["command"] == "stop",
                                 what="the stop command")
                cmd = await retained(watch, topic(good[0], "cmd"))
                assert (cmd["command"], cmd["pattern"]) == ("stop", "all_clear")
            r = await api.client.post(f"/api/v1/sirens/{good[1]}/test",
                                      headers=api.auth("operator"))
            assert r.status_code == 202
            await wait_until(lambda: gateway.sirens[good[1]].pending is None,
                             what="the test's ack")
            assert len(gateway.latencies) >= len(good) * 3
    finally:
        stop.set()
        stats = await asyncio.wait_for(sim, 30)
        await forget(everyone)
    assert stats.acks >= 3 * len(good)


@pytest.mark.mqtt
@pytest.mark.serial
def test_siren_sim_command_answers_commands(broker: str) -> None:
    prefix = f"cli{secrets.token_hex(3)}-"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tocsin", "siren-sim", "--count", "3", "--prefix", prefix,
         "--broker", broker, "--duration", "20", "--heartbeat", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ids = [f"{prefix}{i:05d}" for i in (1, 2, 3)]

    async def drive() -> dict[str, Any]:
        async with mqtt("driver") as client:
            await client.subscribe(topic(ids[0], "ack"), qos=1)
            deadline = time.monotonic() + 30
            async with asyncio.timeout(30):
                while time.monotonic() < deadline:
                    # publish until the simulated siren is up and answers
                    await client.publish(topic(ids[0], "cmd"), json.dumps(
                        {"id": "hello", "command": "stop", "pattern": "all_clear",
                         "alert": None, "issued_at": "2026-01-01T00:00:00Z"}), qos=1, retain=True)
                    with_ack: dict[str, Any] | None = None
                    try:
                        async with asyncio.timeout(1):
                            async for message in client.messages:
                                with_ack = json.loads(message.payload)
                                break
                    except TimeoutError:
                        continue
                    if with_ack is not None:
                        return with_ack
            raise AssertionError("no ack")

    try:
        ack = asyncio.run(drive())
        assert ack["id"] == "hello" and ack["status"] == "ok"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        asyncio.run(forget(ids))
    assert proc.returncode == 0, err
    assert "ready: 3 sirens connected" in err
    assert "3 sirens:" in out
