"""Cluster nodes as real processes: what ingest answers, refusals made visible, one key and one
signing key for every node, the CLI against the shared store, and a paused leader fenced."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.harness import Cluster, Tracks, eventually, fresh_cluster
from tocsin.model import format_time

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.serial]


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with fresh_cluster(tmp_path, "ua-oblasts") as c:
        yield c


def post(base: str, key: str, body: Any) -> httpx.Response:
    return httpx.post(base + "/api/v1/events", json=body,
                      headers={"Authorization": f"Bearer {key}"}, timeout=10)


def status_of(base: str, source: str, event_id: str) -> dict[str, Any]:
    r = httpx.get(base + "/api/v1/cluster/event", params={"source": source, "id": event_id})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_ingest_and_refusals(cluster: Cluster) -> None:
    (node,) = cluster.add(1)
    cluster.start([node])
    key = cluster.create_key("sensor")  # `keys create --store` works against the cluster
    st = eventually(lambda: (s := node.status()) and s["is_leader"] and s, "the lead")
    assert st["node"] == "n1" and st["leader"] == "n1" and st["role"] == "leader"

    event = Tracks().next_event()
    r = post(node.base, key, event)
    assert r.status_code == 202, r.text
    (answer,) = r.json()["accepted"]
    assert answer["status"] == "queued" and answer["seq"] is None and answer["stream_seq"] >= 1
    logged = eventually(
        lambda: (s := status_of(node.base, event["source"], event["id"]))["status"] == "logged"
        and s, "the event to be logged", 30)

    again = post(node.base, key, event).json()["accepted"][0]  # found in the log: its seq
    assert again["duplicate"] is True and again["seq"] == logged["seq"]
    # the same id with another body, and a source the key may not use: refused at ingest
    r = post(node.base, key, {**event, "heading_deg": 1})
    assert r.status_code == 409 and r.json()["logged_digest"] != r.json()["submitted_digest"]
    r = post(node.base, key, {**Tracks().next_event(), "source": "radar-x"})
    assert r.status_code == 403 and "'radar-x'" in r.json()["detail"]

    future = {**Tracks().next_event(),
              "time": format_time(datetime.now(UTC) + timedelta(hours=2))}
    r = post(node.base, key, future)
    assert r.status_code == 202  # only the leader's clock can tell it is too far ahead
    refused = eventually(
        lambda: (s := status_of(node.base, future["source"], future["id"]))["status"]
        == "rejected" and s, "the refusal to be recorded", 30)
    assert refused["errors"][0]["field"] == "time" and refused["key"].startswith("sensor-")
    listed = httpx.get(node.base + "/api/v1/cluster/rejected").json()["rejected"]
    assert [x["id"] for x in listed] == [future["id"]]
    assert (node.status() or {})["rejected"] == 1

    bad = post(node.base, key, {**event, "id": "x", "position": {"lat": 91, "lon": 0}})
    assert bad.status_code == 422  # the shape is checked before the 202, on any node

    listing = cluster.tocsin("keys", "list", "--store", cluster.store)
    assert listing.returncode == 0 and "sensor" in listing.stdout
    key_id = listing.stdout.split()[0]
    assert cluster.tocsin("keys", "revoke", key_id, "--store", cluster.store).returncode == 0
    assert post(node.base, key, Tracks().next_event()).status_code == 401


def test_every_node_authenticates_and_signs_alike(cluster: Cluster) -> None:
    a, b = cluster.add(2)
    cluster.start([a, b])
    admin = cluster.create_key("admin")
    made = httpx.post(a.base + "/api/v1/keys",
                      json={"role": "sensor", "sources": [f"radar-{k}" for k in range(7)]},
                      headers={"Authorization": f"Bearer {admin}"})
    assert made.status_code == 201, made.text
    r = post(b.base, made.json()["key"], Tracks().next_event())  # a key made on a works on b
    assert r.status_code == 202, r.text
    keys = [httpx.get(n.base + "/api/v1/log/key").json() for n in (a, b)]
    assert keys[0] == keys[1]

    def heads_agree() -> bool:
        heads = [httpx.get(n.base + "/api/v1/log/sth") for n in (a, b)]
        return all(h.status_code == 200 for h in heads) and \
            heads[0].json()["tree_size"] > 0 and heads[0].json() == heads[1].json()
    eventually(heads_agree, "both nodes to serve the same signed tree head", 30)


def test_a_paused_leader_is_fenced(cluster: Cluster) -> None:
    """SIGSTOP the leader: its lock session falls silent and ends, the other node takes over;
    when the old leader resumes it cannot commit, steps down and follows."""
    a, b = cluster.add(2)
    cluster.start([a, b])
    key = cluster.create_key("sensor")
    old = eventually(cluster.leader, "a leader")
    new = b if old is a else a
    tracks = Tracks()
    first = [tracks.next_event() for _ in range(20)]
    for e in first:
        assert post(new.base, key, e).status_code == 202
    eventually(lambda: all(status_of(new.base, e["source"], e["id"])["status"] == "logged"
                           for e in first), "the first events to be logged", 30)

    old.signal(signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        eventually(lambda: (s := new.status()) and s["is_leader"], "the takeover", 30)
        took = time.monotonic() - stopped
        more = [tracks.next_event() for _ in range(20)]
        for e in more:
            assert post(new.base, key, e).status_code == 202
        eventually(lambda: all(status_of(new.base, e["source"], e["id"])["status"] == "logged"
                               for e in more), "events logged by the new leader", 30)
    finally:
        old.signal(signal.SIGCONT)
    st = eventually(lambda: (s := old.status()) and s["role"] == "follower" and s,
                    "the old leader to step down", 30)
    assert not st["is_leader"] and st["epoch"] == 2
    top = cluster.sql("SELECT MAX(seq) FROM log")[0][0]
    eventually(lambda: ((old.status() or {}).get("log_seq") or 0) >= top, "the old leader to "
               "follow the log", 30)
    out = old.output()
    assert "was deposed" in out or "stops leading" in out
    events = cluster.sql("SELECT COUNT(*) FROM log WHERE kind = 'event' AND source <> 'tocsin'")
    assert events[0][0] == 40  # nothing lost, nothing twice
    replayed = cluster.tocsin("replay", "--store", cluster.store)  # and the log replays exactly
    assert replayed.returncode == 0, replayed.stderr
    print(f"takeover from a paused leader: {took:.2f} s")
