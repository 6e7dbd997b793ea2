"""Fixtures for `tocsin.geo` tests: the bundled sets (`shared_data` is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tocsin.geo import RegionSet, load_region_set


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
