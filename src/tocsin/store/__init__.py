"""Event logs: one append-only sequence of events and the transitions they caused."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tocsin.store.base import EventLog, LogEntry, open_log
from tocsin.store.memory import MemoryLog
from tocsin.store.sqlite import SQLiteLog

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tocsin.store.merkle import MerkleLog

__all__ = ["EventLog", "LogEntry", "MemoryLog", "SQLiteLog", "open_log", "open_merkle",
           "open_signing_key"]


def open_merkle(log: EventLog) -> MerkleLog:
    """The Merkle tree of a log, with its leaf hashes and signed heads stored beside the log."""
    from tocsin.store.merkle import MerkleLog

    if type(log).__name__ == "PostgresLog":
        from tocsin.store.postgres import PostgresLog, PostgresMerkleLog

        assert isinstance(log, PostgresLog)
        return PostgresMerkleLog(log)
    return MerkleLog(log)


def open_signing_key(
    log: EventLog, key_file: Path | None, data_dir: Path | str, config_dir: Path | None = None
) -> Ed25519PrivateKey:
    """The key that signs a log's tree heads.

    `key_file` when given; else the one kept in a PostgreSQL store (made by the first node that
    asks, so every node signs alike), or the key `tocsin.logkey` keeps outside the data
    directory (made on first start).
    """
    if type(log).__name__ == "PostgresLog":
        from tocsin.store.merkle import load_signing_key
        from tocsin.store.postgres import PostgresLog, load_store_signing_key

        if key_file is not None:
            return load_signing_key(key_file)
        assert isinstance(log, PostgresLog)
        return load_store_signing_key(log)
    from tocsin.logkey import open_data_dir_key

    return open_data_dir_key(data_dir, key_file, config_dir)
