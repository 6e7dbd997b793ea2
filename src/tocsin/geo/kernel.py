"""The compiled kernel of `LeafIndex`, when this installation has one.

`tocsin.geo._leafcore` is a small C extension built by `pip install` where a C compiler is at
hand and skipped where none is. It answers two questions of `LeafIndex.hit_indices` — which
leaves a planar footprint meets, and how far each is from the footprint's origin — with the
same answers, float for float, as the pure path (GEOS through shapely), and hands back to GEOS
whatever its exact tests cannot settle (see the C file's header). So an installation with it
and one without give byte-identical transitions; the tests hold both paths to that.

`TOCSIN_PURE=1` in the environment turns it off, to compare the two or to rule it out.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["leafcore"]


def _load() -> ModuleType | None:
    if os.environ.get("TOCSIN_PURE", "") not in ("", "0"):
        return None
    try:
        from tocsin.geo import _leafcore
    except ImportError:  # built without a compiler: the pure path answers alike
        return None
    return _leafcore


leafcore = _load()
