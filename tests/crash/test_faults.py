"""Faults under the log: disk full, database locked by another process, bus down.

In each case a write the store cannot make is answered `503` (never `202`, never a `500`),
nothing of it is logged or published, the engine does not run ahead of the disk, and once the
fault is gone the client's retry of the very same batch is accepted: nothing lost, nothing
duplicated, and the log still replays.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import NEAR_KHARKIV, FakeClock, detection, running
from tests.crash.helpers import (
    Sensor,
    Server,
    check_log,
    create_key,
    eventually,
    free_port,
    run_cli,
    stream_of_events,
)
from tocsin.errors import OperationalError
from tocsin.store import open_log

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# a second wave from elsewhere: drones over the first wave's hromadas would be no news
# (transitions are material-only), and these tests need the retry to decide something
ELSEWHERE = (46.48, 30.72)  # Odesa


def _events(prefix: str, n: int, t: float = 1.0,
            at: tuple[float, float] = NEAR_KHARKIV) -> list[dict[str, Any]]:
    return [detection(f"{prefix}{i}", t, at[0], at[1] - 0.01 * i,
                      weapon="shahed-136", heading_deg=230) for i in range(n)]


# --- disk full, simulated: the store raises as SQLite does ----------------------------------------


async def test_disk_full_is_503_and_the_retry_is_accepted(tmp_path: Path) -> None:
    async with running(tmp_path / "data", FakeClock()) as api:
        assert (await api.post(_events("A", 3))).status_code == 202
        seq = await api.seq()
        active = (await api.client.get("/api/v1/alerts/active")).json()
        log = api.service.log
        real_append = log.append
        full = True

        def append(*args: Any, **kwargs: Any) -> Any:
            if full:
                raise OperationalError(f"{log.path}: database or disk is full")  # type: ignore[attr-defined]
            return real_append(*args, **kwargs)

        log.append = append  # type: ignore[method-assign]
        async with api.stream() as stream:
            batch = _events("B", 4, at=ELSEWHERE)
            for _ in range(3):  # the client retries; each attempt fails alike
                r = await api.post(batch)
                assert r.status_code == 503, r.text
                assert "disk is full" in r.json()["detail"]
            # nothing logged, nothing decided in memory, nothing published
            assert await api.seq() == seq
            assert (await api.client.get("/api/v1/alerts/active")).json() == active
            assert stream.pending() == []
            full = False
            r = await api.post(batch)
            assert r.status_code == 202, r.text
            accepted = r.json()["accepted"]
            assert [a["duplicate"] for a in accepted] == [False] * 4
            assert accepted[0]["seq"] == seq + 1
            got = await stream.take(api.transition_seqs()[-1])  # the last entry may be an event
            assert [e.id for e in got] == api.transition_seqs(seq)
    acked = [((e["source"], e["id"]), a["seq"]) for e, a in zip(batch, accepted, strict=True)]
    check_log(tmp_path / "data", acked)
    assert run_cli("replay", "--data-dir", str(tmp_path / "data")).returncode == 0


# --- disk full, for real: a tiny tmpfs -----------------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size_kb: int) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs here (needs root with "
                    f"CAP_SYS_ADMIN): {done.stderr.strip()}; the simulated disk-full test "
                    "covers the server's side")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.serial
@pytest.mark.skipif(sys.platform != "linux" or shutil.which("mount") is None,
                    reason="SKIPPED LOUDLY: needs Linux mount(8)")
def test_disk_full_on_a_real_filesystem(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    with tiny_tmpfs(mnt, 2048):
        data = mnt / "data"
        key = create_key(data)
        server = Server(data, log_path=tmp_path / "serve.log").start()
        sensor = Sensor(server.base, key)
        try:
            events = stream_of_events(20_000, seed=3, tag="full")
            i = 0
            statuses: list[int] = []
            # fill the disk: every answer is a 202 or a 503, until the first 503
            while i < len(events):
                batch = events[i:i + 50]
                sent = [{**ev, "time": _now()} for ev in batch]
                r = httpx.post(server.base + "/api/v1/events", json=sent, timeout=30,
                               headers={"Authorization": f"Bearer {key}"})
                statuses.append(r.status_code)
                if r.status_code == 503:
                    break
                assert r.status_code == 202, r.text
                for item, ev in zip(r.json()["accepted"], sent, strict=True):
                    sensor.acked[(ev["source"], ev["id"])] = item["seq"]
                i += len(batch)
            assert statuses[-1] == 503, "the 2 MB disk never filled up"
            # the server stays up and keeps answering reads while the disk is full
            assert httpx.get(server.base + "/readyz", timeout=10).status_code == 200
            assert httpx.get(server.base + "/api/v1/alerts/active", timeout=10).status_code == 200
            # make room; the same batch, re-sent, is accepted, and so is the rest
            subprocess.run(["mount", "-o", "remount,size=65536k", str(mnt)], check=True)
            while i < min(len(events), 4000):
                sensor.send(events[i:i + 50], deadline_s=60)
                i += 50
            assert server.stop() == 0
        finally:
            server.kill()
        check_log(data, sensor.acked.items())
        replay = run_cli("replay", "--data-dir", str(data))
        assert replay.returncode == 0, replay.stderr
        verify = run_cli("verify", "--data-dir", str(data))
        assert verify.returncode == 0, verify.stderr


def _now() -> str:
    from datetime import UTC, datetime, timedelta

    from tocsin.model import format_time

    return format_time(datetime.now(UTC) - timedelta(milliseconds=200))


# --- database locked by another process -----------------------------------------------------------

HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("LOCKED", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


async def test_database_locked_by_another_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running(data, FakeClock()) as api:
        assert (await api.post(_events("A", 2))).status_code == 202
        seq = await api.seq()
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(data / "tocsin.db")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "LOCKED"
            batch = _events("B", 3, at=ELSEWHERE)
            started = time.monotonic()
            r = await api.post(batch)
            assert r.status_code == 503, r.text
            assert "locked" in r.json()["detail"]
            assert time.monotonic() - started < 30
            assert await api.seq() == seq
        finally:
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(30)
        r = await api.post(batch)
        assert r.status_code == 202, r.text
        accepted = r.json()["accepted"]
        assert not any(a["duplicate"] for a in accepted)
    acked = [((e["source"], e["id"]), a["seq"]) for e, a in zip(batch, accepted, strict=True)]
    check_log(data, acked)
    assert run_cli("replay", "--data-dir", str(data)).returncode == 0


# --- bus down: a cluster node whose NATS dies ---------------------------------------------


class Nats:
    """A nats-server of this test's own (JetStream on), so killing it disturbs nobody else."""

    def __init__(self, root: Path) -> None:
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(exe).exists():
            pytest.skip("SKIPPED LOUDLY: nats-server is not installed")
        self.exe = exe
        self.port = free_port()
        self.store = root / "jetstream"
        self.log = root / "nats.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
             "-l", str(self.log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            import socket

            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    return True
            except OSError:
                return False

        eventually(up, "nats-server to listen", 30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.mark.serial
@pytest.mark.postgres
@pytest.mark.nats
def test_bus_down_is_503_and_nothing_is_lost(tmp_path: Path) -> None:
    from tests.cluster.harness import Cluster
    from tests.cluster.services import postgres_or_skip

    pg = postgres_or_skip()
    nats = Nats(tmp_path)
    nats.start()
    cluster = Cluster(tmp_path, pg, nats.url, regions="ua-oblasts")
    try:
        key = cluster.create_key("admin")
        (node,) = cluster.add(1)
        cluster.start([node])
        sensor = Sensor(node.base, key)
        events = stream_of_events(300, seed=5, tag="bus")
        # operator alerts name raions, which the oblast set has not
        events = [ev for ev in events if ev["type"] != "operator_alert"]
        sensor.send(events[:100])
        nats.kill()
        # with the bus gone, ingest answers 503 (a sensor re-sends), never 202 or 500
        codes: list[int] = []
        unanswered: list[list[dict[str, Any]]] = []
        for i in range(100, 130, 10):
            sent = [{**ev, "time": _now()} for ev in events[i:i + 10]]
            unanswered.append(sent)
            with contextlib.suppress(httpx.TransportError):
                r = httpx.post(node.base + "/api/v1/events", json=sent, timeout=30,
                               headers={"Authorization": f"Bearer {key}"})
                codes.append(r.status_code)
        assert codes and set(codes) == {503}, codes
        nats.start()
        # what was refused is re-sent as it was: the bus may have taken some of it after all
        for sent in unanswered:
            sensor.send(sent, deadline_s=90, as_is=True)
        for i in range(130, len(events), 10):
            sensor.send(events[i:i + 10], deadline_s=90)
        # the leader logs everything that was stored in JetStream
        wanted = {(ev["source"], ev["id"]) for ev in events}

        def all_logged() -> bool:
            rows = cluster.sql("SELECT source, event_id FROM log WHERE kind = 'event'")
            return wanted <= {(r[0], r[1]) for r in rows}

        eventually(all_logged, "every event in the log", 90)
        rows = cluster.sql("SELECT source, event_id, count(*) FROM log WHERE kind = 'event' "
                           "GROUP BY source, event_id HAVING count(*) > 1")
        assert rows == [], f"events logged twice: {rows[:5]}"
        node.stop()
        replay = run_cli("replay", "--store", cluster.store)
        assert replay.returncode == 0, replay.stderr
    finally:
        if nats.proc is None or nats.proc.poll() is not None:
            nats.start()
        cluster.close()
        nats.kill()


def test_helpers_log_check_catches_a_lost_event(tmp_path: Path) -> None:
    """The log check itself fails on an acknowledged event that is missing."""
    data = tmp_path / "data"
    with open_log(data):
        pass
    with pytest.raises(AssertionError, match="not in the log"):
        check_log(data, [(("s", "x"), 1)])
