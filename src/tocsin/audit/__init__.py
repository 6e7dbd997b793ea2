"""The tamper-evident log's pure math: RFC 8785 canonical JSON, RFC 9162 Merkle trees, signed heads.

Nothing here reads a clock, a file or the network: timestamps, keys and leaves are arguments.
The impact audit lives alongside: `coverage` (pure: impacts and attacks against alerts) and
`report` (the one module of this package that reads and writes files, for `tocsin audit`).
"""

from __future__ import annotations

from tocsin.audit.jcs import canonical_json
from tocsin.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from tocsin.audit.sth import (
    TreeHead,
    format_timestamp,
    from_json,
    key_id,
    private_key_from_pem,
    private_key_to_pem,
    public_key_raw,
    sign_tree_head,
    sth_message,
    to_json,
    verify_tree_head,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "TreeHead",
    "canonical_json",
    "format_timestamp",
    "from_json",
    "key_id",
    "leaf_hash",
    "node_hash",
    "private_key_from_pem",
    "private_key_to_pem",
    "public_key_raw",
    "sign_tree_head",
    "sth_message",
    "to_json",
    "verify_consistency",
    "verify_inclusion",
    "verify_tree_head",
]
