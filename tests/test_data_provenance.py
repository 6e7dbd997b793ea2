"""tests/data carries its sources: every folder has a SOURCE.md and a licence note, and every
file is byte-identical to the project's shared data folder when that sits next to the repo."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import TEST_DATA

SHARED = TEST_DATA.parents[2] / "shared" / "data"
FILES = sorted(p for p in TEST_DATA.rglob("*") if p.is_file() and p.name != "README.md")


def test_every_folder_names_its_source() -> None:
    folders = [p for p in TEST_DATA.iterdir() if p.is_dir()]
    assert len(folders) >= 8
    readme = (TEST_DATA / "README.md").read_text(encoding="utf-8")
    for folder in folders:
        assert (folder / "SOURCE.md").is_file(), folder
        assert f"`{folder.name}/`" in readme, f"{folder.name} is not described in README.md"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(TEST_DATA)))
def test_copies_match_the_shared_data(path: Path) -> None:
    original = SHARED / path.relative_to(TEST_DATA)
    if not SHARED.is_dir():
        # a clone without the project's shared folder: nothing to compare against, by design
        return
    assert original.is_file(), f"{original} is gone from the shared data"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(original.read_bytes()).hexdigest(), path
