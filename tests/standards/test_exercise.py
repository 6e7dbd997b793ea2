"""Exercise isolation end to end: a drill is marked on every output and never reaches a
production siren (real Mosquitto, a real `tocsin serve --demo` process)."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.servers import free_port, run_cli
from tests.standards.test_sirens import broker, mqtt
from tocsin.outputs.sirens import topic

__all__ = ["broker"]


@pytest.mark.mqtt
@pytest.mark.serial
def test_demo_never_reaches_a_production_siren(broker: str, tmp_path: Path) -> None:
    sid = f"ex{secrets.token_hex(4)}"
    data = tmp_path / "data"
    registry = tmp_path / "sirens.csv"
    # where the demo's first drone flies: its hromada is under alert within seconds at 60x
    registry.write_text(f"id,lat,lon,name\n{sid},47.08,35.98,Drill test siren\n")
    done = run_cli("sirens", "import", str(registry), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    port = free_port()
    production: list[tuple[str, bytes]] = []
    exercise: list[dict[str, Any]] = []

    async def watch(client: aiomqtt.Client, into: list[Any], parse: bool) -> None:
        async for message in client.messages:
            if parse and message.payload:
                into.append(json.loads(message.payload))
            elif not parse:
                into.append((message.topic.value, bytes(message.payload or b"")))

    async def drill() -> int:
        async with mqtt("prod-siren") as prod, mqtt("drill-siren") as drill_siren:
            # a production siren subscribes to its own topics, and to every siren's commands
            await prod.subscribe(f"tocsin/v1/sirens/{sid}/#", qos=1)
            await prod.subscribe("tocsin/v1/sirens/+/cmd", qos=1)
            await drill_siren.subscribe(topic(sid, "cmd", "exercise"), qos=1)
            tasks = [asyncio.create_task(watch(prod, production, False)),
                     asyncio.create_task(watch(drill_siren, exercise, True))]
            proc = subprocess.Popen(
                [sys.executable, "-m", "tocsin", "serve", "--demo", "--speed", "60",
                 "--port", str(port), "--data-dir", str(data), "--mqtt", broker],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 90
                while not any(c.get("command") == "sound" for c in exercise):
                    assert proc.poll() is None, proc.communicate()[1][-3000:]
                    assert time.monotonic() < deadline, "the drill never sounded its siren"
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # room for anything stray on production topics
            finally:
                proc.send_signal(signal.SIGTERM)
                out, err = await asyncio.to_thread(proc.communicate, timeout=60)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert proc.returncode == 0, err[-3000:]
        return len(exercise)

    try:
        asyncio.run(drill())
        ours = [(name, body) for name, body in production if f"/{sid}/" in name]
        assert ours == [], ours
        sound = next(c for c in exercise if c["command"] == "sound")
        assert sound["mode"] == "exercise" and sound["pattern"] == "alert"
        assert all(c["mode"] == "exercise" for c in exercise)

        async def leftover() -> list[bytes]:
            seen: list[bytes] = []
            async with mqtt("late-siren") as late:
                await late.subscribe(topic(sid, "cmd", "exercise"), qos=1)
                try:
                    async with asyncio.timeout(2):
                        async for message in late.messages:
                            seen.append(bytes(message.payload or b""))
                except TimeoutError:
                    pass
            return seen

        # the drill's retained command was cleared when it stopped
        assert [b for b in asyncio.run(leftover()) if b] == []
    finally:
        async def clean() -> None:
            async with mqtt("cleanup") as client:
                for mode in ("actual", "exercise"):
                    for kind in ("cmd", "status"):
                        await client.publish(topic(sid, kind, mode), b"", qos=1, retain=True)

        asyncio.run(clean())


def test_siren_sim_against_an_unreachable_broker_fails() -> None:
    port = free_port()  # nothing listens there
    done = run_cli("siren-sim", "--count", "2", "--broker", f"mqtt://127.0.0.1:{port}",
                   "--duration", "5", timeout=60)
    assert done.returncode == 1
    assert "cannot reach the MQTT broker" in done.stderr


@pytest.mark.anyio
async def test_a_drill_and_the_real_thing_never_share_a_log(start: Any) -> None:
    from tocsin.errors import TocsinError

    async with start(mode="exercise"):
        pass
    with pytest.raises(TocsinError, match="exercise mode"):
        async with start(mode="actual"):
            pass
    async with start(mode="exercise"):  # the same mode again is fine
        pass
