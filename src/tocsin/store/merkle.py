"""The log as an RFC 9162 Merkle tree, kept in step with the event log, and its signed heads.

Every log entry, events and transitions alike, is one leaf, in seq order: leaf index = seq - 1;
what a leaf holds is told in `tocsin.store.leaves`.

Leaf hashes are stored by the log (`EventLog.append` writes them in the same transaction as
their entries: a leaf hash exists exactly when its entry does). On start, `MerkleLog.load`
rebuilds the tree from the stored hashes (O(n) hashing of interior nodes only), computes and
stores the hashes of any entries written without one (a log made by an older version), and
trusts the rest: checking stored hashes against the entries is `tocsin verify`'s job. Appending
is O(log n). Signed tree heads (STHs) are kept by the log too, every one ever signed.

A restart from a snapshot needs none of that O(n) work before it is ready: the snapshot keeps
the tree's `Frontier` (its size and the O(log n) roots of the complete subtrees on its right
edge, all that appending and signing need), the tree starts from it and reads only the leaf
hashes after it, and a background thread fills in the older nodes from the stored hashes,
checking they give that same frontier. Until then a root or proof that needs an older node is
answered 503 (`OperationalError`); if they do not give it, such requests fail with
`IntegrityError` and the log says to run `tocsin verify`.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tocsin.audit import (
    MerkleTree,
    TreeHead,
    format_timestamp,
    key_id,
    private_key_from_pem,
    private_key_to_pem,
    public_key_raw,
    sign_tree_head,
)
from tocsin.audit.merkle import HASH_SIZE, MissingNodes
from tocsin.errors import IntegrityError, OperationalError, TocsinError
from tocsin.store.base import EventLog, LogEntry, Rejection
from tocsin.store.leaves import (
    TIMES_FROM,
    check_canonical,
    entry_leaf_hash,
    leaf_input,
    leaf_object,
    leaf_times_from,
)

__all__ = [
    "KEY_FILE",
    "TIMES_FROM",
    "Frontier",
    "MerkleLog",
    "check_canonical",
    "entry_leaf_hash",
    "leaf_input",
    "leaf_object",
    "leaf_times_from",
    "load_signing_key",
]

KEY_FILE = "log-signing.key"

_CATCH_UP_BATCH = 10_000

log = logging.getLogger("tocsin")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Frontier:
    """What a snapshot keeps of the tree: its size and `MerkleTree.frontier()` at that size."""

    size: int
    nodes: tuple[bytes, ...]


# --- signing key -------------------------------------------------------------------------------


def load_signing_key(path: Path | str, *, create: bool = False) -> Ed25519PrivateKey:
    """Read the log's Ed25519 key (PKCS#8 PEM); with `create`, make one (mode 0600) if missing."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise TocsinError(f"{path}: no log signing key here") from None
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_signing_key(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_key_to_pem(key))
            fh.flush()
            os.fsync(fh.fileno())
        return key
    except OSError as exc:
        raise TocsinError(f"{path}: {exc.strerror}") from None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: the log signing key is readable by others; chmod 600 it", path)
    try:
        return private_key_from_pem(data)
    except ValueError as exc:
        raise TocsinError(f"{path}: {exc}") from None


# --- the tree ----------------------------------------------------------------------------------


class MerkleLog:
    """The Merkle tree over an `EventLog`: the one way entries get appended while it is kept.

    Leaf hashes and signed heads are stored by the log itself (`EventLog.append` writes an
    entry's hash in the same transaction), so this class holds only the tree in memory, the
    same over every backend. Appends happen on one thread (the node's writer). Reads of heads,
    roots and proofs may come from others: a stored node never changes once its subtree is
    complete, and every answer is computed for a tree size already fixed when it was asked for.
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.times_from = leaf_times_from(log)
        self.tree = MerkleTree()
        self.latest: TreeHead | None = None
        self.filled = threading.Event()  # the tree holds every node (set unless filling)
        self.filled.set()
        self.fill_error: str | None = None
        self._filler: threading.Thread | None = None
        self._closing = threading.Event()

    # --- building ------------------------------------------------------------------------------

    def load(
        self, progress: Callable[[int], None] | None = None, *,
        frontier: Frontier | None = None, fill: bool = True,
    ) -> int:
        """Rebuild the tree from stored leaf hashes, hashing entries that have none; its size.

        With `frontier` (a snapshot's), start from it and read only the hashes after it; the
        older nodes are filled in by a background thread (`filled` is set when it is done),
        started now, or with `fill=False` by `start_filling()` (a node calls it once it is
        ready, so the thread does not take the CPU from its start).
        """
        self._stop_filling()
        last = self.log.max_seq()
        if frontier is not None and frontier.size > last:
            log.warning("the snapshot's Merkle tree has %d leaves but the log only %d; "
                        "rebuilding the tree from every stored leaf hash", frontier.size, last)
            frontier = None
        base = 0 if frontier is None else frontier.size
        leaves = bytearray()
        count = base
        for seq, digest in self.log.leaf_hashes(base + 1, last):
            if seq != count + 1:
                break
            leaves += digest
            count += 1
        if frontier is None:
            tree = MerkleTree.from_leaf_bytes(leaves)
        else:
            tree = MerkleTree.from_frontier(frontier.size, frontier.nodes)
            view = memoryview(leaves)
            for i in range(0, len(leaves), HASH_SIZE):
                tree.append(bytes(view[i:i + HASH_SIZE]))
        if count < last and next(iter(self.log.leaf_hashes(count + 1, last)), None) is not None:
            raise IntegrityError(
                f"{self.log.where}: merkle_leaves does not match the log after seq {tree.size} "
                "(run `tocsin verify`)"
            )
        batch: list[tuple[int, bytes]] = []
        for entry in self.log.read(tree.size + 1, last):
            if entry.seq != tree.size + 1:
                raise IntegrityError(f"the log jumps from seq {tree.size} to {entry.seq}")
            digest = entry_leaf_hash(entry, self.times_from)
            tree.append(digest)
            batch.append((entry.seq, digest))
            if len(batch) >= _CATCH_UP_BATCH:
                self.log.add_leaf_hashes(batch)
                batch = []
                if progress is not None:
                    progress(tree.size)
        self.log.add_leaf_hashes(batch)
        latest = self.log.latest_head()
        if latest is not None and latest.tree_size > tree.size:
            raise IntegrityError(
                f"the last signed tree head covers {latest.tree_size} entries but the log "
                f"has {tree.size} (run `tocsin verify`)"
            )
        if frontier is not None:
            head = self.log.latest_head(tree.size)
            if (head is not None and head.tree_size >= frontier.size
                    and tree.root_at(head.tree_size) != head.root_hash):
                log.error("the snapshot's Merkle tree does not give the root of the signed head "
                          "of %d entries; rebuilding the tree from every stored leaf hash",
                          head.tree_size)
                return self.load(progress)
        self.tree = tree
        self.latest = latest
        self.fill_error = None
        if tree.missing:
            self.filled.clear()
            if fill:
                self.start_filling()
        return tree.size

    def start_filling(self) -> None:
        """Start filling in the older nodes of a tree loaded from a frontier (once)."""
        if self.tree.missing and self._filler is None:
            self._closing.clear()
            self._filler = threading.Thread(target=self._fill, args=(self.tree,),
                                            name="tocsin-merkle-fill", daemon=True)
            self._filler.start()

    def frontier(self) -> Frontier:
        """The tree's size and frontier, for a snapshot."""
        return Frontier(self.tree.size, tuple(self.tree.frontier()))

    def _fill(self, tree: MerkleTree) -> None:
        """Fill in the nodes older than the frontier `tree` was started from (in a thread of
        its own, while the node already works)."""
        base = tree.missing
        started = time.monotonic()
        try:
            leaves = bytearray()
            for seq, digest in self.log.leaf_hashes(1, base):
                if self._closing.is_set():
                    return
                if seq != len(leaves) // HASH_SIZE + 1:
                    raise ValueError(f"no leaf hash stored for seq {len(leaves) // HASH_SIZE + 1}")
                leaves += digest
            tree.fill(leaves)
        except ValueError as exc:
            self.fill_error = (f"the stored leaf hashes of seq 1-{base} do not give the Merkle "
                               f"tree the snapshot recorded ({exc}); run `tocsin verify`")
            log.error("%s: %s", self.log.where, self.fill_error)
        except Exception as exc:  # the log closed under it, or could not be read
            self.fill_error = f"the tree's nodes older than seq {base} could not be read: {exc}"
            if not self._closing.is_set():
                log.error("%s: %s", self.log.where, self.fill_error)
        else:
            log.info("Merkle tree: the nodes of the %d leaves before the snapshot filled in "
                     "(%.1f s)", base, time.monotonic() - started)
        finally:
            self.filled.set()

    def _stop_filling(self) -> None:
        filler, self._filler = self._filler, None
        if filler is not None:
            self._closing.set()
            filler.join()

    # --- roots and proofs, for readers on any thread -------------------------------------------

    def root_at(self, tree_size: int) -> bytes:
        """The root of the first `tree_size` leaves."""
        return self._answer(lambda: self.tree.root_at(tree_size))

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf `index` in the tree of `tree_size` leaves."""
        return self._answer(lambda: self.tree.inclusion_proof(index, tree_size))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 consistency proof of the tree of `first` leaves in that of `second`."""
        return self._answer(lambda: self.tree.consistency_proof(first, second))

    def _answer(self, compute: Callable[[], T]) -> T:
        try:
            return compute()
        except MissingNodes:
            if self.fill_error is not None:
                raise IntegrityError(self.fill_error) from None
            raise OperationalError("the Merkle tree's nodes older than the last snapshot are "
                                   "still being read back after a restart; retry in a few "
                                   "seconds") from None

    def append(
        self,
        entries: Sequence[LogEntry],
        *,
        position: int | None = None,
        epoch: int | None = None,
        rejections: Sequence[Rejection] = (),
    ) -> None:
        """Durably append entries with their leaf hashes (and, for a cluster leader, the stream
        position, fence and refused events: `EventLog.append`), then add them to the tree."""
        if entries and entries[0].seq != self.tree.size + 1:
            raise IntegrityError(
                f"seq {entries[0].seq} does not continue the Merkle tree at {self.tree.size + 1}"
            )
        hashes = [entry_leaf_hash(e, self.times_from) for e in entries]
        self.log.append(entries, hashes, position=position, epoch=epoch, rejections=rejections)
        self.tree.extend(hashes)

    def hashes_of(self, entries: Sequence[LogEntry]) -> list[bytes]:
        """The stored leaf hashes of entries that continue the tree (another node wrote them);
        computed, and stored, for any written without one. Changes nothing in the tree."""
        if not entries:
            return []
        first, last = entries[0].seq, entries[-1].seq
        if first != self.tree.size + 1:
            raise IntegrityError(f"seq {first} does not continue the Merkle tree at "
                                 f"{self.tree.size + 1}")
        stored = dict(self.log.leaf_hashes(first, last))
        missing = [(e.seq, entry_leaf_hash(e, self.times_from)) for e in entries
                   if e.seq not in stored]
        if missing:  # written without a hash (e.g. by `tocsin simulate --store`)
            self.log.add_leaf_hashes(missing)
            stored.update(missing)
        return [stored[e.seq] for e in entries]

    def follow(self, entries: Sequence[LogEntry], hashes: Sequence[bytes] | None = None) -> None:
        """Add entries another node committed to the tree (`hashes`: from `hashes_of`)."""
        self.tree.extend(self.hashes_of(entries) if hashes is None else hashes)

    @property
    def size(self) -> int:
        """Entries in the tree."""
        return self.tree.size

    # --- signed heads --------------------------------------------------------------------------

    def sign(
        self, key: Ed25519PrivateKey, now: datetime, *, force: bool = False
    ) -> TreeHead | None:
        """Sign and store a head over the whole tree; None when the last head already covers it."""
        size = self.tree.size
        latest = self.latest
        if latest is not None and latest.tree_size == size and not force:
            return None
        stamp = format_timestamp(now)
        if latest is not None and stamp < latest.timestamp:
            stamp = latest.timestamp  # never let heads go back in time with the wall clock
        head = sign_tree_head(key, size, stamp, self.tree.root_at(size))
        self.log.add_head(head, key_id(public_key_raw(key)))
        self.latest = head
        return head

    def refresh(self) -> TreeHead | None:
        """Make `latest` the newest stored head this tree covers (a follower's view: another
        node signs, and may have signed further than this node has read)."""
        head = self.log.latest_head(self.tree.size)
        if head is not None:
            self.latest = head
        return self.latest

    def heads(self, since: str | None = None, limit: int = 1000) -> list[TreeHead]:
        """Stored heads signed after `since` (an STH timestamp), oldest first."""
        return self.log.heads(since, limit)

    # --- reads ---------------------------------------------------------------------------------

    def entries(self, start: int, end: int) -> Iterator[LogEntry]:
        """Log entries of leaf indexes start..end (inclusive)."""
        return self.log.read(start + 1, end + 1)

    def close(self) -> None:
        """Stop filling in the tree (the log is closed by its owner)."""
        self._stop_filling()
