"""`tocsin.geo.__all__` is exactly its public API."""

from __future__ import annotations

import tocsin.geo
from tocsin.geo import coverage, footprint, geojson, index, model, planar, regions

SUBMODULES = {"coverage", "footprint", "geojson", "index", "kernel", "model", "planar", "regions",
              "segments"}


def test_package_all_is_sorted_complete_and_importable() -> None:
    names = tocsin.geo.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(tocsin.geo, name), name
    public = {name for name in vars(tocsin.geo) if not name.startswith("_")}
    assert public - {"annotations"} - SUBMODULES == set(names)


def test_module_all_lists_only_defined_names() -> None:
    for module in (coverage, footprint, geojson, index, model, planar, regions):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            value = getattr(module, name)
            assert name.isupper() or value.__module__ == module.__name__, name
