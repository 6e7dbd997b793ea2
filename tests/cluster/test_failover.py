"""Three `tocsin serve` nodes on one PostgreSQL and one NATS; kill -9 one of them mid-stream.

Detections are posted round-robin across the nodes (a sensor retries on the next node until it
gets a `202`); at 40 % the leader (or, in the second run, a follower) is killed with SIGKILL.
Afterwards:

- every accepted event is in the log exactly once, and none was refused;
- the log's transitions are byte-identical to `tocsin simulate` of the log's events, in order;
- the log verifies as an outsider checks it (`tocsin verify --url … --full`);
- SSE clients connected to the surviving nodes (resuming with `Last-Event-ID` if dropped) saw
  every transition exactly once, and so did one that was connected to the killed node and
  resumed on another;
- the JetStream transitions stream holds every transition once, in order;
- the killed node, restarted, catches up as a follower.

2,000 events by default (`TOCSIN_CLUSTER_EVENTS` to change), 10,000 with `TOCSIN_LONG=1`.
`TOCSIN_CLUSTER_REGIONS` picks the region set (default `ua-raions`). The measured takeover times
are printed (run with `-s` to see them) and written to `cluster-failover.json` in the test's
tmp directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import (
    Cluster,
    Node,
    Poster,
    SSEWatcher,
    Tracks,
    eventually,
    fresh_cluster,
)
from tocsin.model import parse_time

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.serial]

LONG = os.environ.get("TOCSIN_LONG") == "1"
EVENTS = 10_000 if LONG else int(os.environ.get("TOCSIN_CLUSTER_EVENTS", "2000"))
REGIONS = os.environ.get("TOCSIN_CLUSTER_REGIONS", "ua-raions")
TRANSITION_FIELDS_ADDED = {"cause_time", "decided_at", "log_index", "published_at", "mode"}


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with fresh_cluster(tmp_path, REGIONS) as c:
        yield c


class Takeover(threading.Thread):
    """After `kill_at` is set: when a survivor first says it leads, and when the committed
    stream position first moves."""

    def __init__(self, survivors: list[Node]) -> None:
        super().__init__(daemon=True)
        self.survivors = survivors
        self.killed_at: float | None = None
        self.killed_wall: float | None = None
        self.position_at_kill: int | None = None
        self.elected_s: float | None = None
        self.resumed_s: float | None = None
        self.new_leader: str | None = None
        self.go = threading.Event()

    def run(self) -> None:
        self.go.wait()
        assert self.killed_at is not None
        deadline = self.killed_at + 30
        while time.monotonic() < deadline and (self.elected_s is None or self.resumed_s is None):
            for n in self.survivors:
                st = n.status()
                if st is None:
                    continue
                now = time.monotonic() - self.killed_at
                if self.elected_s is None and st["is_leader"]:
                    self.elected_s, self.new_leader = now, st["node"]
                position = st["stream"]["committed_seq"]
                if self.resumed_s is None and self.position_at_kill is not None and \
                        position > self.position_at_kill:
                    self.resumed_s = now
            time.sleep(0.005)


def _run(cluster: Cluster, tmp_path: Path, victim_role: str) -> dict[str, Any]:
    nodes = cluster.add(3)
    cluster.start(nodes)
    leader = eventually(cluster.leader, "a leader")
    victim = leader if victim_role == "leader" else next(n for n in nodes if n is not leader)
    survivors = [n for n in nodes if n is not victim]
    key = cluster.create_key("sensor")

    watchers = [SSEWatcher([n.base], f"sse-{n.name}") for n in survivors]
    # one client on the victim, which must resume on a survivor after the kill
    watchers.append(SSEWatcher([victim.base] + [n.base for n in survivors], "sse-moving"))
    for w in watchers:
        w.start()
    for w in watchers:
        assert w.connected.wait(30), f"{w.name} never connected"

    takeover = Takeover(survivors)
    takeover.start()
    poster = Poster(nodes, key, Tracks(), EVENTS)
    kill_at = int(EVENTS * 0.4)
    killed = threading.Event()

    def progress(done: int) -> None:
        if done >= kill_at and not killed.is_set():
            killed.set()
            st = victim.status()
            takeover.position_at_kill = st["stream"]["committed_seq"] if st else 0
            takeover.killed_at = time.monotonic()
            takeover.killed_wall = time.time()
            victim.kill()
            takeover.go.set()

    started = time.monotonic()
    poster.run(progress)
    post_s = time.monotonic() - started
    assert killed.is_set() and not victim.alive
    assert len(poster.accepted) == EVENTS

    # let the leader drain the stream, then fix a prefix of the log to check
    def drained() -> bool:
        st = cluster.leader(survivors)
        if st is None:
            return False
        s = st.status()
        return s is not None and s["stream"]["pending"] == 0
    eventually(drained, "the events stream to be drained", 300, every=0.2)
    top = cluster.sql("SELECT MAX(seq) FROM log")[0][0]
    rows = cluster.sql("SELECT seq, kind, body, source, event_id FROM log WHERE seq <= %s "
                       "ORDER BY seq", (top,))
    assert [r[0] for r in rows] == list(range(1, top + 1))

    # every accepted event exactly once (the unique index allows no second), none refused
    logged = {(r[3], r[4]) for r in rows if r[1] == "event"}
    missing = set(poster.accepted) - logged
    assert not missing, f"{len(missing)} accepted events are not in the log: {sorted(missing)[:5]}"
    assert cluster.sql("SELECT COUNT(*) FROM rejected")[0][0] == 0
    events_logged = sum(1 for r in rows if r[1] == "event" and r[3] != "tocsin")
    assert events_logged == EVENTS

    # byte-identical to a single-node simulation of the same ordered events
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(r[2] + "\n" for r in rows if r[1] == "event"))
    out = tmp_path / "simulated.jsonl"
    done = cluster.tocsin("simulate", str(events_file), "--regions", REGIONS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    logged_transitions = [r[2] for r in rows if r[1] == "transition"]
    simulated = out.read_text().splitlines()
    assert simulated[:len(logged_transitions)] == logged_transitions
    # the drones did raise alerts (transitions are material-only: starts, ends and severity
    # changes, not one update per drone per region)
    assert sum('"alert_started"' in t for t in logged_transitions) >= 20

    # the Merkle log verifies, as an outsider checks it, on a surviving node
    eventually(lambda: (survivors[0].status() or {}).get("log_seq", 0) >= top, "catch-up")
    head_at_least = eventually(
        lambda: _head_size(cluster, top), "a signed tree head covering the prefix", 30)
    done = cluster.tocsin("verify", "--url", survivors[0].base, "--full",
                          "--state", str(tmp_path / "verify-state.json"))
    assert done.returncode == 0, done.stdout + done.stderr

    # SSE clients saw every transition of the prefix exactly once, as logged
    wanted = {r[0]: json.loads(r[2]) for r in rows if r[1] == "transition"}
    last_wanted = max(wanted)
    for w in watchers:
        eventually(lambda w=w: w.last >= last_wanted, f"{w.name} to reach seq {last_wanted}", 120)
        w.halt.set()
    for w in watchers:
        got = [e for e in w.envelopes if e["seq"] <= top]
        seqs = [e["seq"] for e in got]
        assert len(seqs) == len(set(seqs)), f"{w.name} saw a transition twice"
        assert seqs == sorted(wanted), f"{w.name} missed {sorted(set(wanted) - set(seqs))[:5]}"
        for e in got:
            assert {k: v for k, v in e.items() if k not in TRANSITION_FIELDS_ADDED} \
                == wanted[e["seq"]]
    moving = watchers[-1]
    assert moving.resumes and moving.resumes[0][0] != victim.base

    # the transitions stream: each transition once, in log order
    published = asyncio.run(cluster.transition_stream())
    assert len(published) == len(set(published)), "a transition was published twice"
    assert [s for s in published if s <= top] == sorted(wanted)

    # when the new leader took the lock (its epoch's start, by PostgreSQL's clock) and first
    # committed, counted from the kill
    lead = (cluster.leader(survivors) or survivors[0]).status() or {}
    assert takeover.killed_wall is not None
    since: float | None = parse_time(lead["leader_since"]).timestamp() - takeover.killed_wall
    first_commit = None
    if victim_role == "leader" and since is not None and lead.get("first_commit_s") is not None:
        first_commit = since + lead["first_commit_s"]
    if victim_role != "leader":
        since = None  # the leader never changed: nothing to take over
    size = cluster.sql("SELECT pg_total_relation_size('log') + "
                       "pg_total_relation_size('merkle_leaves')")[0][0]

    # the killed node comes back as a follower and catches up
    victim.start()
    victim.wait_ready()
    st = eventually(lambda: (s := victim.status()) and s["log_seq"] >= top and s, "rejoin", 120)
    assert st["role"] == "follower" and not st["is_leader"]

    result = {
        "events": EVENTS, "regions": REGIONS, "killed": victim_role, "victim": victim.name,
        "kill_after_events": kill_at, "post_seconds": round(post_s, 2),
        "events_per_second": round(EVENTS / post_s, 1), "retries": poster.retries,
        "log_entries": top, "transitions": len(wanted),
        "new_leader": lead.get("node"), "epoch": lead.get("epoch"),
        "lock_taken_after_kill_s": None if since is None else round(since, 3),
        "consuming_after_kill_s": (None if since is None
                                   else round(since + (lead.get("takeover_s") or 0), 3)),
        "first_commit_after_kill_s": None if first_commit is None else round(first_commit, 3),
        "log_bytes_per_entry": round(size / top),
        "clients_saw_new_leader_after_s": takeover.elected_s,
        "clients_saw_position_move_after_s": takeover.resumed_s,
        "sse_resumes": {w.name: w.resumes for w in watchers},
        "head_size": head_at_least,
    }
    print(json.dumps(result, indent=2))
    (tmp_path / "cluster-failover.json").write_text(json.dumps(result, indent=2))
    return result


def _head_size(cluster: Cluster, top: int) -> int | None:
    size = cluster.sql("SELECT COALESCE(MAX(tree_size), 0) FROM sths")[0][0]
    return int(size) if size >= top else None


def test_kill_the_leader_mid_stream(cluster: Cluster, tmp_path: Path) -> None:
    result = _run(cluster, tmp_path, "leader")
    assert result["new_leader"] != result["victim"] and result["epoch"] == 2
    assert result["lock_taken_after_kill_s"] is not None
    assert result["lock_taken_after_kill_s"] < 2.0
    assert result["first_commit_after_kill_s"] is not None
    assert result["first_commit_after_kill_s"] < 2.0


def test_kill_a_follower_mid_stream(cluster: Cluster, tmp_path: Path) -> None:
    result = _run(cluster, tmp_path, "follower")
    assert result["epoch"] == 1  # the leader never changed
