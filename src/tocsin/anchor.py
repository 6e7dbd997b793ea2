"""Heads kept outside the data directory, and what they prove about the log inside it.

A data directory's own stored hashes and signed heads prove only that its log agrees with
itself: whoever can rewrite it (and holds the signing key) can rewrite those too. A head saved
elsewhere (an STH as `GET /api/v1/log/sth` served it, or a `tocsin witness` state file), or a
witness's cosignature (which the log's operator cannot make), pins the tree as it was then: the
log must still have at least that many entries and the same root at that size.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tocsin.audit import MerkleTree, TreeHead, from_json, key_id, verify_tree_head
from tocsin.audit.witness import cosignature_from_json, verify_cosignature
from tocsin.store.readonly import MissingTable

__all__ = ["Anchor", "Findings", "check_anchor", "check_stored_cosignatures", "load_anchor"]


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head kept outside the data directory, with the cosignatures served or kept with it."""

    head: TreeHead
    cosignatures: list[Any]
    log_public_key: bytes | None  # as a witness's state pins it
    source: str


@dataclass
class Findings:
    """Problems (first bad leaf index or None, message) and notes."""

    problems: list[tuple[int | None, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rewritten_below: int | None = None  # a root differs: the first bad index lies below this


def load_anchor(path: Path) -> Anchor:
    """Read an STH JSON (as `GET /api/v1/log/sth` serves it) or a `tocsin witness` state file;
    `ValueError` says what is wrong with it."""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    log_key = None
    if isinstance(data, dict) and isinstance(data.get("sth"), dict):  # a witness's state
        try:
            log_key = base64.b64decode(data["log"]["public_key"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise ValueError(f"{path}: a witness state without the log's public key") from None
        data = data["sth"]
    try:
        head = from_json(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    assert isinstance(data, dict)
    cosigs = data.get("cosignatures", [])
    if not isinstance(cosigs, list):
        raise ValueError(f"{path}: cosignatures: expected a list")
    return Anchor(head, cosigs, log_key, str(path))


def _witness_signed(
    cosigs: Sequence[Any], witness: bytes, log_kid: str, size: int, root: bytes
) -> bool:
    for item in cosigs:
        try:
            cosig = cosignature_from_json(item)
        except ValueError:
            continue
        if verify_cosignature(witness, log_kid, size, root, cosig):
            return True
    return False


def _against(size: int, root: bytes, tree: MerkleTree, what: str, found: Findings) -> None:
    """Check the local tree against one trusted (size, root)."""
    if size > tree.size:
        found.problems.append((tree.size, f"{what} covers {size} entries; the log has only "
                                          f"{tree.size}: the tail from index {tree.size} was "
                                          "cut"))
    elif tree.root_at(size) != root:
        found.rewritten_below = size
        found.problems.append((None, f"{what}: the log's root at tree_size {size} differs: "
                                     f"the log was rewritten at a leaf index from 0 to "
                                     f"{size - 1}, and every stored hash and head that agrees "
                                     "with it was made afterwards"))
    else:
        found.notes.append(f"consistent with {what}")


def check_anchor(
    anchor: Anchor, tree: MerkleTree, public_key: bytes | None, witness_keys: Sequence[bytes]
) -> Findings:
    """The local tree against a head kept elsewhere, co-signed by each of `witness_keys`."""
    found = Findings()
    head = anchor.head
    what = f"the head in {anchor.source} (tree_size {head.tree_size}, {head.timestamp})"
    if anchor.log_public_key is not None and public_key is not None \
            and anchor.log_public_key != public_key:
        found.problems.append((None, f"{anchor.source} is a witness's view of the log with key "
                                     f"{key_id(anchor.log_public_key)}, not {key_id(public_key)}"))
        return found
    key = public_key if public_key is not None else anchor.log_public_key
    if key is None:
        found.notes.append(f"no public key: the signature of {what} is not checked")
    elif not verify_tree_head(key, head):
        found.problems.append((None, f"{what}: bad signature"))
        return found
    for witness in witness_keys:
        if key is None:
            found.problems.append((None, "checking cosignatures needs the log's public key "
                                         "(--public-key)"))
            return found
        if not _witness_signed(anchor.cosignatures, witness, key_id(key), head.tree_size,
                               head.root_hash):
            found.problems.append((None, f"{what} is not co-signed by witness "
                                         f"{key_id(witness)}"))
            return found
    _against(head.tree_size, head.root_hash, tree, what, found)
    return found


def check_stored_cosignatures(
    query: Callable[[str], list[tuple[Any, ...]]],
    tree: MerkleTree,
    public_key: bytes | None,
    witness_keys: Sequence[bytes],
) -> Findings:
    """Without a head from elsewhere: the largest tree each witness co-signed, as kept here.

    Deleting cosignatures is as easy as deleting heads, so this finds a rewritten log but only
    a tail cut beyond the last cosignature kept; a head from the witness itself finds both.
    """
    found = Findings()
    if public_key is None:
        found.problems.append((None, "checking cosignatures needs the log's public key "
                                     "(--public-key)"))
        return found
    try:
        rows = query("SELECT tree_size, root_hash, witness, time, signature "
                     "FROM cosignatures ORDER BY tree_size DESC")
    except MissingTable:  # a log that never had a cosignature
        rows = []
    log_kid = key_id(public_key)
    for witness in witness_keys:
        kid = key_id(witness)
        best = None
        for size, root, wid, when, sig in rows:
            item = {"key_id": wid, "time": when,
                    "signature": base64.b64encode(bytes(sig)).decode("ascii")}
            if wid == kid and _witness_signed([item], witness, log_kid, int(size), bytes(root)):
                best = (int(size), bytes(root))
                break
        if best is None:
            found.problems.append((None, f"no tree here is co-signed by witness {kid}"))
            continue
        _against(*best, tree, f"the tree of {best[0]} entries co-signed by witness {kid}",
                 found)
    return found
