"""Shared fixtures: the bundled regions (loaded once) and the real public data in tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.geo import RegionSet, load_region_set

# Real public data the tests read, carried in the repository with its sources and licences
# (tests/data/README.md), so a clone runs the same tests as this project's machines.
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def ua() -> RegionSet:
    """Ukraine's hromadas with raions and oblasts above them."""
    return load_region_set("ua-hromadas")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data folder (tests/data), laid out as the project's shared data."""
    return TEST_DATA


def pytest_configure(config: pytest.Config) -> None:
    from tests.skipguard import SkipGuard, strict

    if strict():
        config.pluginmanager.register(SkipGuard(), "tocsin-skipguard")


@pytest.fixture(autouse=True)
def _config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Log signing keys made by a test go to a fresh directory, never the user's own."""
    path = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("TOCSIN_CONFIG_DIR", str(path))
    return path
