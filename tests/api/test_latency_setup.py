"""What the first answers of a started server must not wait for: Nagle against a client's
delayed ACK, and the writer thread's first projection."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from tocsin.cli.edge import listening_socket
from tocsin.config import Settings
from tocsin.geo import RegionSet
from tocsin.service import Service

pytestmark = pytest.mark.anyio


async def test_accepted_connections_send_without_waiting_for_acks() -> None:
    # asyncio sets TCP_NODELAY only on sockets that name their protocol; without it a response
    # body written after its headers waits up to 40 ms for the client's delayed ACK
    sock = listening_socket("127.0.0.1", 0, reuse_port=False)
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            conn = transport.get_extra_info("socket")
            seen.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert seen and seen[0] != 0


async def test_the_writer_thread_is_warmed_before_the_first_detection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warmed: list[str] = []
    real = RegionSet.warm

    def spy(self: RegionSet) -> None:
        warmed.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(RegionSet, "warm", spy)
    svc = Service(Settings(data_dir=tmp_path / "d", regions="ua-oblasts", tick_s=3600.0))
    await svc.start()
    try:
        assert warmed and all(name.startswith("tocsin-writer") for name in warmed)
    finally:
        await svc.stop()


def test_warm_projects_in_a_fresh_thread() -> None:
    from tocsin.geo import load_region_set

    regions = load_region_set("ua-oblasts")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            regions.warm()
            assert regions.locate(50.45, 30.52) is not None  # Kyiv, with the warmed frame
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []
