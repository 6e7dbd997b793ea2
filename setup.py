"""The optional compiled kernel; everything else is declared in pyproject.toml.

`tocsin.geo._leafcore` is built when a C compiler is at hand and skipped otherwise
(`optional=True`): the package then runs the same queries in pure Python with the same output.
Floating-point contraction is off so that no fused multiply-add changes a rounding.
"""

import sys

from setuptools import Extension, setup

FLAGS = [] if sys.platform == "win32" else ["-O2", "-ffp-contract=off", "-fno-fast-math"]

setup(
    ext_modules=[
        Extension(
            "tocsin.geo._leafcore",
            ["src/tocsin/geo/_leafcore.c"],
            extra_compile_args=FLAGS,
            optional=True,
        )
    ]
)
