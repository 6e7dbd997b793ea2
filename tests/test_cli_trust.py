"""`tocsin simulate` checks a whole file before it writes anything (and keeps its clock)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import GOOD, _event, _write
from tocsin.cli import main
from tocsin.store import open_log


def _logged(data: Path) -> int:
    log = open_log(data)
    try:
        return log.max_seq()
    finally:
        log.close()


def test_a_lone_surrogate_on_line_2_commits_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    # json.dumps writes the escape `\ud800`, which parses to a lone surrogate
    _write(path, [GOOD[1], dict(GOOD[4], id="\ud800"), GOOD[2]])
    assert '"\\ud800"' in path.read_text()
    data = tmp_path / "data"
    assert main(["simulate", str(path), "--data-dir", str(data)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "line 2:" in err and "I-JSON" in err
    assert _logged(data) == 0


def test_an_id_repeated_with_another_body_commits_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "dup.jsonl",
                  [*GOOD, dict(GOOD[2], note="changed"), dict(GOOD[1])])
    data = tmp_path / "data"
    assert main(["simulate", str(path), "--data-dir", str(data)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "line 6:" in err and "sha256:" in err and "another body" in err
    assert "line 7" not in err.split("nothing was applied")[0].replace(
        "line 7: duplicate", "")  # line 7 repeats line 2 exactly: not an error
    assert _logged(data) == 0


def test_hostile_lines_are_line_errors_not_crashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = json.dumps(GOOD[1])[:-1] + ', "ext": ' + "[" * 900 + "]" * 900 + "}"
    huge = json.dumps(GOOD[1]).replace('"lat": 50.25', '"lat": ' + "1" * 5000)
    old = dict(GOOD[4], time="0001-01-01T00:00:00+01:00")
    path = _write(tmp_path / "hostile.jsonl", [GOOD[0], deep, huge, old])
    data = tmp_path / "data"
    assert main(["simulate", str(path), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "line 2: nested deeper than 32" in err
    assert "line 3: a number of 5000 characters" in err
    assert "line 4: time: outside the years 1970-9999" in err
    assert _logged(data) == 0


def test_simulate_keeps_its_clock_the_latest_event_time(tmp_path: Path) -> None:
    # No server ticks in a file: an event dated after the others moves the clock to its time,
    # as it always did (there is no wall clock to hold it back), firing the timers due before.
    lines = [GOOD[1], _event(9, "impact", "04:00", position={"lat": 0.0, "lon": 0.0},
                                kind="explosion")]
    path = _write(tmp_path / "ahead.jsonl", lines)
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "tocsin", "simulate", str(path),
                           "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    log = open_log(data)
    try:
        (impact,) = [e.seq for e in log.read() if e.event_id == "c-9"]
    finally:
        log.close()
    fired = [json.loads(line) for line in done.stdout.splitlines()]
    fired = [t for t in fired if t["cause_seq"] == impact]
    assert fired and all("2026-11-25T01:00:10Z" < t["time"] <= "2026-11-25T01:04:00Z"
                         for t in fired)
    assert "after the server clock" not in done.stderr
