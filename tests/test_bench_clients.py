"""The fan-out benchmarks' instrument (`bench/clients.py`) against a real `tocsin serve` and a
real Mosquitto: every client connects, and each one times the message that carries its marker,
not an earlier one."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import servers
from tests.api.test_stream_edges import detection, post

pytestmark = pytest.mark.serial

CLIENTS = Path(__file__).resolve().parents[1] / "bench" / "clients.py"


def _start(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(CLIENTS), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def _times(proc: subprocess.Popen[str]) -> list[float]:
    assert proc.stdout is not None and proc.stdin is not None
    times: list[float] = json.loads(proc.stdout.readline())
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(30) == 0
    return times


def test_sse_clients_time_the_transition_that_names_their_marker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with servers.serving(data, tmp_path / "serve.log") as base:
        key = servers.create_key("admin", "--data-dir", str(data))
        # far apart: the second starts alerts of its own, whose causes name it
        first = detection(1)
        second = {**detection(2), "position": {"lat": 49.84, "lon": 24.03}}
        proc = _start("sse", base.rsplit(":", 1)[1], "7", f'"{second["track"]}"')
        post(base, key, [first])  # transitions that do not name the marker: not timed
        time.sleep(0.5)  # they have reached the clients by now
        posted = time.monotonic()  # the clock the clients time with
        post(base, key, [second])
        times = _times(proc)
        assert len(times) == 7 and min(times) > posted


def test_mqtt_clients_subscribe_and_time_the_publish() -> None:
    url = servers.mqtt_broker()  # skips loudly when Mosquitto cannot be reached
    host, port = url.removeprefix("mqtt://").split(":")
    proc = _start("mqtt", port, "5", "bench-test", '"marker-42"')
    with socket.create_connection((host, int(port))) as pub:
        name = b"bench-test-pub"
        pub.sendall(bytes([0x10, 12 + len(name)]) + b"\x00\x04MQTT\x04\x02\x00\x00"
                    + len(name).to_bytes(2, "big") + name)
        assert pub.recv(4)[:1] == b"\x20"
        topic, payload = b"tocsin/bench/alerts", b'{"causes":["marker-42"]}'
        body = len(topic).to_bytes(2, "big") + topic + payload
        pub.sendall(bytes([0x30, len(body)]) + body)
        times = _times(proc)
        pub.sendall(b"\xe0\x00")
    assert len(times) == 5
