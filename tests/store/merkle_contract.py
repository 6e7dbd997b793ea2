"""What every log must do as Merkle storage, written once; each backend subclasses it.

Leaf hashes written with their entries, hashes caught up for entries written without one,
signed tree heads, and the `MerkleLog` that keeps the tree over them: a leader appending and
signing, a follower (another `MerkleLog` on the same store) extending its tree from the stored
hashes and taking up the leader's heads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.audit.test_merkle import ref_mth
from tocsin.audit import TreeHead, key_id, public_key_raw, verify_tree_head
from tocsin.audit.witness import cosign
from tocsin.errors import IntegrityError
from tocsin.store import EventLog
from tocsin.store.base import MAX_COSIGNATURES
from tocsin.store.leaves import entry_leaf_hash, leaf_input
from tocsin.store.merkle import MerkleLog

from .contract import event, put, transition

T0 = datetime(2026, 11, 25, 1, tzinfo=UTC)


def rows(n: int, first: int = 1) -> list:  # type: ignore[type-arg]
    """`n` entries from seq `first`: an event, then transitions it caused."""
    out = [event(first, f"e{first}")]
    out += [transition(seq, first) for seq in range(first + 1, first + n)]
    return out


class MerkleContract(ABC):
    """Behaviour shared by every backend's Merkle storage."""

    @abstractmethod
    def create_log(self) -> EventLog:
        """A fresh, empty log."""

    def open_again(self, log: EventLog) -> EventLog:
        """Another handle on the same store (another node, or a restart); the same object for
        a store that lives in one process's memory."""
        return log

    @pytest.fixture()
    def log(self) -> Iterator[EventLog]:
        log = self.create_log()
        try:
            yield log
        finally:
            log.close()

    def test_leaf_hashes_are_stored_with_their_entries(self, log: EventLog) -> None:
        assert list(log.leaf_hashes()) == [] and log.leaf_count() == 0
        batch = rows(3)
        put(log, batch)
        stored = list(log.leaf_hashes())
        assert stored == [(e.seq, entry_leaf_hash(e)) for e in batch]
        assert list(log.leaf_hashes(2, 2)) == stored[1:2]
        assert list(log.leaf_hashes(3)) == stored[2:]
        assert log.leaf_count() == 3

    def test_hashes_of_a_failed_append_are_not_kept(self, log: EventLog) -> None:
        put(log, rows(2))
        with pytest.raises(IntegrityError):
            put(log, [*rows(1, 3), event(4, "e1")])  # e1 again: the whole batch fails
        assert log.leaf_count() == 2 and [s for s, _ in log.leaf_hashes()] == [1, 2]

    def test_catching_up_keeps_what_is_stored(self, log: EventLog) -> None:
        put(log, rows(2))
        log.add_leaf_hashes([(1, b"\x01" * 32), (3, b"\x03" * 32)])
        got = dict(log.leaf_hashes())
        assert got[1] == entry_leaf_hash(rows(2)[0]) and got[3] == b"\x03" * 32
        log.add_leaf_hashes([])

    def test_heads_are_kept_oldest_first(self, log: EventLog) -> None:
        assert log.heads() == [] and log.latest_head() is None
        heads = [TreeHead(n, f"2026-11-25T01:00:0{n}.000Z", bytes([n]) * 32, bytes([n]) * 64)
                 for n in (0, 2, 5)]
        for h in heads:
            log.add_head(h, "kid")
        assert log.heads() == heads
        assert log.heads(since=heads[0].timestamp) == heads[1:]
        assert log.heads(limit=2) == heads[:2]
        assert log.latest_head() == heads[-1]
        assert log.latest_head(max_size=4) == heads[1]
        assert log.latest_head(max_size=0) == heads[0]

    def test_cosignatures_are_kept_once_per_witness_and_bounded_per_tree(
        self, log: EventLog
    ) -> None:
        log_kid = key_id(public_key_raw(Ed25519PrivateKey.generate()))
        root, other_root = b"\x01" * 32, b"\x02" * 32
        witnesses = [Ed25519PrivateKey.generate() for _ in range(MAX_COSIGNATURES + 1)]
        sigs = [cosign(w, log_kid, 7, root, 1_800_000_000 + i) for i, w in enumerate(witnesses)]
        assert log.cosignatures(7, root) == []
        assert log.add_cosignature(7, root, sigs[0]) == "added"
        assert log.add_cosignature(7, root, sigs[0]) == "known"
        later = cosign(witnesses[0], log_kid, 7, root, 1_900_000_000)
        assert log.add_cosignature(7, root, later) == "known"  # the first one posted stays
        for sig in sigs[1:MAX_COSIGNATURES]:
            assert log.add_cosignature(7, root, sig) == "added"
        assert log.add_cosignature(7, root, sigs[-1]) == "full"
        kept = log.cosignatures(7, root)
        assert kept == sigs[:MAX_COSIGNATURES]  # oldest first
        assert log.cosignatures(7, other_root) == [] and log.cosignatures(8, root) == []
        assert self.open_again(log).cosignatures(7, root) == kept

    def test_the_tree_over_the_log(self, log: EventLog) -> None:
        merkle = MerkleLog(log)
        assert merkle.load() == 0
        batch = rows(5)
        merkle.append(batch[:2])
        merkle.append(batch[2:])
        assert merkle.size == 5
        assert merkle.tree.root() == ref_mth([leaf_input(e, merkle.times_from) for e in batch])
        with pytest.raises(IntegrityError):
            merkle.append(rows(1, 9))
        assert log.max_seq() == 5

    def test_a_leader_signs_and_a_follower_follows(self, log: EventLog) -> None:
        key = Ed25519PrivateKey.generate()
        leader = MerkleLog(log)
        leader.load()
        first = leader.sign(key, T0)
        assert first is not None and first.tree_size == 0
        assert leader.sign(key, T0 + timedelta(seconds=1)) is None  # nothing new to sign
        other = self.open_again(log)
        follower = MerkleLog(other)
        follower.load()
        batch = rows(3)
        leader.append(batch)
        head = leader.sign(key, T0 - timedelta(hours=1))  # the wall clock stepped back
        assert head is not None and head.tree_size == 3 and head.timestamp == first.timestamp
        assert verify_tree_head(public_key_raw(key), head)
        assert follower.refresh() == first  # its tree is still empty: the newest it covers
        follower.follow(list(other.read(1, 3)))
        assert follower.refresh() == head
        assert follower.tree.root_at(3) == leader.tree.root_at(3)
        assert follower.heads() == [first, head]
        restarted = MerkleLog(self.open_again(log))
        assert restarted.load() == 3 and restarted.latest == head

    def test_load_catches_up_hashes_and_refuses_a_log_shorter_than_its_heads(
        self, log: EventLog
    ) -> None:
        merkle = MerkleLog(log)
        merkle.load()
        merkle.append(rows(2))
        key = Ed25519PrivateKey.generate()
        head = merkle.sign(key, T0)
        assert head is not None
        log.add_head(TreeHead(9, head.timestamp, head.root_hash, head.signature), "kid")
        with pytest.raises(IntegrityError, match="signed tree head covers 9"):
            MerkleLog(log).load()

    def test_load_from_a_frontier_reads_only_the_hashes_after_it(self, log: EventLog) -> None:
        merkle = MerkleLog(log)
        merkle.load()
        merkle.append(rows(11))
        frontier = merkle.frontier()
        merkle.append(rows(6, 12))
        again = MerkleLog(self.open_again(log))
        assert again.load(frontier=frontier) == 17
        assert again.filled.wait(10) and again.fill_error is None
        assert again.tree.missing == 0
        for size in range(18):
            assert again.root_at(size) == merkle.tree.root_at(size)
        assert again.inclusion_proof(2, 17) == merkle.tree.inclusion_proof(2, 17)
        assert again.consistency_proof(5, 17) == merkle.tree.consistency_proof(5, 17)
        again.close()

    def test_a_frontier_the_stored_hashes_do_not_give_is_caught(self, log: EventLog) -> None:
        merkle = MerkleLog(log)
        merkle.load()
        merkle.append(rows(13))
        good = merkle.frontier()
        bad = type(good)(good.size, (*good.nodes[:-1], bytes(32)))
        again = MerkleLog(self.open_again(log))
        again.load(frontier=bad)
        assert again.filled.wait(10)
        assert again.fill_error is not None and "tocsin verify" in again.fill_error
        with pytest.raises(IntegrityError, match="do not give"):
            again.inclusion_proof(0, 13)
        # with a signed head at the frontier's size, the load itself refuses to start from it
        key = Ed25519PrivateKey.generate()
        merkle.sign(key, T0)
        checked = MerkleLog(self.open_again(log))
        checked.load(frontier=bad)
        assert checked.tree.missing == 0 and checked.tree.root() == merkle.tree.root()
        # and a frontier past the log's end is not used at all
        past = MerkleLog(self.open_again(log))
        past.load(frontier=type(good)(14, (bytes(32), bytes(32))))
        assert past.tree.missing == 0 and past.tree.root() == merkle.tree.root()
        for m in (again, checked, past):
            m.close()
