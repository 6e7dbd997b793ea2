"""Golden replays: an events file in, the exact transitions `tocsin simulate` prints out.

Each `golden/NAME.events.jsonl` is played by `tocsin simulate` and its output compared byte for
byte with `golden/NAME.expected.jsonl`. An expected file with no events file next to it belongs
to the bundled scenario of that name; the night-wave output is thousands of lines, so it is kept
gzipped. There is deliberately no switch to rewrite these files from the tests: when the engine
changes on purpose, regenerate them by hand, read the diff, and commit it with the change:

    cd tests/engine/golden
    tocsin simulate X.events.jsonl --out X.expected.jsonl
    tocsin simulate --scenario night-wave | gzip -9n > night-wave.expected.jsonl.gz
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tocsin.cli import main

GOLDEN = Path(__file__).parent / "golden"


def _cases() -> list[str]:
    names = {p.name.split(".")[0] for p in GOLDEN.glob("*.expected.jsonl*")}
    return sorted(names)


def _expected(name: str) -> bytes:
    plain = GOLDEN / f"{name}.expected.jsonl"
    if plain.is_file():
        return plain.read_bytes()
    return gzip.decompress((GOLDEN / f"{name}.expected.jsonl.gz").read_bytes())


def _simulate(name: str, out: Path, capsys: pytest.CaptureFixture[str]) -> bytes:
    events = GOLDEN / f"{name}.events.jsonl"
    source = [str(events)] if events.is_file() else ["--scenario", name]
    assert main(["simulate", *source, "--out", str(out)]) == 0, capsys.readouterr().err
    return out.read_bytes()


def _first_difference(got: bytes, want: bytes) -> str:
    got_lines, want_lines = got.splitlines(), want.splitlines()
    for i, (g, w) in enumerate(zip(got_lines, want_lines, strict=False), 1):
        if g != w:
            return f"line {i}:\n  expected {w.decode()}\n  got      {g.decode()}"
    return f"expected {len(want_lines)} lines, got {len(got_lines)}"


def test_every_case_has_its_input() -> None:
    cases = _cases()
    assert {"night-wave", "ballistic-launch", "operator-raise-clear", "silent-impact"} <= set(
        cases
    )
    bundled = {"night-wave"}
    for name in cases:
        assert name in bundled or (GOLDEN / f"{name}.events.jsonl").is_file(), name


@pytest.mark.parametrize("name", _cases())
def test_golden(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    want = _expected(name)
    first = _simulate(name, tmp_path / "first.jsonl", capsys)
    assert first == want, _first_difference(first, want)
    # a second run in the same process, with everything cached and warm, must not differ either
    second = _simulate(name, tmp_path / "second.jsonl", capsys)
    assert second == first


@pytest.mark.parametrize("name", ["ballistic-launch", "night-wave"])
def test_golden_without_the_compiled_kernel(name: str, tmp_path: Path) -> None:
    # `TOCSIN_PURE=1` is an installation built without a C compiler (tocsin.geo.kernel): the
    # transitions must be the same bytes
    events = GOLDEN / f"{name}.events.jsonl"
    source = [str(events)] if events.is_file() else ["--scenario", name]
    out = tmp_path / "pure.jsonl"
    env = {**os.environ, "TOCSIN_PURE": "1"}
    code = ("import sys, tocsin.geo.kernel as k; assert k.leafcore is k.fieldcore is None;"
            "from tocsin.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "simulate", *source, "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got, want = out.read_bytes(), _expected(name)
    assert got == want, _first_difference(got, want)
