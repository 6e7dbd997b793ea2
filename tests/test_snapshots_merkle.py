"""What a snapshot keeps of the Merkle tree, and what it must match to be loaded.

A restart from a snapshot starts the tree from the frontier the snapshot kept, so it is ready
without rehashing every leaf; the older nodes are filled in behind it, and until then proofs
that need them are answered 503, never wrongly. A snapshot without a frontier, or written by an
engine of another state layout, is not trusted for it: the tree is rebuilt, or the log replayed,
and the log says so.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import field, fields, make_dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import Api, FakeClock, running
from tests.test_snapshots import feed, raid, same, state_of
from tocsin.audit import MerkleTree
from tocsin.engine.core import Engine
from tocsin.snapshots import FORMAT, STATE_CLASSES, fingerprint
from tocsin.store.merkle import MerkleLog
from tocsin.threats.tracks import Track

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def node(tmp_path: Path, clock: FakeClock, events: int = 0) -> AsyncIterator[Api]:
    """A node on `tmp_path` (ticks out of the way), first fed a raid of `events` events."""
    async with running(tmp_path, clock, tick_s=3600) as api:
        if events:
            await feed(api.service, clock, raid(0, events))
        yield api


def whole_tree(log: Any) -> MerkleTree:
    return MerkleTree.from_leaves(h for _, h in log.leaf_hashes())


async def test_a_restart_starts_the_tree_from_the_snapshot_and_fills_it_in_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    async with node(tmp_path, clock, 25) as api:
        base = api.service.ledger.durable_seq
    # hold the filler back, to look at the node as it is before the older nodes are in
    release = threading.Event()
    fill = MerkleLog._fill

    def held(self: MerkleLog, tree: MerkleTree) -> None:
        release.wait(30)
        fill(self, tree)

    monkeypatch.setattr(MerkleLog, "_fill", held)
    async with node(tmp_path, clock) as api:
        svc = api.service
        assert svc.ready and svc.snapshots.last_seq == base
        assert svc.merkle.tree.missing == base  # started from the frontier, no leaf rehashed
        assert not svc.merkle.filled.is_set()
        await feed(svc, clock, raid(900, 3))  # appends go on
        assert svc.merkle.tree.root() == whole_tree(svc.log).root()
        head = await svc.sign_head()
        assert head is not None and head.root_hash == whole_tree(svc.log).root()
        reader = api.auth("reader")
        r = await api.client.get("/api/v1/log/proof/inclusion", params={"index": 3},
                                 headers=reader)
        assert r.status_code == 503, r.text  # not yet: never a wrong path
        r = await api.client.get("/api/v1/log/proof/consistency",
                                 params={"first": base}, headers=reader)
        assert r.status_code == 200, r.text  # needs nothing older than the frontier
        release.set()
        assert svc.merkle.filled.wait(30) and svc.merkle.fill_error is None
        assert svc.merkle.tree.missing == 0
        r = await api.client.get("/api/v1/log/proof/inclusion", params={"index": 3},
                                 headers=reader)
        assert r.status_code == 200, r.text
        whole = whole_tree(svc.log)
        for size in (1, base // 2, base, svc.merkle.size):
            assert svc.merkle.root_at(size) == whole.root_at(size)
            assert svc.merkle.consistency_proof(size // 3, size) == whole.consistency_proof(
                size // 3, size)


async def test_a_frontier_the_signed_head_does_not_confirm_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    async with node(tmp_path, clock, 10) as api:
        svc = api.service
        seq = svc.ledger.durable_seq
        models = svc.snapshots.capture(svc.read_models)
        layout = svc.snapshots.layout(svc.ledger.new_engine, svc.read_models)
        bad = svc.merkle.frontier()
        bad = type(bad)(bad.size, (bytes(32),) + bad.nodes[1:])
        # a snapshot whose tree is not the log's (a bug; without the key, the HMAC stops it)
        svc.snapshots.take(svc.ledger.engine, seq, models, bad, layout=layout)
        assert await svc.sign_head() is not None
        svc.ready_once = False  # no snapshot at the stop: that one is the newest
    with caplog.at_level(logging.ERROR, logger="tocsin"):
        async with node(tmp_path, clock) as api:
            svc = api.service
            assert svc.snapshots.last_seq == seq
            assert svc.merkle.tree.missing == 0  # rebuilt from every leaf hash instead
            assert svc.merkle.tree.root() == whole_tree(svc.log).root()
    assert "does not give the root of the signed head" in caplog.text


async def test_a_snapshot_without_a_frontier_rebuilds_the_tree_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    async with node(tmp_path, clock, 10) as api:
        svc = api.service
        models = svc.snapshots.capture(svc.read_models)
        layout = svc.snapshots.layout(svc.ledger.new_engine, svc.read_models)
        svc.snapshots.take(svc.ledger.engine, svc.ledger.durable_seq, models, None,
                           layout=layout)
        svc.ready_once = False
    with caplog.at_level(logging.WARNING, logger="tocsin"):
        async with node(tmp_path, clock) as api:
            assert api.service.snapshots.last_seq > 0
            assert api.service.merkle.tree.missing == 0
            assert api.service.merkle.tree.root() == whole_tree(api.service.log).root()
    assert "keeps no Merkle tree; rebuilding" in caplog.text


# --- the state layout -------------------------------------------------------------------------


class _Grown(Engine):
    """An engine whose state gained an attribute since the snapshot was written."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._new_table: dict[str, int] = {}


async def test_a_snapshot_of_another_state_layout_is_ignored_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    async with node(tmp_path, clock, 12) as api:
        want = state_of(api.service)
        total = api.service.ledger.durable_seq
    assert list((tmp_path / "snapshots").glob("*.pickle"))
    monkeypatch.setattr("tocsin.service.Engine", _Grown)
    with caplog.at_level(logging.WARNING, logger="tocsin"):
        async with node(tmp_path, clock) as api:
            svc = api.service
            assert isinstance(svc.ledger.engine, _Grown)
            assert svc.snapshots.last_seq == 0  # replayed from the start instead
            assert svc.ledger.durable_seq == total
            assert "_new_table" in vars(svc.ledger.engine)
            got = state_of(api.service)
    assert "another state layout" in caplog.text
    same(got.replace(",'_new_table':{}", ""), want)


def test_the_fingerprint_follows_the_state_layout(
    ua: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    models = {"m": type("M", (), {"SNAPSHOT_FIELDS": ("a", "b")})()}
    base = fingerprint(Engine(ua), models)
    assert fingerprint(Engine(ua), models) == base
    assert fingerprint(_Grown(ua), models) != base
    other = {"m": type("M", (), {"SNAPSHOT_FIELDS": ("a", "b", "c")})()}
    assert fingerprint(Engine(ua), other) != base

    # the real Track with one more field, under the same name
    grown = make_dataclass("Track", [(f.name, f.type, f) for f in fields(Track)]
                           + [("extra", int, field(default=0))], slots=True)
    grown.__module__, grown.__qualname__ = Track.__module__, Track.__qualname__
    monkeypatch.setattr("tocsin.snapshots.STATE_CLASSES",
                        tuple(grown if c is Track else c for c in STATE_CLASSES))
    assert fingerprint(Engine(ua), models) != base
    monkeypatch.undo()
    assert fingerprint(Engine(ua), models) == base
    monkeypatch.setattr("tocsin.snapshots.FORMAT", FORMAT + 1)
    assert fingerprint(Engine(ua), models) != base


async def test_a_restart_from_a_snapshot_feeds_the_outputs_only_the_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tocsin.service import Service

    clock = FakeClock()
    async with node(tmp_path, clock, 12) as api:
        in_force = dict(api.service.outputs["metrics"].in_force)
        total = api.service.ledger.durable_seq
    assert in_force
    fed: list[tuple[int, int]] = []
    rebuild = Service._rebuild_outputs

    def spy(self: Service, first: int, last: int) -> None:
        fed.append((first, last))
        rebuild(self, first, last)

    monkeypatch.setattr(Service, "_rebuild_outputs", spy)
    async with node(tmp_path, clock) as api:
        assert api.service.snapshots.last_seq == total
        # every output keeps its state in the snapshot or needs none from the log (streams,
        # webhooks): none is fed the log from seq 1 again, only from the last transition the
        # snapshot's models hold (the raid's last event decides a handful)
        assert all(first > total - 12 for first, _ in fed), fed
        assert api.service.outputs["metrics"].in_force == in_force


async def test_snapshots_are_unpickled_with_the_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc
    import pickle

    clock = FakeClock()
    async with node(tmp_path, clock, 4):
        pass  # a log, and the snapshot taken at the stop
    seen: list[bool] = []
    loads = pickle.loads

    def spying(data: bytes) -> object:
        seen.append(gc.isenabled())
        return loads(data)

    monkeypatch.setattr("tocsin.snapshots.pickle.loads", spying)
    async with node(tmp_path, clock) as api:
        assert api.service.snapshots.last_seq > 0
    assert seen and not any(seen)  # millions of containers, none of them garbage
    assert gc.isenabled()
