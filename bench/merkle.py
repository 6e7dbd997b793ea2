"""Rough figures for the transparency log's math: Merkle appends and proofs, JCS, signed heads.

Run: `python bench/merkle.py [leaves]` (default 1,000,000). Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import random
import sys
import time
import tracemalloc
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tocsin.audit import (
    MerkleTree,
    canonical_json,
    leaf_hash,
    public_key_raw,
    sign_tree_head,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)

EVENT = {
    "id": "radar-7:000123",
    "type": "detection",
    "time": "2026-11-25T01:00:00.250Z",
    "source": "radar-7",
    "track": "T-4411",
    "object": "cruise_missile",
    "weapon": "kh-101",
    "position": {"lat": 50.4501, "lon": 30.5234, "alt_m": 120.0},
    "heading_deg": 270.5,
    "speed_kmh": 800,
    "confidence": 0.9,
    "phase": "cruise",
}


def per_call(fn: Callable[[], object], repeat: int) -> float:
    """Mean seconds per call over `repeat` calls."""
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    """Print the figures."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = random.Random(1)
    print(f"python {sys.version.split()[0]}, {n:,} leaves")

    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(n)]
    start = time.perf_counter()
    tree = MerkleTree()
    for h in hashes:
        tree.append(h)
    elapsed = time.perf_counter() - start
    print(f"append            {n / elapsed:12,.0f} leaves/s  ({elapsed * 1e6 / n:.2f} µs/leaf)")
    # A second build under tracemalloc, untimed: tracing slows every allocation.
    tracemalloc.start()
    traced = MerkleTree.from_leaves(hashes)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert traced.root() == tree.root()
    del traced
    print(f"tree memory       {held / n:12.1f} bytes/leaf held ({peak / n:.1f} at peak)")

    ops = 2000
    sizes = [rng.randint(1, n) for _ in range(ops)]
    t = per_call(lambda: tree.root_at(sizes[rng.randrange(ops)]), ops)
    print(f"root_at(random)   {t * 1e6:12.1f} µs")
    pairs = [(rng.randrange(s), s) for s in sizes]
    t = per_call(lambda: tree.inclusion_proof(*pairs[rng.randrange(ops)]), ops)
    print(f"inclusion_proof   {t * 1e6:12.1f} µs  (random index, random size)")
    t = per_call(lambda: tree.inclusion_proof(rng.randrange(n), n), ops)
    print(f"inclusion_proof   {t * 1e6:12.1f} µs  (random index, full size)")
    spans = [(rng.randint(1, s), s) for s in sizes]
    t = per_call(lambda: tree.consistency_proof(*spans[rng.randrange(ops)]), ops)
    print(f"consistency_proof {t * 1e6:12.1f} µs  (random sizes)")

    root = tree.root()
    index = n // 3
    path = tree.inclusion_proof(index, n)
    t = per_call(lambda: verify_inclusion(hashes[index], index, n, path, root), ops)
    print(f"verify_inclusion  {t * 1e6:12.1f} µs  ({len(path)} hashes)")
    first = n // 3
    proof = tree.consistency_proof(first, n)
    old = tree.root_at(first)
    t = per_call(lambda: verify_consistency(first, n, old, root, proof), ops)
    print(f"verify_consistency{t * 1e6:12.1f} µs  ({len(proof)} hashes)")

    reps = 100_000
    t = per_call(lambda: canonical_json(EVENT), reps)
    print(f"canonical_json    {t * 1e6:12.2f} µs/entry ({len(EVENT)}-key detection event)")
    t = per_call(
        lambda: json.dumps(EVENT, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        reps,
    )
    print(f"json.dumps        {t * 1e6:12.2f} µs/entry (same event, for comparison)")

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    head = sign_tree_head(key, n, "2026-11-25T01:00:00.250Z", root)
    raw = public_key_raw(key)
    t = per_call(lambda: sign_tree_head(key, n, "2026-11-25T01:00:00.250Z", root), 2000)
    print(f"sign_tree_head    {t * 1e6:12.1f} µs")
    t = per_call(lambda: verify_tree_head(raw, head), 2000)
    print(f"verify_tree_head  {t * 1e6:12.1f} µs")


if __name__ == "__main__":
    main()
