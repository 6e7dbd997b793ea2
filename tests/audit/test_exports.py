"""The package's `__all__` is exactly its public API."""

from __future__ import annotations

import types

import tocsin.audit
from tocsin.audit import jcs, merkle, sth


def test_package_all_is_sorted_complete_and_importable() -> None:
    names = tocsin.audit.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(tocsin.audit, name), name
    # submodules become attributes once anything imports them: they are not API names
    public = {name for name, value in vars(tocsin.audit).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public - {"annotations"} == set(names)


def test_module_all_lists_only_defined_names() -> None:
    for module in (jcs, merkle, sth):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert name.isupper() or getattr(module, name).__module__ == module.__name__, name
