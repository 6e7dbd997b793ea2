"""RFC 9162 §2.1 Merkle tree: leaf and node hashes, an append-only tree, proofs and their checks.

Theory of operation. `MerkleTree` keeps, for every level L, the hash of each complete (perfect,
aligned) subtree of 2**L leaves, packed as 32-byte slots in one `bytearray` per level; level 0 is
the leaf hashes. A level-L node is stored the moment its second child is, so an append costs one
node hash on average and log2(n) at worst, and the whole tree takes about 64 bytes per leaf.

Every range the RFC's recursive definitions touch, [a, b), starts at a multiple of the largest
power of two not above b - a, so its hash is a right-to-left fold of at most log2(n) stored
nodes (`_range_hash`). That makes `root_at`, `inclusion_proof` and `consistency_proof` cost
O(log n) hashes at any past tree size: only ranges ending at the requested size are partial,
and each proof meets at most one of them.

A tree can also start from its *frontier* (`from_frontier`): the roots of the complete subtrees
along its right edge, one per set bit of its size, which is all that appending and the root
need. That is how a restart comes back without rehashing every leaf; the older nodes are
`fill`ed in afterwards from the leaf hashes, and until then a proof that needs one raises
`MissingNodes`.

The checks `verify_inclusion` and `verify_consistency` follow RFC 9162 §2.1.3.2 and §2.1.4.2
step by step and share nothing with the proof builders, so a bug in one is caught by the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "MissingNodes",
    "leaf_hash",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class MissingNodes(LookupError):
    """A tree started from its frontier was asked for a node it has not filled in yet."""


def _levels_of(leaves: bytes | bytearray) -> list[bytearray]:
    """Every level of the tree over concatenated leaf hashes, built a level at a time."""
    if len(leaves) % HASH_SIZE:
        raise ValueError(f"leaf hashes are {HASH_SIZE} bytes each")
    levels = [bytearray(leaves)]
    sha256, prefix, pair = hashlib.sha256, _NODE_PREFIX, 2 * HASH_SIZE
    while len(levels[-1]) >= pair:
        below = memoryview(levels[-1])
        above = bytearray()
        for i in range(0, len(below) - pair + 1, pair):
            above += sha256(prefix + below[i:i + pair]).digest()
        levels.append(above)
    return levels


def _split(n: int) -> int:
    """Return the largest power of two smaller than `n` (n >= 2), the RFC's k."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only RFC 9162 Merkle tree over leaf hashes, answering roots and proofs."""

    __slots__ = ("_levels", "_missing", "_size")

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        # leaves before which only the frontier's nodes are held (0: every node is)
        self._missing = 0

    @classmethod
    def from_leaves(cls, leaf_hashes: Iterable[bytes]) -> MerkleTree:
        """Build a tree from leaf hashes in log order."""
        tree = cls()
        tree.extend(leaf_hashes)
        return tree

    @classmethod
    def from_leaf_bytes(cls, leaves: bytes | bytearray) -> MerkleTree:
        """Build a tree from its leaf hashes, concatenated in log order, a level at a time.

        The same tree as `from_leaves`, without a Python call per leaf per level: what a
        restart does with a log's stored leaf hashes.
        """
        tree = cls()
        tree._levels = _levels_of(leaves)
        tree._size = len(leaves) // HASH_SIZE
        return tree

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> MerkleTree:
        """A tree of `size` leaves holding only its `frontier` (as `frontier()` returns it).

        It appends, and answers roots and proofs that need no node older than `size`, at once;
        the rest raise `MissingNodes` until `fill` is given the first `size` leaf hashes. The
        levels are laid out at full length (zeros where a node is missing), so filling them in
        never moves a node another thread may be reading.
        """
        if size < 0 or len(frontier) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {max(size, 0).bit_count()} frontier "
                             f"nodes, not {len(frontier)}")
        if any(len(node) != HASH_SIZE for node in frontier):
            raise ValueError(f"frontier nodes are {HASH_SIZE} bytes each")
        tree = cls()
        tree._levels = [bytearray((size >> level) * HASH_SIZE)
                        for level in range(max(size.bit_length(), 1))]
        nodes = iter(frontier)
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                end = (size >> level) * HASH_SIZE
                tree._levels[level][end - HASH_SIZE:end] = next(nodes)
        tree._size = size
        tree._missing = size
        return tree

    def frontier(self) -> list[bytes]:
        """The roots of the complete subtrees along the right edge, largest first: with the
        size, all a tree needs to go on appending and to give its root (a compact range)."""
        size = self._size
        return [self._node(level, (size >> level) - 1)
                for level in reversed(range(size.bit_length())) if size >> level & 1]

    @property
    def missing(self) -> int:
        """How many leading leaves' nodes are not held yet (0 for a complete tree)."""
        return self._missing

    def fill(self, leaves: bytes | bytearray) -> None:
        """Fill in a tree made `from_frontier` with its first `missing` leaf hashes
        (concatenated); raise `ValueError`, changing nothing, if they do not give its frontier.

        Safe while another thread appends or reads: only nodes no one could read yet are
        written, in place, and the tree counts as complete only after the last of them.
        """
        base = self._missing
        if base == 0:
            return
        if len(leaves) != base * HASH_SIZE:
            raise ValueError(f"expected {base} leaf hashes, got {len(leaves) / HASH_SIZE:g}")
        levels = _levels_of(leaves)
        for level in range(base.bit_length()):
            if base >> level & 1:
                end = (base >> level) * HASH_SIZE
                if levels[level][end - HASH_SIZE:end] != self._levels[level][end - HASH_SIZE:end]:
                    raise ValueError(f"the leaf hashes do not give this tree's frontier node at "
                                     f"level {level}")
        for level, nodes in enumerate(levels):
            held = (base >> level) & ~1  # the first node of the level this tree holds
            self._levels[level][:held * HASH_SIZE] = nodes[:held * HASH_SIZE]
        self._missing = 0

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"MerkleTree(size={self._size})"

    def append(self, leaf_hash: bytes) -> int:
        """Append a leaf hash (see `leaf_hash`) and return its index."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf_hash)}")
        levels = self._levels
        index = self._size
        levels[0] += leaf_hash
        node = bytes(leaf_hash)
        count = index + 1
        level = 0
        # The node just stored is a right child exactly when its level now holds an even count.
        while not count & 1:
            left = levels[level][-2 * HASH_SIZE : -HASH_SIZE]
            node = hashlib.sha256(_NODE_PREFIX + left + node).digest()
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += node
            count >>= 1
        self._size = index + 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes in order."""
        for item in leaf_hashes:
            self.append(item)

    def leaf(self, index: int) -> bytes:
        """Return the leaf hash at `index`."""
        if not 0 <= index < self._size:
            raise IndexError(f"leaf {index} is not in a tree of {self._size}")
        return self._node(0, index)

    def root(self) -> bytes:
        """Return the current root hash, MTH of all leaves."""
        return self.root_at(self._size)

    def root_at(self, tree_size: int) -> bytes:
        """Return the root hash of the first `tree_size` leaves."""
        self._check_size(tree_size, "tree_size")
        if tree_size == 0:
            return EMPTY_ROOT
        return self._range_hash(0, tree_size)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """Return RFC 9162 §2.1.3.1 PATH(index, D[0:tree_size]), nearest sibling first."""
        self._check_size(tree_size, "tree_size")
        if not 0 <= index < tree_size:
            raise ValueError(f"index {index} is not in a tree of {tree_size}")
        path: list[bytes] = []
        start, end = 0, tree_size
        # Walk down from the root; the RFC lists siblings bottom-up, so reverse at the end.
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self._range_hash(start + k, end))
                end = start + k
            else:
                path.append(self._range_hash(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Return RFC 9162 §2.1.4.1 PROOF(first, D[0:second]); empty when first is 0 or second."""
        self._check_size(second, "second")
        if not 0 <= first <= second:
            raise ValueError(f"first ({first}) must be between 0 and second ({second})")
        if first == 0 or first == second:
            return []
        proof: list[bytes] = []
        start, end = 0, second
        # SUBPROOF's flag: true while the subtree still starts at leaf 0 of the old tree, whose
        # root the verifier already holds and so needs no copy of.
        complete = True
        while True:
            size = end - start
            old = first - start
            if old == size:
                if not complete:
                    proof.append(self._range_hash(start, end))
                break
            k = _split(size)
            if old <= k:
                proof.append(self._range_hash(start + k, end))
                end = start + k
            else:
                proof.append(self._range_hash(start, start + k))
                start += k
                complete = False
        proof.reverse()
        return proof

    def _check_size(self, tree_size: int, name: str) -> None:
        """Refuse a tree size this tree cannot answer for."""
        if not 0 <= tree_size <= self._size:
            raise ValueError(f"{name} {tree_size} is outside 0..{self._size}")

    def _node(self, level: int, index: int) -> bytes:
        """Return the stored hash of complete subtree `index` at `level`."""
        if self._missing and index < (self._missing >> level) & ~1:
            raise MissingNodes(f"node {index} of level {level} is not filled in yet (the tree "
                               f"was started from its frontier at {self._missing} leaves)")
        offset = index * HASH_SIZE
        return bytes(self._levels[level][offset : offset + HASH_SIZE])

    def _range_hash(self, start: int, end: int) -> bytes:
        """Return MTH(D[start:end]) for a range aligned as the RFC's recursion produces."""
        size = end - start
        result: bytes | None = None
        # The set bits of `size`, low to high, are the complete subtrees from right to left.
        while size:
            low = size & -size
            level = low.bit_length() - 1
            end -= low
            node = self._node(level, end >> level)
            result = node if result is None else node_hash(node, result)
            size ^= low
        assert result is not None, "empty ranges never reach _range_hash"
        return result


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof as RFC 9162 §2.1.3.2 describes."""
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        return False
    if any(len(p) != HASH_SIZE for p in path):
        return False
    # 1. leaf_index must be below tree_size.
    if not 0 <= index < tree_size:
        return False
    # 2. fn is the leaf index, sn the index of the last leaf.
    fn, sn = index, tree_size - 1
    # 3. r starts as the leaf hash.
    r = leaf_hash
    # 4. Fold in each path element.
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 5. Every level must be used up and the result must be the root.
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """Check a consistency proof as RFC 9162 §2.1.4.2 describes, plus the two trivial cases."""
    if len(first_root) != HASH_SIZE or len(second_root) != HASH_SIZE:
        return False
    if any(len(c) != HASH_SIZE for c in path):
        return False
    if not 0 <= first <= second:
        return False
    # The RFC covers 0 < first < second. The empty tree is a prefix of every tree, and a tree of
    # itself; both need an empty proof, and the roots that can be checked must match.
    if first == 0:
        return not path and first_root == EMPTY_ROOT
    if first == second:
        return not path and first_root == second_root
    # 1. An empty proof cannot link two different sizes.
    if not path:
        return False
    # 2. When the old tree is a complete subtree, its root is the proof's starting node.
    if first & (first - 1) == 0:
        path = [first_root, *path]
    # 3. fn and sn are the indexes of the last leaves of the two trees.
    fn, sn = first - 1, second - 1
    # 4. Skip the levels where the old tree's last node is a right child inside the proof's start.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Both running roots start from the first element.
    fr = sr = path[0]
    # 6. Fold in the rest.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. Both roots must match and every level of the new tree must be used up.
    return fr == first_root and sr == second_root and sn == 0
