"""Shared fixtures: the bundled regions (loaded once) and the path of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.geo import RegionSet, load_region_set

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def ua() -> RegionSet:
    """Ukraine's hromadas with raions and oblasts above them."""
    return load_region_set("ua-hromadas")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data folder next to the repository; skips loudly when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"SKIPPED LOUDLY: public data folder {SHARED_DATA} is missing")
    return SHARED_DATA
