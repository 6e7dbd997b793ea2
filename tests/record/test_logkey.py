"""The log signing key lives outside the data directory; the data directory names it by its
public key. Every test here has its own configuration directory (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import stat
from pathlib import Path

import pytest

from tocsin.audit import key_id, private_key_to_pem, public_key_raw
from tocsin.config import Settings, settings_from_env
from tocsin.errors import TocsinError
from tocsin.logkey import (
    LEGACY_KEY_FILE,
    PUBLIC_KEY_FILE,
    config_dir,
    data_dir_public_key,
    default_key_path,
    open_data_dir_key,
)
from tocsin.service import Service
from tocsin.store.merkle import load_signing_key


def test_a_new_log_keeps_its_key_in_the_config_dir_and_only_the_public_key_inside(
    tmp_path: Path, _config_dir: Path
) -> None:
    data = tmp_path / "data"
    service = Service(Settings(data_dir=data, regions="ua-oblasts"))
    try:
        raw = public_key_raw(service.log_key)
    finally:
        asyncio.run(service.stop())
    kept = _config_dir / "keys" / next(p.name for p in (_config_dir / "keys").iterdir())
    assert kept == default_key_path(raw)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert data_dir_public_key(data) == raw
    assert not (data / LEGACY_KEY_FILE).exists()
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in data.rglob("*") if p.is_file())
    # a restart finds the same key by the data directory's public key
    assert public_key_raw(open_data_dir_key(data, None)) == raw


def test_a_missing_key_is_named_with_where_it_was_looked_for(tmp_path: Path) -> None:
    data = tmp_path / "data"
    raw = public_key_raw(open_data_dir_key(data, None))
    default_key_path(raw).unlink()
    with pytest.raises(TocsinError, match=f"signed with key {re.escape(key_id(raw))}"):
        open_data_dir_key(data, None)
    with pytest.raises(TocsinError, match="--log-key"):
        open_data_dir_key(data, None)


def test_log_key_must_be_the_key_the_log_is_signed_with(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = open_data_dir_key(data, None)
    elsewhere = tmp_path / "vault" / "log.key"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(private_key_to_pem(first))
    elsewhere.chmod(0o600)
    assert public_key_raw(open_data_dir_key(data, elsewhere)) == public_key_raw(first)
    other = tmp_path / "other.key"
    load_signing_key(other, create=True)
    with pytest.raises(TocsinError, match="is not the key this log is signed with"):
        open_data_dir_key(data, other)


def test_a_key_given_for_a_new_log_is_pinned_by_its_public_key(tmp_path: Path) -> None:
    key_file = tmp_path / "log.key"
    key = load_signing_key(key_file, create=True)
    data = tmp_path / "data"
    open_data_dir_key(data, key_file)
    assert (data / PUBLIC_KEY_FILE).is_file()
    assert data_dir_public_key(data) == public_key_raw(key)
    assert not (data / LEGACY_KEY_FILE).exists()


def test_an_older_data_dir_with_its_key_inside_keeps_working_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    legacy = load_signing_key(data / LEGACY_KEY_FILE, create=True)
    with caplog.at_level(logging.WARNING, logger="tocsin"):
        key = open_data_dir_key(data, None)
    assert public_key_raw(key) == public_key_raw(legacy)
    assert "inside the data directory" in caplog.text and "--log-key" in caplog.text
    assert data_dir_public_key(data) == public_key_raw(legacy)


def test_the_config_dir_follows_the_environment(tmp_path: Path) -> None:
    assert config_dir({"TOCSIN_CONFIG_DIR": "/srv/k", "XDG_CONFIG_HOME": "/x"}) == Path("/srv/k")
    assert config_dir({"XDG_CONFIG_HOME": "/x"}) == Path("/x/tocsin")
    assert config_dir({"XDG_CONFIG_HOME": "relative"}) == Path.home() / ".config" / "tocsin"
    assert config_dir({}) == Path.home() / ".config" / "tocsin"
    settings = settings_from_env({"TOCSIN_CONFIG_DIR": str(tmp_path / "c"),
                                  "TOCSIN_LOG_KEY": str(tmp_path / "k.key")})
    assert Path(settings.config_dir or "") == tmp_path / "c"
    assert Path(settings.log_key or "") == tmp_path / "k.key"
