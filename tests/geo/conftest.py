"""Fixtures for `tocsin.geo` tests: the bundled sets and the shared real-world data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.geo import RegionSet, load_region_set

# The shared data directory sits next to the repository: ../shared/data.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data directory; skips (loudly) when it is not checked out."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"SHARED DATA MISSING: {SHARED_DATA} does not exist, so tests against the real "
            "source files cannot run; check out ../shared next to the repository"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def hromadas() -> RegionSet:
    """The default bundled set: oblasts, raions and hromadas in one hierarchy."""
    return load_region_set("ua-hromadas")


@pytest.fixture(scope="session")
def raions() -> RegionSet:
    """Oblasts and raions."""
    return load_region_set("ua-raions")


@pytest.fixture(scope="session")
def oblasts() -> RegionSet:
    """Oblasts only."""
    return load_region_set("ua-oblasts")
