"""Checking the record: a data directory offline, or a live server as any outsider can.

**Offline** (`verify_data_dir`, or `verify_store` for a cluster's PostgreSQL store, the same
checks over the same tables): read every row of the log in seq order, recompute each leaf
from the row (never trusting a stored hash), and compare

- the rows with themselves: seqs must run 1, 2, 3, … with no gap; an event's `source` and
  `event_id` columns and a transition's `seq` and `cause_seq` must agree with the body;
- each recomputed leaf hash with the one stored in `merkle_leaves` when the entry was appended;
- the tree rebuilt from the recomputed leaves with every stored signed tree head: signature
  (with the log's public key) and root at the head's size.

With a head kept outside the data directory (`head`: an STH as served, or a witness's state
file) the local log must also be consistent with it: a head larger than the log shows a cut tail,
another root at its size a rewritten log, even when every stored hash and head was rewritten and
re-signed. With `witness_keys`, a head co-signed by each of those witnesses is required.

A changed body shows as a leaf-hash mismatch at its index; a removed row as a seq gap; an
inserted row as a seq gap, a leaf without a stored hash or a mismatch; swapped rows as
mismatches at the first of them. If the stored hashes were rewritten too, the first signed head
whose root no longer matches bounds the damage: it lies at or after the size of the last head
that still matches. The report names the first bad leaf index (seq - 1).

**Online** (`verify_remote`): fetch the server's key and latest signed head, check the
signature, pin the key in a local state file on first use (trust on first use, as ssh), check
that the head extends the one seen last time (consistency proof), and check inclusion of chosen
entries (audit paths) or, with `full`, rebuild the whole tree from the entries.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tocsin.anchor import Anchor, Findings, check_anchor, check_stored_cosignatures, load_anchor
from tocsin.audit import (
    MerkleTree,
    TreeHead,
    canonical_json,
    from_json,
    key_id,
    leaf_hash,
    public_key_raw,
    to_json,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)
from tocsin.audit.sth import PUBLIC_KEY_SIZE
from tocsin.errors import OperationalError
from tocsin.store.base import LogEntry
from tocsin.store.merkle import TIMES_FROM, entry_leaf_hash, load_signing_key
from tocsin.store.readonly import MissingTable, ReadOnlyTables, open_readonly

__all__ = [
    "Anchor",
    "Problem",
    "load_anchor",
    "count_entries",
    "VerifyReport",
    "load_public_key",
    "verify_data_dir",
    "verify_remote",
    "verify_store",
]

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding; `index` is the first leaf index it implicates (None: not tied to one)."""

    index: int | None
    message: str

    def __str__(self) -> str:
        return self.message if self.index is None else f"index {self.index}: {self.message}"


@dataclass
class VerifyReport:
    """What a verification checked and found."""

    entries: int = 0
    heads: int = 0
    proofs: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tree_size: int | None = None
    root_hash: str | None = None

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        """The lowest leaf index any problem implicates."""
        indexes = [p.index for p in self.problems if p.index is not None]
        return min(indexes) if indexes else None

    def add(self, index: int | None, message: str) -> None:
        """Record a problem."""
        self.problems.append(Problem(index, message))


def load_public_key(text: str) -> bytes:
    """A raw Ed25519 public key from a PEM file (private or public), a raw-key file, or base64."""
    path = Path(text)
    if path.is_file():
        data = path.read_bytes()
        if b"PRIVATE KEY" in data:
            return public_key_raw(load_signing_key(path))
        if b"PUBLIC KEY" in data:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError(f"{path}: not an Ed25519 public key")
            return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        text = data.decode("ascii", "replace").strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{text[:40]!r}: not a key file or base64 public key") from None
    if len(raw) != PUBLIC_KEY_SIZE:
        raise ValueError(f"a public key is {PUBLIC_KEY_SIZE} raw bytes, got {len(raw)}")
    return raw


# --- offline -------------------------------------------------------------------------------------


def count_entries(data_dir: Path | str | None = None, store: str | None = None) -> int:
    """Rows in a data directory's (or a store's) log, for progress bars."""
    with open_readonly(data_dir, store) as db:
        return int(db.query("SELECT COUNT(*) FROM log")[0][0])


def _rows(db: ReadOnlyTables) -> Iterator[LogEntry]:
    after = 0
    while True:
        rows = db.query("SELECT seq, kind, body, source, event_id, key_name, cause_seq, "
                        "recorded_at FROM log WHERE seq > ? ORDER BY seq LIMIT 20000", (after,))
        for r in rows:
            yield LogEntry(*r)
        if len(rows) < 20000:
            return
        after = rows[-1][0]


def _stored_hashes(db: ReadOnlyTables) -> Iterator[tuple[int, bytes]]:
    """(seq, leaf hash) as stored, in seq order, page by page."""
    after = 0
    while True:
        try:
            rows = db.query("SELECT seq, hash FROM merkle_leaves WHERE seq > ? ORDER BY seq "
                            "LIMIT 20000", (after,))
        except MissingTable:  # a log from before Merkle leaves were stored
            return
        for seq, digest in rows:
            yield int(seq), bytes(digest)
        if len(rows) < 20000:
            return
        after = int(rows[-1][0])


class _Cursor:
    """Walks stored leaf hashes alongside the rows (both in seq order), in constant memory."""

    def __init__(self, items: Iterator[tuple[int, bytes]]) -> None:
        self._items = items
        self.head: tuple[int, bytes] | None = next(items, None)
        self.any = self.head is not None

    def take(self, seq: int) -> bytes | None:
        """The stored hash of `seq`, skipping stored seqs below it."""
        while self.head is not None and self.head[0] < seq:
            self.head = next(self._items, None)
        if self.head is not None and self.head[0] == seq:
            return self.head[1]
        return None

    def rest(self, after: int) -> list[int]:
        """Stored seqs beyond `after`."""
        out = []
        while self.head is not None:
            if self.head[0] > after:
                out.append(self.head[0])
            self.head = next(self._items, None)
        return out


def _stored_heads(db: ReadOnlyTables) -> list[tuple[int, TreeHead | None, str, str]]:
    """(row id, head or None if malformed, key id, error) for every stored head, oldest first."""
    try:
        rows = db.query("SELECT id, tree_size, timestamp, root_hash, signature, key_id "
                        "FROM sths ORDER BY id")
    except MissingTable:
        return []
    out: list[tuple[int, TreeHead | None, str, str]] = []
    for rid, size, stamp, root, sig, kid in rows:
        try:
            out.append((rid, TreeHead(size, stamp, bytes(root), bytes(sig)), kid, ""))
        except (ValueError, TypeError) as exc:
            out.append((rid, None, kid, str(exc)))
    return out


def _check_row(entry: LogEntry, report: VerifyReport) -> None:
    """The columns a leaf does not cover must agree with the body it does."""
    index = entry.seq - 1
    try:
        body = json.loads(entry.body)
    except json.JSONDecodeError as exc:
        report.add(index, f"seq {entry.seq}: body is not JSON ({exc.msg})")
        return
    if not isinstance(body, dict):
        report.add(index, f"seq {entry.seq}: body is not a JSON object")
    elif entry.kind == "event":
        if body.get("source") != entry.source or body.get("id") != entry.event_id:
            report.add(index, f"seq {entry.seq}: source/event_id columns differ from the body")
    elif entry.kind == "transition":
        if body.get("seq") != entry.seq or body.get("cause_seq") != entry.cause_seq:
            report.add(index, f"seq {entry.seq}: the body says seq {body.get('seq')}, "
                              f"cause_seq {body.get('cause_seq')}")
    else:
        report.add(index, f"seq {entry.seq}: unknown kind {entry.kind!r}")


def verify_data_dir(
    data_dir: Path | str,
    public_key: bytes | None,
    *,
    progress: Progress | None = None,
    anchor: Anchor | None = None,
    witness_keys: Sequence[bytes] = (),
) -> VerifyReport:
    """Recompute the tree of a data directory's log and check it against everything stored,
    and against `anchor`, a head kept elsewhere, co-signed by each of `witness_keys`."""
    with open_readonly(data_dir) as db:
        return _verify(db, public_key, progress=progress, anchor=anchor,
                       witness_keys=witness_keys)


def verify_store(
    store: str,
    public_key: bytes | None,
    *,
    progress: Progress | None = None,
    anchor: Anchor | None = None,
    witness_keys: Sequence[bytes] = (),
) -> VerifyReport:
    """`verify_data_dir` for a cluster's PostgreSQL store (`postgresql://…`), read-only."""
    with open_readonly(store=store) as db:
        return _verify(db, public_key, progress=progress, anchor=anchor,
                       witness_keys=witness_keys)


def _verify(
    db: ReadOnlyTables,
    public_key: bytes | None,
    *,
    progress: Progress | None,
    anchor: Anchor | None,
    witness_keys: Sequence[bytes],
) -> VerifyReport:
    started = time.perf_counter()
    report = VerifyReport()
    stored = _Cursor(_stored_hashes(db))
    heads = _stored_heads(db)
    times_from = _times_from(db, report)
    tree = MerkleTree()
    gap_reported = False
    unhashed: int | None = None
    for entry in _rows(db):
        position = tree.size  # the index this row takes in the recomputed tree
        if entry.seq != position + 1 and not gap_reported:
            gap_reported = True
            what = "missing" if entry.seq > position + 1 else "out of order"
            report.add(position, f"seq {position + 1} is {what} (the next row is seq "
                                 f"{entry.seq})")
        _check_row(entry, report)
        try:
            digest = entry_leaf_hash(entry, times_from)
        except (ValueError, TypeError) as exc:
            report.add(position, f"seq {entry.seq}: cannot be canonicalised ({exc})")
            digest = leaf_hash(entry.body.encode("utf-8", "replace"))
        tree.append(digest)
        kept = stored.take(position + 1)
        if kept is None:
            if unhashed is None:
                unhashed = position
        elif kept != digest:
            report.add(position, f"seq {position + 1}: the entry does not match the leaf "
                                 "hash stored when it was appended")
        if progress is not None and tree.size % 5000 == 0:
            progress(tree.size)
    report.entries = tree.size
    if progress is not None:
        progress(tree.size)
    extra = stored.rest(tree.size)
    if extra:
        report.add(tree.size, f"leaf hashes are stored for seq {extra[0]}..{extra[-1]}, "
                              f"beyond the last entry (seq {tree.size}): entries removed")
    if unhashed is not None:
        if stored.any:
            report.add(unhashed, f"seq {unhashed + 1} has no stored leaf hash "
                                 "(inserted outside tocsin?)")
        else:
            report.notes.append("no stored leaf hashes: this log was never served (checked "
                                "against signed heads only)")
    _check_heads(heads, tree, public_key, report)
    if anchor is not None:
        found = check_anchor(anchor, tree, public_key, witness_keys)
    elif witness_keys:
        found = check_stored_cosignatures(db.query, tree, public_key, witness_keys)
    else:
        found = Findings()
    precise = [p.index for p in report.problems if p.index is not None]
    for index, message in found.problems:
        if index is None and found.rewritten_below is not None:
            # the heads cannot say where; an entry already found bad explains it
            index = min((i for i in precise if i < found.rewritten_below), default=None)
        report.add(index, message)
    report.notes.extend(found.notes)
    report.tree_size = tree.size
    report.root_hash = base64.b64encode(tree.root()).decode("ascii")
    report.seconds = time.perf_counter() - started
    return report


def _check_heads(
    heads: list[tuple[int, TreeHead | None, str, str]],
    tree: MerkleTree,
    public_key: bytes | None,
    report: VerifyReport,
) -> None:
    report.heads = len(heads)
    precise = [p.index for p in report.problems if p.index is not None]
    if not heads:
        report.notes.append("no signed tree heads stored")
        return
    if public_key is None:
        report.notes.append("no public key given: head signatures not checked")
    expected_kid = key_id(public_key) if public_key is not None else None
    checked: list[tuple[str, TreeHead]] = []
    for rid, head, kid, error in heads:
        if head is None:
            report.add(None, f"signed head #{rid} is malformed: {error}")
            continue
        name = f"signed head #{rid} (tree_size {head.tree_size}, {head.timestamp})"
        if public_key is not None and not verify_tree_head(public_key, head):
            signer = "" if kid == expected_kid else f" (stored as signed by key {kid})"
            report.add(None, f"{name}: bad signature{signer}")
            continue
        checked.append((name, head))
    # Heads whose root matches vouch for a prefix; a head that does not match bounds the first
    # bad entry between the largest matching size below it and its own size.
    matching = [h.tree_size for _, h in checked
                if h.tree_size <= tree.size and tree.root_at(h.tree_size) == h.root_hash]
    for name, head in checked:
        if head.tree_size > tree.size:
            report.add(tree.size, f"{name} covers {head.tree_size} entries; only {tree.size} "
                                  "are in the log: entries removed")
        elif tree.root_at(head.tree_size) != head.root_hash:
            low = max((s for s in matching if s < head.tree_size), default=0)
            # an entry already found bad in that range explains the mismatch; else the range
            # is all the heads can tell
            found = [i for i in precise if low <= i < head.tree_size]
            report.add(min(found) if found else low,
                       f"{name}: root differs from the recomputed tree; the first bad entry is "
                       f"at an index from {low} to {head.tree_size - 1}")


def _times_from(db: ReadOnlyTables, report: VerifyReport) -> int | None:
    try:
        rows = db.query("SELECT value FROM meta WHERE key = ?", (TIMES_FROM,))
    except MissingTable:
        rows = []
    row = rows[0] if rows else None
    if row is None:
        report.notes.append("recorded_at is not covered by this log's leaves (a log from before "
                            "it was; see docs/transparency.md)")
        return None
    try:
        value = int(row[0])
    except ValueError:
        report.add(None, f"meta {TIMES_FROM} is {row[0]!r}, not a seq")
        return None
    if value > 1:
        report.notes.append(f"recorded_at is covered by the leaves from seq {value} on")
    return value


# --- online --------------------------------------------------------------------------------------


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise OperationalError(f"{path}: {exc}") from exc
    if response.status_code != 200:
        raise OperationalError(f"{path}: HTTP {response.status_code}: {response.text[:200]}")
    return response.json()


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    return base64.b64decode(value, validate=True)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"logs": {}}
    except (OSError, json.JSONDecodeError) as exc:
        raise OperationalError(f"{path}: unreadable state file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("logs"), dict):
        raise OperationalError(f"{path}: not a tocsin verify state file")
    return data


def _save_state(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def _check_entry(item: Any, index: int, report: VerifyReport) -> bytes | None:
    """The leaf hash of one served entry, after checking it is self-consistent."""
    try:
        leaf_input = _unb64(item["leaf_input"])
        if item["index"] != index or item["seq"] != index + 1:
            report.add(index, f"the server answered index {item['index']} for {index}")
            return None
        if canonical_json(item["entry"]) != leaf_input:
            report.add(index, "the entry's JSON does not canonicalise to its leaf_input")
            return None
        if item["entry"].get("seq") != index + 1:
            report.add(index, "the leaf's seq does not match its index")
            return None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        report.add(index, f"malformed entry ({exc})")
        return None
    return leaf_hash(leaf_input)


def _entries(
    client: httpx.Client, start: int, end: int, report: VerifyReport,
    progress: Progress | None = None,
) -> Iterator[tuple[int, bytes | None]]:
    """(index, leaf hash) for every index in [start, end], paging as the server allows."""
    index = start
    while index <= end:
        page = _get(client, "/api/v1/log/entries", start=index, end=end)["entries"]
        if not page:
            report.add(index, "the server returned no entries")
            return
        for item in page:
            yield index, _check_entry(item, index, report)
            index += 1
            if index > end:
                break
        if progress is not None:
            progress(index - start)


def verify_remote(
    client: httpx.Client,
    url: str,
    state_path: Path,
    *,
    check_entries: int = 16,
    latest: bool = False,
    full: bool = False,
    rng: random.Random | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check a live server's signed head, its consistency with the last one seen, and entries.

    `client` is an `httpx.Client` whose base URL is the server; `url` names it in the state
    file. The state (pinned key, last head) is only updated when every check passed.
    """
    started = time.perf_counter()
    report = VerifyReport()
    state = _load_state(state_path)
    seen = state["logs"].get(url)

    key_doc = _get(client, "/api/v1/log/key")
    try:
        public_key = _unb64(key_doc["public_key"])
        if len(public_key) != PUBLIC_KEY_SIZE or key_id(public_key) != key_doc.get("key_id"):
            raise ValueError("key_id does not match the key")
    except (KeyError, TypeError, ValueError) as exc:
        report.add(None, f"malformed log key ({exc})")
        return report
    if seen is not None and seen.get("public_key") != key_doc["public_key"]:
        report.add(None, f"the log key changed: pinned {seen.get('key_id')}, now "
                         f"{key_doc['key_id']}")
        return report
    if seen is None:
        report.notes.append(f"first contact: pinning key {key_doc['key_id']}")

    try:
        head = from_json(_get(client, "/api/v1/log/sth"))
    except ValueError as exc:
        report.add(None, f"malformed signed tree head ({exc})")
        return report
    report.heads = 1
    report.tree_size = head.tree_size
    report.root_hash = base64.b64encode(head.root_hash).decode("ascii")
    if not verify_tree_head(public_key, head):
        report.add(None, "the latest signed tree head has a bad signature")
        return report

    if seen is not None and seen.get("sth") is not None:
        previous = from_json(seen["sth"])
        if head.tree_size < previous.tree_size:
            report.add(head.tree_size, f"the log shrank from {previous.tree_size} to "
                                       f"{head.tree_size} entries")
        elif head.tree_size == previous.tree_size:
            if head.root_hash != previous.root_hash:
                report.add(None, f"two different roots for tree_size {head.tree_size}")
        else:
            proof = _get(client, "/api/v1/log/proof/consistency", first=previous.tree_size,
                         second=head.tree_size)
            path = [_unb64(p) for p in proof["consistency_path"]]
            report.proofs += 1
            if not verify_consistency(previous.tree_size, head.tree_size, previous.root_hash,
                                      head.root_hash, path):
                report.add(previous.tree_size, f"the head of {head.tree_size} entries does not "
                           f"extend the one of {previous.tree_size} seen before")
    n = head.tree_size
    if full and n:
        tree = MerkleTree()
        for _index, digest in _entries(client, 0, n - 1, report,
                                      None if progress is None else lambda k: progress(k, n)):
            tree.append(digest if digest is not None else bytes(32))
        report.entries = tree.size
        if tree.size == n and tree.root_at(n) != head.root_hash:
            bad = report.first_bad_index
            report.add(bad, "the entries served do not hash to the signed root")
    elif check_entries > 0 and n:
        count = min(check_entries, n)
        if latest:
            chosen = list(range(n - count, n))
        else:
            chosen = sorted((rng or random.Random()).sample(range(n), count))
        for done, index in enumerate(chosen, 1):
            got = list(_entries(client, index, index, report))
            digest = got[0][1] if got else None
            report.entries += 1
            if digest is not None:
                proof = _get(client, "/api/v1/log/proof/inclusion", index=index, tree_size=n)
                path = [_unb64(p) for p in proof["audit_path"]]
                report.proofs += 1
                if not verify_inclusion(digest, index, n, path, head.root_hash):
                    report.add(index, "the entry is not included in the signed tree")
            if progress is not None:
                progress(done, count)
    if report.ok:
        state["logs"][url] = {"public_key": key_doc["public_key"], "key_id": key_doc["key_id"],
                              "sth": to_json(head)}
        _save_state(state_path, state)
    report.seconds = time.perf_counter() - started
    return report
