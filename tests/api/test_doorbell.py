"""Stream workers woken by the writer's doorbell instead of their poll, and what happens when
the doorbell breaks: a full pipe, a worker gone, a writer gone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.helpers import detection
from tocsin.api.feed import TailFeed
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import load_region_set
from tocsin.ledger import Ledger
from tocsin.outputs.doorbell import Doorbell
from tocsin.store import SQLiteLog
from tocsin.threats import load_catalog

pytestmark = pytest.mark.anyio

PLACES = [(50.45, 30.52), (49.84, 24.03), (46.48, 30.72)]  # Kyiv, Lviv, Odesa


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Ledger]:
    regions, catalog = load_region_set("ua-oblasts"), load_catalog()
    log = SQLiteLog(tmp_path / "tocsin.db")
    yield Ledger(log, lambda: Engine(regions, catalog, Policy()))
    log.close()


def commit(ledger: Ledger, n: int) -> int:
    """Commit a drone over a city no earlier drone alerted; the transitions it decided."""
    accepted = ledger.submit([detection(f"T{n}", 10.0 * n, *PLACES[n], heading_deg=90)])
    return len(accepted[0].transitions)


async def test_a_ring_wakes_the_feed_long_before_its_poll(
        tmp_path: Path, writer: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TailFeed, "RUNG_POLL_S", 120.0)  # only a ring can wake it in time
    ring, bell = os.pipe()
    os.set_blocking(bell, False)
    feed = TailFeed(SQLiteLog(tmp_path / "tocsin.db"), poll_s=120.0, wake_fd=ring)
    door = Doorbell([bell])
    try:
        await feed.open()
        waiting = asyncio.ensure_future(feed.next_batch())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        decided = commit(writer, 1)
        assert decided > 0
        door.apply([])  # the batch itself is not read: a ring says only "read the log"
        batch = await asyncio.wait_for(waiting, 30)
        assert len(batch) == decided and feed.position == writer.log.max_seq()
        # rings that find nothing new wake it for nothing, and it waits again
        for _ in range(3):
            door.apply([])
        waiting = asyncio.ensure_future(feed.next_batch())
        await asyncio.sleep(0.2)
        assert not waiting.done()
        assert commit(writer, 2) > 0
        door.apply([])
        assert len(await asyncio.wait_for(waiting, 30)) > 0
    finally:
        feed.close()
        os.close(ring)
        os.close(bell)


async def test_when_the_writer_goes_the_feed_polls_again(tmp_path: Path,
                                                         writer: Ledger) -> None:
    ring, bell = os.pipe()
    feed = TailFeed(SQLiteLog(tmp_path / "tocsin.db"), poll_s=0.02, wake_fd=ring)
    try:
        await feed.open()
        waiting = asyncio.ensure_future(feed.next_batch())
        os.close(bell)  # end of file on the doorbell
        await asyncio.sleep(0.1)
        assert commit(writer, 1) > 0
        assert len(await asyncio.wait_for(waiting, 30)) > 0
    finally:
        feed.close()
        os.close(ring)


def test_a_full_pipe_and_a_gone_worker_do_not_stop_the_others() -> None:
    full_r, full_w = os.pipe()
    gone_r, gone_w = os.pipe()
    ok_r, ok_w = os.pipe()
    for fd in (full_w, gone_w, ok_w):
        os.set_blocking(fd, False)
    try:
        while True:  # fill the first pipe to the brim
            try:
                os.write(full_w, b"\x00" * 65536)
            except BlockingIOError:
                break
        os.close(gone_r)
        door = Doorbell([full_w, gone_w, ok_w])
        door.apply([])
        door.apply([])
        assert door.fds == [full_w, ok_w]  # the gone one is not written to again
        assert os.read(ok_r, 16) == b"\x01\x01"
    finally:
        for fd in (full_r, full_w, gone_w, ok_r, ok_w):
            os.close(fd)


@pytest.mark.parametrize("fd, reason", [("987", "not an open file descriptor"),
                                        ("0", "not a pipe")])
def test_a_bad_wake_fd_is_refused_by_name(tmp_path: Path, fd: str, reason: str) -> None:
    with open(os.devnull, "rb") as stdin:  # fd 0: a file, not a pipe
        run = subprocess.run([sys.executable, "-m", "tocsin", "stream-edge", "--data-dir",
                              str(tmp_path), "--wake-fd", fd], stdin=stdin,
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert f"--wake-fd: {fd} is {reason}" in run.stderr
