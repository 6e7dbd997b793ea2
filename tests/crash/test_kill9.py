"""`kill -9` of `tocsin serve` at random moments during an ingest.

Two sensors POST batches of 1-20 events while the test kills the server with SIGKILL at random
moments (so kills land mid-request, mid-commit, mid-fsync and mid-recovery) and starts it again
on the same data directory. A sensor re-sends a batch until it gets `202`, as a real one would.
Afterwards:

- every event that got a `202` is in the log, once, at the seq it was acknowledged with;
- transitions follow their event and no alert is started or ended twice (nothing duplicated);
- `tocsin replay --data-dir` reproduces every logged transition;
- `tocsin verify --data-dir` checks the Merkle tree and every signed tree head.

The CI form kills 10 times during ~5,000 events (about a minute). The long form, 100 kills
during 100,000 events, runs with `TOCSIN_LONG=1 pytest tests/crash -k long`;
`TOCSIN_CRASH_EVENTS` and `TOCSIN_CRASH_KILLS` size it (see docs/testing.md).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from tests.crash.helpers import Sensor, Server, check_log, create_key, run_cli, stream_of_events

pytestmark = pytest.mark.serial

LONG = os.environ.get("TOCSIN_LONG") == "1"


def crash_run(tmp_path: Path, n_events: int, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    data = tmp_path / "data"
    key = create_key(data)
    server = Server(data).start()
    started = time.monotonic()
    events = stream_of_events(n_events, seed)
    # two sensors, each with its own share of the events, in order
    shares = [events[0::2], events[1::2]]
    sensors = [Sensor(server.base, key) for _ in shares]
    progress = [0, 0]
    errors: list[BaseException] = []
    stop = threading.Event()

    def feed(k: int) -> None:
        local = random.Random(seed * 10 + k)
        todo = shares[k]
        i = 0
        try:
            while i < len(todo) and not stop.is_set():
                size = local.choice((1, 2, 5, 10, 20, 40))
                batch = todo[i:i + size]
                sensors[k].send(batch, deadline_s=180)
                i += len(batch)
                progress[k] = i
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            sensors[k].close()

    threads = [threading.Thread(target=feed, args=(k,), daemon=True) for k in range(2)]
    for t in threads:
        t.start()
    try:
        # kill points spread over the run, each at a random moment
        marks = sorted(rng.sample(range(n_events // 20, n_events - n_events // 20), kills))
        done_kills = 0
        deadline = time.monotonic() + max(480.0, n_events * 0.05)
        while any(t.is_alive() for t in threads):
            assert time.monotonic() < deadline, f"ingest stalled at {progress} of {n_events}"
            if errors:
                raise errors[0]
            if done_kills < kills and sum(progress) >= marks[done_kills]:
                time.sleep(rng.uniform(0.0, 0.05))  # somewhere inside a request
                server.kill()
                done_kills += 1
                # now and then, kill it again while it is still recovering
                if rng.random() < 0.2:
                    server.start(wait=False)
                    time.sleep(rng.uniform(0.3, 1.5))
                    server.kill()
                server.start()
                continue
            time.sleep(0.01)
        if errors:
            raise errors[0]
        assert done_kills == kills
        assert server.stop() == 0
    finally:
        stop.set()
        server.kill()
    acked = [item for s in sensors for item in s.acked.items()]
    assert len(acked) == n_events
    counts = check_log(data, acked)
    assert counts["events"] >= n_events  # plus the server's own ticks
    replay = run_cli("replay", "--data-dir", str(data))
    assert replay.returncode == 0, replay.stderr
    verify = run_cli("verify", "--data-dir", str(data))
    assert verify.returncode == 0, verify.stderr + verify.stdout
    failures = sum(s.failures for s in sensors)
    took = time.monotonic() - started
    print(f"{took:.0f} s: {kills} kills, {n_events} events, {counts['transitions']} transitions, "
          f"{failures} failed requests re-sent, {sum(s.duplicates for s in sensors)} "
          "re-sent events found already logged")


def test_kill9_during_ingest(tmp_path: Path) -> None:
    crash_run(tmp_path, n_events=5000, kills=10, seed=int(os.environ.get("TOCSIN_SEED", "7")))


@pytest.mark.skipif(not LONG, reason="the long crash run: TOCSIN_LONG=1 (100 kills, 100,000 "
                                     "events, well over an hour)")
def test_kill9_during_ingest_long(tmp_path: Path) -> None:
    crash_run(tmp_path, n_events=int(os.environ.get("TOCSIN_CRASH_EVENTS", "100000")),
              kills=int(os.environ.get("TOCSIN_CRASH_KILLS", "100")),
              seed=int(os.environ.get("TOCSIN_SEED", "11")))
