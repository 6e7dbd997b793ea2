"""The optional compiled kernels; everything else is declared in pyproject.toml.

`tocsin.geo._leafcore` (footprint queries) and `tocsin.engine._fieldcore` (`Field.redraw`) are
built when a C compiler is at hand and skipped otherwise (`optional=True`): the package then
runs the same steps in pure Python with the same output (see `tocsin.geo.kernel`).
Floating-point contraction is off so that no fused multiply-add changes a rounding.
"""

import sys

from setuptools import Extension, setup

FLAGS = [] if sys.platform == "win32" else ["-O2", "-ffp-contract=off", "-fno-fast-math"]

setup(
    ext_modules=[
        Extension(name, [source], extra_compile_args=FLAGS, optional=True)
        for name, source in (
            ("tocsin.geo._leafcore", "src/tocsin/geo/_leafcore.c"),
            ("tocsin.engine._fieldcore", "src/tocsin/engine/_fieldcore.c"),
        )
    ]
)
