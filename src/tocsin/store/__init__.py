"""Event logs: one append-only sequence of events and the transitions they caused.

This package is the factory: `open_log` picks the backend by URL (as eventsourcing's
`InfrastructureFactory` does); `tocsin.store.base` knows none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tocsin.store.base import (
    ClusterState,
    EventLog,
    LogEntry,
    Rejection,
    SnapshotRecord,
)
from tocsin.store.memory import MemoryLog
from tocsin.store.sqlite import SQLiteLog

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tocsin.geo import RegionSet
    from tocsin.store.admin import AdminBackend
    from tocsin.store.history import SQLHistoryStore

__all__ = ["ClusterState", "EventLog", "LogEntry", "MemoryLog", "Rejection", "SQLiteLog",
           "SnapshotRecord", "is_postgres_url", "open_admin", "open_history", "open_log",
           "open_signing_key"]


def is_postgres_url(text: str | Path | None) -> bool:
    """Whether a store URL names PostgreSQL."""
    return isinstance(text, str) and text.startswith(("postgresql://", "postgres://"))


def open_log(url_or_dir: str | Path) -> EventLog:
    """Open a log by URL (`sqlite:///path.db`, `postgresql://…`, `memory:`) or data directory."""
    text = str(url_or_dir)
    if is_postgres_url(text):
        from tocsin.store.postgres import PostgresLog

        return PostgresLog(text)
    if text == "memory:":
        return MemoryLog()
    if text.startswith("sqlite:///"):
        return SQLiteLog(Path(text.removeprefix("sqlite:///")))
    return SQLiteLog(Path(text) / "tocsin.db")


def open_signing_key(
    log: EventLog, key_file: Path | None, data_dir: Path | str, config_dir: Path | None = None
) -> Ed25519PrivateKey:
    """The key that signs a log's tree heads.

    `key_file` (`--log-key`) when given; else the one the store keeps for every node (a
    PostgreSQL store: made by the first node that asks, so every node signs alike), or the key
    `tocsin.logkey` keeps outside the data directory (made on first start).
    """
    from tocsin.audit import private_key_from_pem
    from tocsin.errors import TocsinError
    from tocsin.logkey import open_data_dir_key
    from tocsin.store.merkle import load_signing_key

    if not log.keeps_signing_key:
        return open_data_dir_key(data_dir, key_file, config_dir)
    if key_file is not None:
        return load_signing_key(key_file)
    pem = log.stored_signing_key(create=True)
    assert pem is not None
    try:
        return private_key_from_pem(pem)
    except ValueError as exc:
        raise TocsinError(f"{log.where}: the stored log signing key: {exc}") from None


def open_admin(store: str | None, data_dir: Path | str) -> AdminBackend:
    """The admin store of a store URL: PostgreSQL for `postgresql://…`, else `admin.db` in
    `data_dir`."""
    if is_postgres_url(store):
        from tocsin.store.admin_postgres import PostgresAdminStore

        assert store is not None
        return PostgresAdminStore(store)
    from tocsin.store.admin import AdminStore

    return AdminStore(Path(data_dir) / "admin.db")


def open_history(
    store: str | None, data_dir: Path | str, regions: RegionSet | None = None
) -> SQLHistoryStore:
    """Imported alert history: in a PostgreSQL store (shared by a cluster's nodes), else in
    the data directory's `tocsin.db`."""
    if is_postgres_url(store):
        from tocsin.store.history_postgres import PostgresHistoryStore

        assert store is not None
        return PostgresHistoryStore(store, regions)
    from tocsin.store.history import HistoryStore

    return HistoryStore(Path(data_dir) / "tocsin.db", regions)
