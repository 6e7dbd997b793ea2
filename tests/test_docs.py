"""The generated docs are up to date, and every policy value is documented and explained."""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from dataclasses import fields
from pathlib import Path
from types import ModuleType

import pytest

from tocsin.engine.policy import POLICY_FIELDS, Policy
from tocsin.engine.states import EVENT_TRIGGERED_TRANSITIONS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_docs", module)
    spec.loader.exec_module(module)
    return module


gen_docs = _gen_docs()


@functools.cache
def _generated() -> dict[Path, str]:
    result: dict[Path, str] = gen_docs.outputs()
    return result


@pytest.mark.parametrize("name", ["policy.md", "cli.md", "engine.md"])
def test_generated_docs_are_up_to_date(name: str) -> None:
    path = DOCS / name
    want = _generated()[path]
    assert path.read_text(encoding="utf-8") == want, (
        f"docs/{name} is stale: run `python scripts/gen_docs.py` and commit the result"
    )


def test_every_policy_field_has_help_and_a_row() -> None:
    names = [f.name for f in fields(Policy)]
    assert set(POLICY_FIELDS) == set(names)
    text = (DOCS / "policy.md").read_text(encoding="utf-8")
    for name in names:
        assert re.search(rf"^\| `{name}` \|", text, re.M), name
        assert POLICY_FIELDS[name] in text
    for profile in Policy().horizons:
        assert f"| `{profile}` |" in text, profile


def test_engine_page_explains_every_policy_value() -> None:
    text = (DOCS / "engine.md").read_text(encoding="utf-8")
    for f in fields(Policy):
        assert f.name in text, f.name


def test_state_diagram_shows_every_transition_of_the_table() -> None:
    text = (DOCS / "engine.md").read_text(encoding="utf-8")
    for (phase, trigger), (nxt, kind) in EVENT_TRIGGERED_TRANSITIONS.items():
        if phase is nxt and kind is None:
            continue
        assert f"{phase.name} --> {nxt.name}: {trigger.value}" in text


def test_cli_page_has_every_command() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for command in ("simulate", "replay", "regions list", "regions locate", "regions check"):
        assert f"## `tocsin {command}`" in text
        assert f"usage: tocsin {command}" in text


def test_performance_page_says_how_to_reproduce() -> None:
    text = (DOCS / "performance.md").read_text(encoding="utf-8")
    assert "python bench/engine.py" in text


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` runs README.md's test command, word for word (bar pip's `-q` and pytest's)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = next(b.strip() for b in _sh_blocks(readme) if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines() if "pytest" in line and "pip" in line]
    assert len(lines) == 1, lines
    assert lines[0].replace("pip install -q ", "pip install ").replace("pytest -q", "pytest") \
        == command


def test_readme_run_command_is_one_line() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install . && tocsin serve" in _sh_blocks(readme)[0]
