"""The skip guard: what it lets through and what turns a run red."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.skipguard import allowed_patterns, unexpected

ROOT = Path(__file__).resolve().parents[1]


def test_the_allowed_list_reads_patterns_and_ignores_comments(tmp_path: Path) -> None:
    path = tmp_path / "allowed.txt"
    path.write_text("# header\n\ntests/a.py::*  # why\ntests/b.py::t\n")
    assert allowed_patterns(path) == ["tests/a.py::*", "tests/b.py::t"]


def test_only_listed_or_long_form_skips_pass() -> None:
    skips = [("tests/a.py::x", "no service"), ("tests/b.py::t", "gone"),
             ("tests/c.py::long", "the long run: TOCSIN_LONG=1")]
    assert unexpected(skips, ["tests/a.py::*"]) == [("tests/b.py::t", "gone")]


def test_a_session_with_an_unlisted_skip_fails(tmp_path: Path) -> None:
    """A real pytest run in strict mode: an unlisted skip makes the exit code non-zero."""
    test = ROOT / "tests" / f"test_zz_skipguard_probe_{tmp_path.name}.py"
    test.write_text("import pytest\n\ndef test_probe():\n    pytest.skip('a service is gone')\n")
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**_env(), "TOCSIN_STRICT_SKIPS": "1"})
    finally:
        test.unlink()
    assert run.returncode == 1, run.stdout + run.stderr
    assert "skips not on tests/allowed_skips.txt" in run.stdout
    assert "a service is gone" in run.stdout


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "CI"}
