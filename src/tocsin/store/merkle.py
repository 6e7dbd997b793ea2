"""The log as an RFC 9162 Merkle tree, kept in step with the event log, and its signed heads.

Every log entry, events and transitions alike, is one leaf, in seq order: leaf index = seq - 1;
what a leaf holds is told in `tocsin.store.leaves`.

Leaf hashes are stored by the log (`EventLog.append` writes them in the same transaction as
their entries: a leaf hash exists exactly when its entry does). On start, `MerkleLog.load`
rebuilds the tree from the stored hashes (O(n) hashing of interior nodes only), computes and
stores the hashes of any entries written without one (a log made by an older version), and
trusts the rest: checking stored hashes against the entries is `tocsin verify`'s job. Appending
is O(log n). Signed tree heads (STHs) are kept by the log too, every one ever signed.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

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
from tocsin.errors import IntegrityError, TocsinError
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

    # --- building ------------------------------------------------------------------------------

    def load(self, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the tree from stored leaf hashes, hashing entries that have none; its size."""
        last = self.log.max_seq()
        leaves = bytearray()
        count = 0
        for seq, digest in self.log.leaf_hashes(1, last):
            if seq != count + 1:
                break
            leaves += digest
            count += 1
        tree = MerkleTree.from_leaf_bytes(leaves)
        if self.log.leaf_count() > tree.size:
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
        self.tree = tree
        self.latest = self.log.latest_head()
        if self.latest is not None and self.latest.tree_size > tree.size:
            raise IntegrityError(
                f"the last signed tree head covers {self.latest.tree_size} entries but the log "
                f"has {tree.size} (run `tocsin verify`)"
            )
        return tree.size

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
        """Nothing of its own to close (the log is closed by its owner)."""
