"""RFC 9162 Merkle tree: published vectors, an independent recursive reference, tampering."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# --- The reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 transcribed, recursive and slow. ---


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over data entries (not leaf hashes)."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:n])]
    return ref_path(m - k, d[k:n]) + [ref_mth(d[0:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[0:k], b) + [ref_mth(d[k:n])]
    return ref_subproof(m - k, d[k:n], False) + [ref_mth(d[0:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]), with the trivial sizes 0 and n given the empty proof."""
    if m in (0, len(d)):
        return []
    return ref_subproof(m, d, True)


# --- Published vectors (RFC 6962 test data as used by Certificate Transparency and trillian). ---

CT_DATA = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
# Root hashes for tree sizes 0..8.
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, path); the published vectors number leaves from 1, these from 0.
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (first, second, proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

SMALL = 70  # every size 1..SMALL and every index / size pair within it
LARGE = 3000  # hypothesis picks sizes up to this

DATA = [i.to_bytes(2, "big") + b"tocsin" for i in range(LARGE)]


@cache
def big_tree() -> MerkleTree:
    """One tree over all of DATA; smaller trees are its prefixes."""
    return MerkleTree.from_leaves(leaf_hash(d) for d in DATA)


def ct_tree() -> MerkleTree:
    """The tree over the published test leaves."""
    return MerkleTree.from_leaves(leaf_hash(d) for d in CT_DATA)


def unhex(items: Sequence[str]) -> list[bytes]:
    """Decode a list of hex strings."""
    return [bytes.fromhex(item) for item in items]


def flip(data: bytes, bit: int) -> bytes:
    """Return `data` with one bit inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- Hashing and the published vectors ---


def test_hashes_follow_the_rfc_prefixes() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"l" * 32, b"r" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def test_published_roots_for_every_size() -> None:
    tree = MerkleTree()
    assert tree.root().hex() == CT_ROOTS[0]
    for size, data in enumerate(CT_DATA, start=1):
        assert tree.append(leaf_hash(data)) == size - 1
        assert tree.size == len(tree) == size
        assert tree.root().hex() == CT_ROOTS[size]
    for size, root in enumerate(CT_ROOTS):
        assert tree.root_at(size).hex() == root


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    tree = ct_tree()
    assert tree.inclusion_proof(index, size) == unhex(path)
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(leaf_hash(CT_DATA[index]), index, size, unhex(path), root)


@pytest.mark.parametrize(("first", "second", "proof"), CT_CONSISTENCY)
def test_published_consistency_proofs(first: int, second: int, proof: list[str]) -> None:
    tree = ct_tree()
    assert tree.consistency_proof(first, second) == unhex(proof)
    first_root, second_root = bytes.fromhex(CT_ROOTS[first]), bytes.fromhex(CT_ROOTS[second])
    assert verify_consistency(first, second, first_root, second_root, unhex(proof))


def test_reference_agrees_with_the_published_vectors() -> None:
    # Guards the reference itself: everything below trusts it.
    for size, root in enumerate(CT_ROOTS):
        assert ref_mth(CT_DATA[:size]).hex() == root
    for index, size, path in CT_INCLUSION:
        assert ref_path(index, CT_DATA[:size]) == unhex(path)
    for first, second, proof in CT_CONSISTENCY:
        assert ref_proof(first, CT_DATA[:second]) == unhex(proof)


# --- Against the reference, exhaustively for small trees ---


def test_roots_match_the_reference_for_every_small_size() -> None:
    tree = big_tree()
    for size in range(SMALL + 1):
        assert tree.root_at(size) == ref_mth(DATA[:size]), size


def test_inclusion_proofs_match_the_reference_and_verify() -> None:
    tree = big_tree()
    for size in range(1, SMALL + 1):
        root = ref_mth(DATA[:size])
        for index in range(size):
            path = tree.inclusion_proof(index, size)
            assert path == ref_path(index, DATA[:size]), (index, size)
            assert verify_inclusion(leaf_hash(DATA[index]), index, size, path, root)


def test_consistency_proofs_match_the_reference_and_verify() -> None:
    tree = big_tree()
    roots = [ref_mth(DATA[:size]) for size in range(SMALL + 1)]
    for second in range(1, SMALL + 1):
        for first in range(second + 1):
            proof = tree.consistency_proof(first, second)
            assert proof == ref_proof(first, DATA[:second]), (first, second)
            assert verify_consistency(first, second, roots[first], roots[second], proof)


def test_appending_one_by_one_equals_building_at_once() -> None:
    tree = MerkleTree()
    for index, data in enumerate(DATA[:SMALL]):
        assert tree.append(leaf_hash(data)) == index
        assert tree.root() == big_tree().root_at(index + 1)
        assert tree.leaf(index) == leaf_hash(data)


# --- Against the reference, at random for larger trees ---


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=LARGE))
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    second = draw(st.integers(min_value=1, max_value=LARGE))
    return draw(st.integers(min_value=0, max_value=second)), second


@settings(max_examples=60, deadline=None, database=None)
@given(size_and_index())
def test_inclusion_at_random_larger_sizes(case: tuple[int, int]) -> None:
    size, index = case
    tree = big_tree()
    path = tree.inclusion_proof(index, size)
    assert path == ref_path(index, DATA[:size])
    assert tree.root_at(size) == ref_mth(DATA[:size])
    assert verify_inclusion(leaf_hash(DATA[index]), index, size, path, tree.root_at(size))


@settings(max_examples=60, deadline=None, database=None)
@given(two_sizes())
def test_consistency_at_random_larger_sizes(case: tuple[int, int]) -> None:
    first, second = case
    tree = big_tree()
    proof = tree.consistency_proof(first, second)
    assert proof == ref_proof(first, DATA[:second])
    assert verify_consistency(first, second, tree.root_at(first), tree.root_at(second), proof)


# --- Tampering: every changed bit, size, index or root is refused ---


def test_inclusion_tampering_is_refused() -> None:
    tree = big_tree()
    for size in range(1, SMALL + 1):
        root = tree.root_at(size)
        for index in range(size):
            leaf = tree.leaf(index)
            path = tree.inclusion_proof(index, size)
            for position, element in enumerate(path):
                for bit in (0, 131, 255):
                    bad = [*path[:position], flip(element, bit), *path[position + 1 :]]
                    assert not verify_inclusion(leaf, index, size, bad, root)
            assert not verify_inclusion(flip(leaf, 7), index, size, path, root)
            assert not verify_inclusion(leaf, index, size, path, flip(root, 200))
            assert not verify_inclusion(leaf, index + 1, size, path, root)
            assert not verify_inclusion(leaf, index - 1, size, path, root)
            assert not verify_inclusion(leaf, index, size * 2, path, root)
            if size > 1:
                assert not verify_inclusion(leaf, index, size // 2, path, root)
            assert not verify_inclusion(leaf, index, size, [*path, root], root)
            assert not verify_inclusion(leaf, index, size, [root, *path], root)
            if path:
                assert not verify_inclusion(leaf, index, size, path[:-1], root)


def test_consistency_tampering_is_refused() -> None:
    tree = big_tree()
    roots = [tree.root_at(size) for size in range(SMALL + 1)]
    for second in range(2, SMALL + 1):
        for first in range(1, second):
            proof = tree.consistency_proof(first, second)
            old, new = roots[first], roots[second]
            for position, element in enumerate(proof):
                bad = [*proof[:position], flip(element, 4), *proof[position + 1 :]]
                assert not verify_consistency(first, second, old, new, bad)
            assert not verify_consistency(first, second, flip(old, 9), new, proof)
            assert not verify_consistency(first, second, old, flip(new, 9), proof)
            assert not verify_consistency(first, second, new, old, proof)
            assert not verify_consistency(first, second, old, new, [])
            assert not verify_consistency(first, second, old, new, proof[:-1])
            assert not verify_consistency(first, second, old, new, [*proof, old])
            assert not verify_consistency(first, second, old, new, [proof[0], *proof])
            assert not verify_consistency(first + 1, second, old, new, proof)
            assert not verify_consistency(first - 1, second, old, new, proof)
            assert not verify_consistency(first ^ 2, second, old, new, proof)
            assert not verify_consistency(first, second * 2, old, new, proof)
            assert not verify_consistency(first, second // 2, old, new, proof)


def test_trivial_consistency_cases() -> None:
    root = big_tree().root_at(5)
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, root, [])
    assert not verify_consistency(0, 5, root, root, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, root, [root])
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, flip(root, 0), [])
    assert not verify_consistency(5, 5, root, root, [root])
    assert not verify_consistency(6, 5, root, root, [])
    assert not verify_consistency(-1, 5, root, root, [])


def test_malformed_inputs_do_not_verify() -> None:
    tree = big_tree()
    root = tree.root_at(8)
    path = tree.inclusion_proof(3, 8)
    leaf = tree.leaf(3)
    assert verify_inclusion(leaf, 3, 8, path, root)
    assert not verify_inclusion(leaf[:31], 3, 8, path, root)
    assert not verify_inclusion(leaf, 3, 8, path, root + b"\x00")
    assert not verify_inclusion(leaf, 3, 8, [path[0][:31], *path[1:]], root)
    assert not verify_inclusion(leaf, -1, 8, path, root)
    assert not verify_inclusion(leaf, 8, 8, path, root)
    assert not verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    proof = tree.consistency_proof(3, 8)
    old = tree.root_at(3)
    assert verify_consistency(3, 8, old, root, proof)
    assert not verify_consistency(3, 8, old[:31], root, proof)
    assert not verify_consistency(3, 8, old, root, [proof[0] + b"\x00", *proof[1:]])


# --- The tree's own contract ---


def test_empty_tree() -> None:
    tree = MerkleTree()
    assert tree.size == 0
    assert tree.root() == EMPTY_ROOT == tree.root_at(0)
    assert tree.consistency_proof(0, 0) == []
    with pytest.raises(ValueError):
        tree.inclusion_proof(0, 0)
    with pytest.raises(IndexError):
        tree.leaf(0)


def test_out_of_range_requests_are_refused() -> None:
    tree = MerkleTree.from_leaves(leaf_hash(d) for d in DATA[:10])
    with pytest.raises(ValueError, match="tree_size"):
        tree.root_at(11)
    with pytest.raises(ValueError, match="tree_size"):
        tree.root_at(-1)
    with pytest.raises(ValueError, match="index"):
        tree.inclusion_proof(10, 10)
    with pytest.raises(ValueError, match="index"):
        tree.inclusion_proof(-1, 10)
    with pytest.raises(ValueError, match="tree_size"):
        tree.inclusion_proof(0, 11)
    with pytest.raises(ValueError, match="first"):
        tree.consistency_proof(6, 5)
    with pytest.raises(ValueError, match="second"):
        tree.consistency_proof(1, 11)
    with pytest.raises(IndexError):
        tree.leaf(10)


def test_append_refuses_anything_but_a_32_byte_hash() -> None:
    tree = MerkleTree()
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"\x00" * 33)
    assert tree.size == 0
    assert tree.root() == EMPTY_ROOT


def test_appended_hash_is_copied() -> None:
    buffer = bytearray(leaf_hash(b"a"))
    tree = MerkleTree()
    tree.append(bytes(buffer))
    tree.append(buffer)  # type: ignore[arg-type]
    buffer[0] ^= 1
    assert tree.leaf(1) == leaf_hash(b"a")
    assert tree.root() == node_hash(leaf_hash(b"a"), leaf_hash(b"a"))


def test_proofs_are_logarithmic() -> None:
    tree = big_tree()
    for size in (1, 2, 3, 1000, 1024, 1025, LARGE):
        bound = (size - 1).bit_length()
        for index in (0, size // 2, size - 1):
            assert len(tree.inclusion_proof(index, size)) <= bound
        for first in (1, size // 3, size - 1):
            if 0 < first < size:
                assert len(tree.consistency_proof(first, size)) <= bound + 1


def test_a_tree_built_from_leaf_bytes_is_the_appended_tree() -> None:
    import hashlib as _h

    for n in [*range(0, 70), 255, 256, 257]:
        hashes = [_h.sha256(str(i).encode()).digest() for i in range(n)]
        built, appended = MerkleTree.from_leaf_bytes(b"".join(hashes)), MerkleTree()
        appended.extend(hashes)
        assert built.size == appended.size == n
        assert built._levels == appended._levels  # type: ignore[attr-defined]
        if n:
            assert built.root() == appended.root()
            assert built.inclusion_proof(n // 2, n) == appended.inclusion_proof(n // 2, n)
            built.append(hashes[0])
            appended.append(hashes[0])
            assert built.root() == appended.root()
    with pytest.raises(ValueError):
        MerkleTree.from_leaf_bytes(b"x" * 33)
