"""Real clusters for the tests: `tocsin serve` processes sharing a PostgreSQL database and NATS.

`Cluster` makes a fresh database and stream names, starts nodes (`python -m tocsin serve
--store … --bus …`), and drops it all afterwards. `SSEWatcher` is a stream client in a thread
that resumes with `Last-Event-ID` (on another node, if told to) whenever its connection drops.
`Poster` sends events round-robin across nodes from several threads, retrying an event on the
next node until one answers `202`, as a sensor would. Everything polls with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests import servers
from tests.cluster.services import fresh_database, nats_or_skip, postgres_or_skip
from tocsin.model import format_time

__all__ = ["Cluster", "Node", "Poster", "SSEWatcher", "Tracks", "eventually", "fresh_cluster"]


def eventually(check: Callable[[], Any], what: str, timeout: float = 60.0,
               every: float = 0.02) -> Any:
    """`tests.servers.eventually`, polling more often."""
    return servers.eventually(check, what, timeout, every)


class Node:
    """One `python -m tocsin serve` process of a cluster."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.port = servers.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = cluster.root / name
        self.log_path = cluster.root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        self.proc = servers.start_serve(
            ["--store", self.cluster.store, "--bus", self.cluster.bus,
             "--cluster-name", self.cluster.name, "--node-id", self.name,
             "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--regions", self.cluster.regions],
            self.log_path, env=self.cluster.env, append=True)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.proc is not None
        servers.wait_ready(self.proc, self.base, self.output, what=self.name, timeout=timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:]

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(self.base + "/api/v1/cluster", timeout=2)
        except httpx.TransportError:
            return None
        return r.json() if r.status_code == 200 else None

    def kill(self) -> None:
        """SIGKILL: no goodbye to PostgreSQL, NATS or clients."""
        if self.proc is not None:
            servers.kill(self.proc)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None:
            servers.stop(self.proc)


class Cluster:
    """Nodes sharing a fresh database and fresh JetStream streams; `close()` drops both."""

    def __init__(self, root: Path, pg_url: str, nats_url: str, *, regions: str,
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.bus = nats_url
        self.regions = regions
        self.name = f"t{secrets.token_hex(4)}"
        self.env = {"TOCSIN_HEARTBEAT_S": "1", "TOCSIN_STH_INTERVAL_S": "1",
                    "TOCSIN_RATE_LIMIT": "1000000", "TOCSIN_RATE_BURST": "1000000",
                    **(env or {})}
        self._db = fresh_database(pg_url)
        self.store = self._db.__enter__()
        self.nodes: list[Node] = []

    def add(self, count: int) -> list[Node]:
        made = [Node(self, f"n{len(self.nodes) + i + 1}") for i in range(count)]
        self.nodes.extend(made)
        return made

    def start(self, nodes: list[Node]) -> None:
        for n in nodes:
            n.start()
        for n in nodes:
            n.wait_ready()

    def tocsin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return servers.run_cli(*args)

    def create_key(self, role: str) -> str:
        # the sources `Tracks` sends as
        sources = [arg for k in range(7) for arg in ("--source", f"radar-{k}")]
        return servers.create_key(role, "--store", self.store, *sources)

    def leader(self, among: list[Node] | None = None) -> Node | None:
        for n in among or self.nodes:
            if n.alive:
                st = n.status()
                if st is not None and st["is_leader"]:
                    return n
        return None

    def sql(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.store, autocommit=True) as conn:
            return conn.execute(query, args).fetchall()  # type: ignore[arg-type]

    def close(self) -> None:
        for n in self.nodes:
            n.kill()
        self._db.__exit__(None, None, None)
        asyncio.run(self._drop_streams())

    async def _drop_streams(self) -> None:
        import nats

        nc = await nats.connect(self.bus)
        try:
            js = nc.jetstream()
            for suffix in ("EVENTS", "TRANSITIONS"):
                with contextlib.suppress(Exception):
                    await js.delete_stream(f"{self.name.upper()}_{suffix}")
        finally:
            await nc.close()

    async def transition_stream(self) -> list[int]:
        """The `Tocsin-Seq` of every message of the transitions stream, in stream order."""
        import nats
        from nats.js import api

        nc = await nats.connect(self.bus)
        try:
            js = nc.jetstream()
            stream = f"{self.name.upper()}_TRANSITIONS"
            last = (await js.stream_info(stream)).state.last_seq
            sub = await js.pull_subscribe(
                f"{self.name}.transitions", stream=stream,
                config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE))
            seqs: list[int] = []
            got = 0
            while got < last:
                msgs = await sub.fetch(1000, timeout=5)
                for m in msgs:
                    got = m.metadata.sequence.stream
                    seqs.append(int((m.headers or {})["Tocsin-Seq"]))
            return seqs
        finally:
            await nc.close()


@contextlib.contextmanager
def fresh_cluster(root: Path, regions: str) -> Iterator[Cluster]:
    """A `Cluster` on the test services (skipped loudly without them), closed afterwards; the
    nodes' output is printed if the body fails."""
    c = Cluster(root, postgres_or_skip(), nats_or_skip(), regions=regions)
    try:
        yield c
    except BaseException:
        for n in c.nodes:
            print(f"--- {n.name} ---\n{n.output()}")
        raise
    finally:
        c.close()


class Tracks:
    """Drones flying across Ukraine; `next_event()` is the next detection, timed now."""

    STARTS = [(46.9, 36.6), (50.6, 37.6), (52.2, 33.6), (45.7, 31.4), (51.5, 35.4)]

    def __init__(self, tracks: int = 60, seed: int = 1) -> None:
        rnd = random.Random(seed)
        self.state = []
        for _ in range(tracks):
            lat, lon = rnd.choice(self.STARTS)
            self.state.append([lat + rnd.uniform(-0.3, 0.3), lon + rnd.uniform(-0.3, 0.3),
                               rnd.uniform(200, 300)])
        self.run = secrets.token_hex(3)
        self._n = itertools.count()
        self._lock = threading.Lock()

    def next_event(self) -> dict[str, Any]:
        with self._lock:
            i = next(self._n)
            k = i % len(self.state)
            s = self.state[k]
            s[0] += 0.01 * math.cos(math.radians(s[2]))
            s[1] += 0.01 * math.sin(math.radians(s[2])) / math.cos(math.radians(s[0]))
            lat, lon, heading = s
        return {
            "id": f"{self.run}-{i}", "type": "detection",
            "time": format_time(datetime.now(UTC) - timedelta(milliseconds=50)),
            "source": f"radar-{k % 7}", "track": f"T{self.run}-{k}", "object": "drone",
            "weapon": "shahed-136", "position": {"lat": round(lat, 5), "lon": round(lon, 5)},
            "heading_deg": round(heading, 1), "speed_kmh": 180,
        }


@dataclass
class Poster:
    """Sends `total` events round-robin across nodes from `threads` threads."""

    nodes: list[Node]
    key: str
    tracks: Tracks
    total: int
    threads: int = 6
    accepted: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    retries: int = 0
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, on_progress: Callable[[int], None] | None = None) -> None:
        counter = itertools.count()
        workers = [threading.Thread(target=self._work, args=(counter, on_progress), daemon=True)
                   for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def _work(self, counter: Iterator[int], on_progress: Callable[[int], None] | None) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=10) as client:
            while (i := next(counter)) < self.total:
                event = self.tracks.next_event()
                answer = self._post(client, headers, event, i)
                with self._lock:
                    self.accepted[(event["source"], event["id"])] = answer
                    self.sent += 1
                    done = self.sent
                if on_progress is not None:
                    on_progress(done)

    def _post(self, client: httpx.Client, headers: dict[str, str], event: dict[str, Any],
              i: int) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        for attempt in itertools.count():
            node = self.nodes[(i + attempt) % len(self.nodes)]  # round-robin, next on failure
            try:
                r = client.post(node.base + "/api/v1/events", json=event, headers=headers)
                if r.status_code == 202:
                    result: dict[str, Any] = r.json()["accepted"][0]
                    return result
                assert r.status_code >= 500, (r.status_code, r.text)
            except httpx.TransportError:
                pass
            with self._lock:
                self.retries += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"event {event['id']} was never accepted")
            time.sleep(0.02)
        raise AssertionError("unreachable")


class SSEWatcher(threading.Thread):
    """An SSE client from seq 1 on: resumes with `Last-Event-ID` when its connection drops,
    moving on to the next of `bases` when the node it used is gone."""

    def __init__(self, bases: list[str], name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.bases = bases
        self.index = 0
        self.last = 0
        self.envelopes: list[dict[str, Any]] = []
        self.resumes: list[tuple[str, int]] = []  # (node, Last-Event-ID) of each reconnection
        self.halt = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        first = True
        while not self.halt.is_set():
            base = self.bases[self.index % len(self.bases)]
            try:
                with httpx.stream("GET", base + "/api/v1/stream",
                                  headers={"Last-Event-ID": str(self.last)},
                                  timeout=httpx.Timeout(5.0, read=5.0)) as r:
                    if r.status_code != 200:
                        raise httpx.TransportError(f"HTTP {r.status_code}")
                    if not first:
                        self.resumes.append((base, self.last))
                    first = False
                    self.connected.set()
                    self._read(r)
            except httpx.TransportError:
                if self.halt.is_set():
                    return
                with contextlib.suppress(httpx.TransportError):
                    httpx.get(base + "/healthz", timeout=0.5).raise_for_status()
                    time.sleep(0.05)  # the node is there: try it again
                    continue
                self.index += 1  # the node is gone: resume on the next one
                time.sleep(0.05)

    def _read(self, r: httpx.Response) -> None:
        seq: int | None = None
        data: str | None = None
        for line in r.iter_lines():
            if self.halt.is_set():
                return
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and seq is not None and data is not None:
                self.envelopes.append(json.loads(data))
                self.last = seq
                seq = data = None
