"""The admin contract on SQLite (`admin.db`); `test_postgres.py` runs it on PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from tocsin.store import open_admin
from tocsin.store.admin import AdminBackend, AdminStore, hash_key

from .admin_contract import AdminContract


class TestSQLiteAdmin(AdminContract):
    @pytest.fixture(autouse=True)
    def _where(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "data"

    def create_admin(self) -> AdminBackend:
        return AdminStore(self.dir / "admin.db")

    def create_legacy_key(self, name: str, role: str) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        key = "tk_legacy-" + name
        with contextlib.closing(sqlite3.connect(self.dir / "admin.db")) as db:
            db.execute("CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                       "role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, "
                       "revoked_at TEXT)")
            db.execute("INSERT INTO api_keys VALUES (?,?,?,?,?,?)",
                       ("legacy", name, role, hash_key(key), "2026-01-01T00:00:00Z", None))
            db.commit()
        return key

    def test_opened_in_the_data_directory(self) -> None:
        store = open_admin(None, self.dir)
        try:
            assert isinstance(store, AdminStore) and store.path == self.dir / "admin.db"
        finally:
            store.close()
