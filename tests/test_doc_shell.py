"""The shell examples of the README and docs/, run as written against a real `tocsin serve`.

Every ```sh block is either run here (with the documented address and data directory swapped
for the test server's) or listed in `NOT_RUN` with the reason; a new block that is neither fails
this test until it is classified.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(?:sh|bash|shell)\n(.*?)```", re.S)

# (file, first line of the block) -> why it is not run here
NOT_RUN = {
    ("README.md", "pip install . && tocsin serve"): "installs the package and serves forever",
    ("README.md", "pip install -e '.[test]' -c constraints/test.txt && pytest"):
    "is the test run itself",
    ("docs/audit-2022-2024.md", "tocsin history import"): "a 20-minute audit: tests/record",
    ("docs/dashboard.md", "tocsin serve --data-dir ./tocsin-data"): "serves forever",
    ("docs/deploy.md", "tocsin keys create --store"): "needs a cluster store: tests/cluster",
    ("docs/deploy.md", "TOCSIN_STORE=postgresql://"): "settings of a cluster node",
    ("docs/deploy.md", "pytest -q -s tests/cluster/test_failover.py"): "the cluster tests",
    ("docs/performance.md", "python bench/engine.py --clock cpu"): "a benchmark",
    ("docs/performance.md", "python bench/stream.py"): "a benchmark",
    ("docs/performance.md", "python bench/run_all.py"): "the benchmarks",
    ("docs/standards.md", "tocsin siren-sim --count 1000"): "runs until stopped: "
    "tests/standards/test_sirens.py runs the simulator",
    ("docs/transparency.md", "tocsin verify --url https://alerts.example.org"): "a synopsis",
    ("docs/transparency.md", "tocsin verify --data-dir /var/lib/tocsin"): "a synopsis",
    ("docs/transparency.md", "tocsin witness --url https://alerts.example.org"):
    "a synopsis: tests/record/test_witness.py runs the witness against a real server",
    ("docs/performance.md", "python bench/fanout.py"): "a benchmark",
    ("docs/performance.md", "python bench/restart.py --entries 2000000"): "a benchmark (minutes)",
    ("docs/audit-counterfactual.md", "export TOCSIN_ATTACKS="):
    "a multi-minute audit: tests/audit/test_counterfactual.py runs it on small samples",
    ("docs/scenarios.md", "export TOCSIN_ATTACKS=path/to"):
    "a placeholder path: tests/scenarios/test_record.py runs the generator",
}
RUN_ORDER = [
    ("README.md", "KEY=$(tocsin keys create --role sensor --name radar-1)"),
    ("docs/api.md", "tocsin keys create --data-dir D --role sensor --name radar-kharkiv-1"),
    ("docs/api.md", "curl -s -X POST http://127.0.0.1:8080/api/v1/events"),
    ("docs/api.md", "curl -N 'http://127.0.0.1:8080/api/v1/stream?region="),
    ("docs/transparency.md", "curl -s http://127.0.0.1:8080/api/v1/log/key"),
    ("docs/api.md", "curl -s -X POST http://127.0.0.1:8080/api/v1/subscriptions"),
    ("docs/standards.md", "openssl genpkey -algorithm ed25519"),
]
# curl as the examples use it, except that it fails on an HTTP error, and a stream (-N) is
# cut after a few seconds (exit 28 then means it streamed until cut)
PRELUDE = """set -euo pipefail
curl() {
  if [[ " $* " == *" -N "* ]]; then
    local rc=0; command curl --max-time 3 "$@" || rc=$?; [ "$rc" -eq 28 ]
  else
    command curl --fail-with-body "$@"
  fi
}
"""


def blocks() -> dict[tuple[str, str], str]:
    found = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for m in BLOCK.finditer(path.read_text(encoding="utf-8")):
            found[(str(path.relative_to(ROOT)), m.group(1).strip())] = m.group(1)
    return found


def _key(found: dict[tuple[str, str], str], name: str, first: str) -> tuple[str, str]:
    keys = [k for k in found if k[0] == name and k[1].startswith(first)]
    assert len(keys) == 1, (name, first, keys)
    return keys[0]


def test_every_shell_block_is_run_or_has_a_reason() -> None:
    found = blocks()
    classified = {_key(found, *k) for k in [*NOT_RUN, *RUN_ORDER]}
    assert set(found) - classified == set(), "a new shell example: run it here or say why not"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    for tool in ("curl", "openssl", "tocsin"):
        if shutil.which(tool) is None:
            pytest.skip(f"SKIPPED LOUDLY: `{tool}` is not on PATH")
    with servers.serving(tmp_path / "tocsin-data", tmp_path / "serve.log",
                         "--allow-private-webhooks") as base:
        yield base, tmp_path


@pytest.mark.serial
def test_the_shell_examples_run(server: tuple[str, Path]) -> None:
    base, cwd = server
    found = blocks()
    admin = servers.create_key("admin", "--data-dir", str(cwd / "tocsin-data"))
    sensor = servers.create_key("sensor", "--data-dir", str(cwd / "tocsin-data"),
                                name="radar-1")
    env = {**os.environ, "KEY": sensor, "ADMIN": admin}
    for name, first in RUN_ORDER:
        text = found[_key(found, name, first)]
        script = text.replace("http://127.0.0.1:8080", base).replace("--data-dir D ",
                                                                     "--data-dir tocsin-data ")
        if "log/proof/inclusion" in script:
            # a proof needs a signed head covering the entry: wait for the next one
            servers.eventually(lambda: httpx.get(base + "/api/v1/log/sth").status_code == 200
                               and httpx.get(base + "/api/v1/log/sth").json()["tree_size"]
                               > 41, "a signed tree head over entry 41", timeout=60)
        done = subprocess.run(["bash", "-c", PRELUDE + script], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (name, first, done.stdout[-2000:], done.stderr[-2000:])
        if first.startswith("KEY="):
            assert '"accepted"' in done.stdout and ": connected" in done.stdout
    assert (cwd / "tocsin-data" / "cap-signing.key").is_file()
