"""A `tocsin serve` process to kill, a sensor that retries until `202`, and the log checks.

Everything polls with deadlines; nothing sleeps for a fixed time to let something happen.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests import servers
from tests.servers import eventually, free_port, run_cli
from tocsin.model import format_time
from tocsin.store import open_log

__all__ = [
    "Server", "Sensor", "check_log", "create_key", "eventually", "free_port", "run_cli",
    "stream_of_events",
]

# Drones come in from the east and north-east and fly west; operators raise and clear.
STARTS = [(50.3, 36.9), (49.9, 37.5), (51.3, 34.8), (48.6, 37.6), (47.4, 36.4), (46.8, 33.5)]
RAIONS = ["UA63080000000032022", "UA63140000000096278", "UA59080000000057897"]


def create_key(data_dir: Path, role: str = "admin", name: str = "crash") -> str:
    return servers.create_key(role, "--data-dir", str(data_dir), name=name)


class Server:
    """One `python -m tocsin serve` on a data dir and a fixed port, restartable."""

    def __init__(self, data_dir: Path, port: int | None = None, *,
                 log_path: Path | None = None, **env: str) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {"TOCSIN_RATE_LIMIT": "1000000", "TOCSIN_RATE_BURST": "1000000", **env}
        self.log_path = log_path or data_dir.parent / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> Server:
        with self.log_path.open("ab") as out:
            out.write(f"\n----- start {self.starts}\n".encode())
        self.proc = servers.start_serve(
            ["--data-dir", str(self.data_dir), "--port", str(self.port)], self.log_path,
            env=self.env, append=True)
        self.starts += 1
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        assert self.proc is not None
        servers.wait_ready(self.proc, self.base, self.output, timeout=timeout, http_timeout=2)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye."""
        if self.proc is not None:
            servers.kill(self.proc, 30)

    def stop(self) -> int:
        """SIGTERM and wait (SIGKILL after a minute); the exit code."""
        return servers.stop(self.proc, 60) if self.proc is not None else 0


def _stamp(offset_s: float = -0.2) -> str:
    return format_time(datetime.now(UTC) + timedelta(seconds=offset_s))


def stream_of_events(n: int, seed: int, tag: str = "c") -> list[dict[str, Any]]:
    """`n` event templates (times are filled in when sent): drones flying west, some ending,
    impacts, and operator raise/clear pairs."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    live: dict[str, tuple[float, float, int]] = {}
    k = 0
    while len(out) < n:
        roll = rng.random()
        if roll < 0.02:
            action = "raise" if rng.random() < 0.5 else "clear"
            out.append({"type": "operator_alert", "regions": [rng.choice(RAIONS)],
                        "alert_type": "air_raid", "action": action, "operator": "duty"})
        elif roll < 0.05 and live:
            track = rng.choice(sorted(live))
            del live[track]
            out.append({"type": "track_end", "track": track,
                        "reason": rng.choice(["intercepted", "lost", "impact"])})
        elif roll < 0.06:
            lat, lon = rng.choice(STARTS)
            out.append({"type": "impact", "kind": "explosion",
                        "position": {"lat": lat - 0.3, "lon": lon - 0.5}})
        else:
            if len(live) < 40 and (not live or rng.random() < 0.05):
                lat, lon = rng.choice(STARTS)
                live[f"{tag}T{k}"] = (lat + rng.uniform(-0.2, 0.2), lon, 0)
                k += 1
            track = rng.choice(sorted(live))
            lat, lon, step = live[track]
            live[track] = (lat, lon, step + 1)
            out.append({"type": "detection", "track": track, "object": "drone",
                        "weapon": "shahed-136", "heading_deg": 265,
                        "position": {"lat": round(lat, 4), "lon": round(lon - step * 0.004, 4)}})
    for i, ev in enumerate(out):
        ev["id"] = f"{tag}-{i}"
        ev["source"] = f"sensor-{i % 3}"
    return out


@dataclass
class Sensor:
    """Sends events as a sensor does: a batch is re-sent until it gets `202` (never dropped).

    `acked` maps (source, id) to the seq the server acknowledged; `unsure` holds events whose
    request failed without an answer (they may or may not be logged until re-sent).
    """

    base: str
    key: str
    acked: dict[tuple[str, str], int] = field(default_factory=dict)
    duplicates: int = 0
    failures: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    client: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self.client is None:
            self.client = httpx.Client(base_url=self.base, timeout=30,
                                       headers={"Authorization": f"Bearer {self.key}"})
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def send(self, batch: list[dict[str, Any]], *, deadline_s: float = 120.0,
             on_failure: Callable[[], None] | None = None, as_is: bool = False) -> None:
        """POST `batch` until a `202`, stamped now (a real sensor re-sends what it saw, and the
        server refuses times far in the future); `as_is` keeps the times a batch was first
        sent with, as a sensor re-sending a batch whose answer it never had must (a 503 may
        come after the bus took the batch: the same body is then a duplicate, another a 409)."""
        deadline = time.monotonic() + deadline_s
        sent: list[dict[str, Any]] | None = batch if as_is else None
        while True:
            if sent is None:
                sent = [{**ev, "time": _stamp()} for ev in batch]
            try:
                r = self._client().post("/api/v1/events", json=sent)
            except httpx.TransportError:
                r = None
                self.close()  # a fresh connection next time
            if r is not None:
                self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
            if r is not None and r.status_code == 202:
                for item in r.json()["accepted"]:
                    ev = next(e for e in sent if e["id"] == item["id"])
                    self.acked[(ev["source"], ev["id"])] = item["seq"]
                    self.duplicates += bool(item["duplicate"])
                return
            if r is not None and r.status_code not in (429, 500, 502, 503):
                raise AssertionError(f"unexpected {r.status_code}: {r.text}")
            self.failures += 1
            if on_failure is not None:
                on_failure()
            if time.monotonic() > deadline:
                raise AssertionError(f"no 202 for a batch within {deadline_s} s "
                                     f"(last: {None if r is None else r.status_code})")
            time.sleep(0.05)


def check_log(data_dir: Path, acked: Iterable[tuple[tuple[str, str], int]]) -> dict[str, int]:
    """Every acknowledged event is logged once at its seq, transitions follow their events,
    and no region's alert is started twice or ended twice in a row; some counts."""
    events: dict[tuple[str, str], int] = {}
    transitions = 0
    state: dict[tuple[str, str], str] = {}
    last_event = 0
    with open_log(data_dir) as log:
        expected = 1
        for entry in log.read():
            assert entry.seq == expected, f"gap in the log at seq {expected}"
            expected += 1
            if entry.kind == "event":
                key = (str(entry.source), str(entry.event_id))
                assert key not in events, f"event {key} logged twice"
                events[key] = entry.seq
                last_event = entry.seq
                continue
            transitions += 1
            t = entry.obj()
            assert t["cause_seq"] == last_event, (
                f"transition {entry.seq} is not right after its event {t['cause_seq']}")
            if t["type"] not in ("alert_started", "alert_updated", "alert_ended"):
                continue
            slot = (t["region"], t["alert_type"])
            before = state.get(slot, "alert_ended")
            if t["type"] == "alert_started":
                assert before == "alert_ended", f"{slot} started twice (seq {entry.seq})"
            else:
                assert before != "alert_ended", f"{slot}: {t['type']} while not under alert " \
                                                f"(seq {entry.seq})"
            state[slot] = t["type"]
    for key, seq in acked:
        assert key in events, f"event {key} got a 202 but is not in the log"
        assert events[key] == seq, f"event {key} acknowledged at seq {seq}, logged at " \
                                   f"{events[key]}"
    return {"events": len(events), "transitions": transitions}
