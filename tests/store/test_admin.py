"""The admin contract on SQLite (`admin.db`); `test_postgres.py` runs it on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.store import open_admin
from tocsin.store.admin import AdminBackend, AdminStore

from .admin_contract import AdminContract


class TestSQLiteAdmin(AdminContract):
    @pytest.fixture(autouse=True)
    def _where(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "data"

    def create_admin(self) -> AdminBackend:
        return AdminStore(self.dir / "admin.db")

    def test_opened_in_the_data_directory(self) -> None:
        store = open_admin(None, self.dir)
        try:
            assert isinstance(store, AdminStore) and store.path == self.dir / "admin.db"
        finally:
            store.close()
