"""`pip install .` on a machine without a C compiler still gives a working tocsin, same bytes.

The kernel is an optional extension (setup.py): where it cannot be built the install goes on
without it, and the pure path answers. Here the compiler is replaced by `false`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "engine" / "golden"


def source_tree(dest: Path) -> None:
    """What a build of the package reads, without a developer's build products: setuptools
    reuses an in-tree `build/` directory (left by `setup.py build_ext --inplace`), whose
    compiled kernels would then be installed with no compiler at hand."""
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "src", dest / "src",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.egg-info"))


def test_an_install_without_a_compiler_runs_and_decides_the_same(tmp_path: Path) -> None:
    target = tmp_path / "site"
    tree = tmp_path / "tree"
    tree.mkdir()
    source_tree(tree)
    env = {**os.environ, "CC": "false", "LDSHARED": "false", "PIP_NO_INPUT": "1"}
    env.pop("TOCSIN_PURE", None)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         "--target", str(target), str(tree)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(target.rglob("*.so")), "a kernel was built with no compiler?"
    out = tmp_path / "out.jsonl"
    code = ("import sys, tocsin.geo.kernel as k; assert k.leafcore is k.fieldcore is None;"
            "from tocsin.cli import main; sys.exit(main(sys.argv[1:]))")
    run = subprocess.run(
        [sys.executable, "-c", code, "simulate", str(GOLDEN / "ballistic-launch.events.jsonl"),
         "--out", str(out)],
        env={**env, "PYTHONPATH": str(target)}, cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == (GOLDEN / "ballistic-launch.expected.jsonl").read_bytes()
