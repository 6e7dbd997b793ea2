"""A tree started from its frontier: appends and roots at once, proofs once filled in."""

from __future__ import annotations

import hashlib
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.audit.merkle import MerkleTree, MissingNodes


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.integers(0, 80))
def test_from_the_frontier_the_tree_goes_on_as_the_whole_one(base: int, more: int) -> None:
    hashes = leaves(base + more)
    whole = MerkleTree.from_leaves(hashes)
    frontier = MerkleTree.from_leaves(hashes[:base]).frontier()
    assert len(frontier) == base.bit_count()
    tree = MerkleTree.from_frontier(base, frontier)
    assert tree.missing == base
    tree.extend(hashes[base:])
    for size in range(base, base + more + 1):
        assert tree.root_at(size) == whole.root_at(size)
    assert tree.frontier() == whole.frontier()
    tree.fill(b"".join(hashes[:base]))
    assert tree.missing == 0
    n = base + more
    for size in range(n + 1):
        assert tree.root_at(size) == whole.root_at(size)
    for index in range(0, n, 7):
        assert tree.inclusion_proof(index, n) == whole.inclusion_proof(index, n)
    for first in range(0, n + 1, 5):
        assert tree.consistency_proof(first, n) == whole.consistency_proof(first, n)


def test_older_nodes_are_missing_until_filled() -> None:
    hashes = leaves(100)
    tree = MerkleTree.from_frontier(64 + 32 + 2, MerkleTree.from_leaves(hashes[:98]).frontier())
    tree.extend(hashes[98:])
    tree.root()  # needs only the frontier and what came after it
    with pytest.raises(MissingNodes):
        tree.inclusion_proof(3, 100)
    with pytest.raises(MissingNodes):
        tree.root_at(50)
    tree.fill(b"".join(hashes[:98]))
    assert tree.inclusion_proof(3, 100) == MerkleTree.from_leaves(hashes).inclusion_proof(3, 100)


def test_leaves_that_do_not_give_the_frontier_are_refused() -> None:
    hashes = leaves(37)
    tree = MerkleTree.from_frontier(37, MerkleTree.from_leaves(hashes).frontier())
    wrong = list(hashes)
    wrong[5] = bytes(32)
    with pytest.raises(ValueError, match="frontier"):
        tree.fill(b"".join(wrong))
    assert tree.missing == 37
    with pytest.raises(ValueError):
        tree.fill(b"".join(hashes[:36]))
    with pytest.raises(ValueError):
        MerkleTree.from_frontier(37, tree.frontier()[:-1])


def test_filling_while_another_thread_appends() -> None:
    hashes = leaves(5000)
    base = 3001
    tree = MerkleTree.from_frontier(base, MerkleTree.from_leaves(hashes[:base]).frontier())
    filler = threading.Thread(target=tree.fill, args=(b"".join(hashes[:base]),))
    filler.start()
    tree.extend(hashes[base:])
    filler.join()
    whole = MerkleTree.from_leaves(hashes)
    assert tree.missing == 0
    assert tree.root() == whole.root()
    assert tree.consistency_proof(1234, 5000) == whole.consistency_proof(1234, 5000)
