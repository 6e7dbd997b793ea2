"""Fails the run when tests skip that are not on the documented list (`tests/allowed_skips.txt`).

A test that skips because a service, a file or a package went missing looks like a pass in a
summary line. On CI (`CI` set) or with `TOCSIN_STRICT_SKIPS=1`, any skip not matched by a line
of the allowed list turns the session red, naming each test and its reason. Skips whose reason
names `TOCSIN_LONG=1` are the documented opt-in long forms and are always allowed.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

ALLOWED = Path(__file__).resolve().parent / "allowed_skips.txt"
LONG_MARK = "TOCSIN_LONG=1"


def allowed_patterns(path: Path = ALLOWED) -> list[str]:
    """The node-id patterns of the allowed list (`pattern  # why` per line)."""
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        pattern = line.split("#", 1)[0].strip()
        if pattern:
            patterns.append(pattern)
    return patterns


def unexpected(skips: list[tuple[str, str]], patterns: list[str]) -> list[tuple[str, str]]:
    """The (node id, reason) pairs that neither match a pattern nor name the long form."""
    return [(node, reason) for node, reason in skips
            if LONG_MARK not in reason
            and not any(fnmatch.fnmatchcase(node, p) for p in patterns)]


class SkipGuard:
    def __init__(self) -> None:
        self.skips: list[tuple[str, str]] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and report.when in ("setup", "call"):
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
            self.skips.append((report.nodeid, reason))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus not in (0, 5) or session.config.option.collectonly:
            return
        bad = unexpected(self.skips, allowed_patterns())
        if not bad:
            return
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "skips not on tests/allowed_skips.txt", red=True)
            for node, reason in bad:
                reporter.write_line(f"{node}: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def strict() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("TOCSIN_STRICT_SKIPS") == "1"
