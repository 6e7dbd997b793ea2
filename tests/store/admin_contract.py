"""What every admin store must do, written once; `test_admin.py` (SQLite) and `test_postgres.py`
subclass it.

`AdminContract.create_admin()` gives a fresh, empty store of the backend under test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import pytest

from tocsin.errors import ValidationError
from tocsin.store.admin import AdminBackend, Delivery, SirenRecord


class AdminContract(ABC):
    """Behaviour shared by every `AdminBackend`."""

    @abstractmethod
    def create_admin(self) -> AdminBackend:
        """A fresh, empty store."""

    @pytest.fixture()
    def admin(self) -> Iterator[AdminBackend]:
        store = self.create_admin()
        try:
            yield store
        finally:
            store.close()

    def test_keys(self, admin: AdminBackend) -> None:
        key, rec = admin.create_key("sensor", "radar-7")
        assert key.startswith("tk_") and rec.role == "sensor" and rec.name == "radar-7"
        assert admin.authenticate(key) == rec
        assert admin.authenticate(key + "x") is None
        _, other = admin.create_key("reader")
        assert {k.id for k in admin.list_keys()} == {rec.id, other.id}
        assert admin.revoke_key("radar-7")
        assert not admin.revoke_key("radar-7")
        assert admin.authenticate(key) is None
        revoked = next(k for k in admin.list_keys() if k.id == rec.id)
        assert revoked.revoked_at is not None
        with pytest.raises(ValidationError):
            admin.create_key("emperor")

    @abstractmethod
    def create_legacy_key(self, name: str, role: str) -> str:
        """A store made before keys had sources, holding one key; returns the key."""

    def test_key_sources(self, admin: AdminBackend) -> None:
        key, rec = admin.create_key("sensor", "radar-site", ["radar-1", "radar-2", "radar-1"])
        assert rec.sources == ("radar-1", "radar-2")
        assert admin.authenticate(key) == rec
        assert next(k for k in admin.list_keys() if k.id == rec.id).sources == rec.sources
        assert rec.to_dict()["sources"] == ["radar-1", "radar-2"]
        _, fusion = admin.create_key("fusion", "fusion-1")
        assert fusion.sources == ()
        for bad in ([""], ["x" * 201], [" "], [f"s{i}" for i in range(65)]):
            with pytest.raises(ValidationError):
                admin.create_key("sensor", "bad", bad)
        assert {k.name for k in admin.list_keys()} == {"radar-site", "fusion-1"}

    def test_a_store_from_before_sources_is_upgraded(self) -> None:
        key = self.create_legacy_key("old-radar", "sensor")
        store = self.create_admin()
        try:
            rec = store.authenticate(key)
            assert rec is not None and rec.name == "old-radar" and rec.sources == ()
            _, new = store.create_key("sensor", "new-radar", ["radar-9"])
            assert new.sources == ("radar-9",)
        finally:
            store.close()

    def test_subscriptions_and_deliveries(self, admin: AdminBackend) -> None:
        sub = admin.create_subscription("https://example.org/hook", {"regions": ["UA1"]}, 5)
        assert admin.get_subscription(sub.id) == sub
        assert admin.subscriptions(active_only=True) == [sub]
        admin.advance_cursor(sub.id, 9)
        admin.advance_cursor(sub.id, 7)  # cursors never go back
        assert admin.get_subscription(sub.id).cursor == 9  # type: ignore[union-attr]
        admin.record_delivery(Delivery(sub.id, 9, 1, "2026-11-25T01:00:00Z", 500, "HTTP 500"))
        admin.record_delivery(Delivery(sub.id, 9, 2, "2026-11-25T01:00:01Z", 200, None))
        assert [d.attempt for d in admin.deliveries(sub.id)] == [2, 1]
        assert admin.deliveries(sub.id, 1)[0].status == 200
        assert admin.deactivate_subscription(sub.id)
        assert not admin.deactivate_subscription(sub.id)
        assert admin.subscriptions(active_only=True) == []
        assert admin.get_subscription(sub.id).active is False  # type: ignore[union-attr]
        assert admin.get_subscription("nope") is None

    def test_sirens(self, admin: AdminBackend) -> None:
        a = SirenRecord("s-1", "Market square", 49.84, 24.03, "UA1")
        b = SirenRecord("s-2", "Station", 49.83, 24.0, "UA2")
        admin.put_sirens([b, a])
        assert admin.sirens() == [a, b]
        moved = SirenRecord("s-1", "Market square", 49.85, 24.04, "UA3")
        admin.put_sirens([moved])
        assert admin.sirens() == [moved, b]
