"""The compiled kernels, when this installation has them.

Two small C extensions are built by `pip install` where a C compiler is at hand and skipped
where none is:

- `tocsin.geo._leafcore` answers two questions of `LeafIndex.hit_indices` — which leaves a
  planar footprint meets, and how far each is from the footprint's origin — with the same
  answers, float for float, as the pure path (GEOS through shapely), and hands back to GEOS
  whatever its exact tests cannot settle (see the C file's header);
- `tocsin.engine._fieldcore` does `Field.redraw`'s array work in one pass, with the same
  single IEEE steps and comparisons.

So an installation with them and one without give byte-identical transitions; the tests hold
both paths to that. `TOCSIN_PURE=1` in the environment turns both off, to compare the two or
to rule them out.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["fieldcore", "leafcore"]


def _load(name: str) -> ModuleType | None:
    if os.environ.get("TOCSIN_PURE", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:  # built without a compiler: the pure path answers alike
        return None


leafcore = _load("tocsin.geo._leafcore")
fieldcore = _load("tocsin.engine._fieldcore")
