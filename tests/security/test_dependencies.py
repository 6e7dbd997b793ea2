"""Known vulnerabilities in what tocsin runs on: `pip-audit` over its runtime dependencies.

The audit covers tocsin's installed runtime dependency closure (read from the installed
metadata, pinned to the installed versions), not the whole environment. pip-audit needs a
vulnerability database: PyPI's JSON API (`--vulnerability-service pypi`) or OSV. Where neither
can be reached (a mirror that serves only the simple index, no route to OSV) the test is
skipped loudly with that reason; an audit in which any package could not be checked counts as
a failure, never as a pass.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

SERVICES = {
    # the per-release JSON document pip-audit reads (a mirror may serve the project's only)
    "pypi": "https://pypi.org/pypi/pip/24.0/json",
    "osv": "https://api.osv.dev/v1/vulns/PYSEC-2021-9",
}


def reachable(url: str) -> str | None:
    """None if `url` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return None if r.status == 200 else f"HTTP {r.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def runtime_closure(root: str = "tocsin") -> dict[str, str]:
    """name -> installed version of every runtime dependency of `root`, recursively."""
    out: dict[str, str] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an optional extra, or another platform's
            dep = req.name.lower().replace("_", "-")
            if dep and dep not in out:
                try:
                    out[dep] = metadata.version(dep)
                except metadata.PackageNotFoundError:
                    continue
                todo.append(dep)
    return out


def test_runtime_dependencies_have_no_known_vulnerabilities(tmp_path: Path) -> None:
    if shutil.which("pip-audit") is None:
        pytest.skip("SKIPPED LOUDLY: pip-audit is not installed (pip install pip-audit)")
    problems = {name: reachable(url) for name, url in SERVICES.items()}
    service = next((name for name, why in problems.items() if why is None), None)
    if service is None:
        pytest.skip("SKIPPED LOUDLY: no vulnerability database reachable from here "
                    + "; ".join(f"{n}: {w}" for n, w in problems.items())
                    + " (run `pip-audit -r` where PyPI's JSON API or OSV is reachable)")
    deps = runtime_closure()
    assert {"fastapi", "shapely", "cryptography"} <= set(deps)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("".join(f"{n}=={v}\n" for n, v in sorted(deps.items())), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pip_audit", "-r", str(reqs), "--no-deps", "--disable-pip",
         "--vulnerability-service", service, "--format", "json", "--progress-spinner", "off"],
        capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(done.stdout or "{}")
    found = [(d["name"], d["version"], [v["id"] for v in d.get("vulns", [])])
             for d in report.get("dependencies", []) if d.get("vulns")]
    skipped = [d["name"] for d in report.get("dependencies", []) if d.get("skip_reason")]
    assert not skipped, f"pip-audit could not check: {skipped}"
    assert not found, f"known vulnerabilities: {found}"
    assert done.returncode == 0, done.stderr
