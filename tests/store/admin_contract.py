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
