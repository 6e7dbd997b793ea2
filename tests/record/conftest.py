"""Fixtures of the record tests: small real logs on disk, with their Merkle leaves and heads."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tocsin.audit import public_key_raw
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import RegionSet, load_region_set
from tocsin.ledger import Ledger
from tocsin.logkey import open_data_dir_key
from tocsin.model import format_time
from tocsin.store import SQLiteLog
from tocsin.store.merkle import MerkleLog
from tocsin.threats import load_catalog

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
LVIV = "UA46000000000026241"
KHARKIV = "UA63000000000041885"
ODESA = "UA51000000000030770"
_ids = itertools.count(1)


def at(seconds: float) -> str:
    """RFC 3339, `seconds` after T0."""
    return format_time(T0 + timedelta(seconds=seconds))


def raw(etype: str, t: float, **kw: Any) -> dict[str, Any]:
    """A raw event."""
    ev: dict[str, Any] = {"id": f"r{next(_ids)}", "type": etype, "time": at(t), "source": "rec"}
    ev.update(kw)
    return ev


def operator(action: str, region: str, t: float) -> dict[str, Any]:
    """An operator raise or clear of an air-raid alert."""
    return raw("operator_alert", t, regions=[region], alert_type="air_raid", action=action,
               operator="duty")


def impact(t: float, lat: float, lon: float) -> dict[str, Any]:
    """An explosion."""
    return raw("impact", t, position={"lat": lat, "lon": lon}, kind="explosion")


@pytest.fixture(scope="session")
def oblasts() -> RegionSet:
    """The 27 first-level units: quick to load, one leaf per oblast."""
    return load_region_set("ua-oblasts")


@dataclass
class Recorded:
    """A data directory written through a ledger with a Merkle log; `heads` sizes signed."""

    data_dir: Path
    key: Ed25519PrivateKey
    heads: list[int]
    size: int

    @property
    def db(self) -> Path:
        return self.data_dir / "tocsin.db"

    @property
    def public_key(self) -> bytes:
        return public_key_raw(self.key)


def write_log(
    data_dir: Path, regions: RegionSet, rounds: int = 12, *, every: int = 3
) -> Recorded:
    """A log of ticks, operator raises and clears and impacts; a head every `every` rounds."""
    log = SQLiteLog(data_dir / "tocsin.db")
    log.set_meta("regions", "ua-oblasts")
    key = open_data_dir_key(data_dir, None)  # kept in the (test's) config dir, not data_dir
    merkle = MerkleLog(log)
    merkle.load()
    catalog = load_catalog()
    ledger = Ledger(log, lambda: Engine(regions, catalog, Policy()), merkle=merkle)
    heads: list[int] = []
    names = [LVIV, KHARKIV, ODESA]
    try:
        for i in range(rounds):
            t = 60.0 * i
            region = names[i % 3]
            ledger.submit([raw("tick", t)], key_name="clock", recorded_at=at(t))
            ledger.submit([operator("raise", region, t + 1)], key_name="duty-key",
                          recorded_at=at(t + 1.5))
            ledger.submit([impact(t + 5, 49.84, 24.03), impact(t + 6, 46.48, 30.72)],
                          recorded_at=at(t + 6.5))
            ledger.submit([operator("clear", region, t + 30)], key_name="duty-key",
                          recorded_at=at(t + 30.5))
            if i % every == every - 1:
                merkle.sign(key, T0 + timedelta(seconds=t + 31))
                heads.append(merkle.size)
        size = merkle.size
    finally:
        merkle.close()
        log.close()
    return Recorded(data_dir, key, heads, size)


@pytest.fixture
def recorded(tmp_path: Path, oblasts: RegionSet) -> Recorded:
    """A fresh recorded data directory per test (tests tamper with it)."""
    return write_log(tmp_path / "data", oblasts)


Tamper = Callable[[str], None]


@pytest.fixture
def tamper(recorded: Recorded) -> Tamper:
    """Run SQL on the recorded file with the append-only triggers dropped, as an attacker."""
    import sqlite3

    def run(sql: str) -> None:
        conn = sqlite3.connect(recorded.db, isolation_level=None)
        try:
            for trigger in ("log_no_update", "log_no_delete", "merkle_leaves_no_update",
                            "merkle_leaves_no_delete", "sths_no_update", "sths_no_delete"):
                conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            conn.executescript(sql)
        finally:
            conn.close()

    return run
