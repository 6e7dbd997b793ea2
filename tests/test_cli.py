"""The command line, run in-process: exit codes, messages, files, and a tampered log."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tocsin.cli import build_parser, main

KYIV_CITY = "UA80000000000093317"
KHARKIV_HROMADA = "UA63120270000028556"


def _event(n: int, etype: str, t: str, **kw: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"id": f"c-{n}", "type": etype, "time": f"2026-11-25T01:{t}Z",
                          "source": "test"}
    ev.update(kw)
    return ev


GOOD = [
    _event(1, "tick", "00:00"),
    _event(2, "detection", "00:10", track="D1", object="drone", weapon="shahed-136",
           position={"lat": 50.25, "lon": 36.70}, heading_deg=230, speed_kmh=180),
    _event(3, "operator_alert", "00:20", regions=[KHARKIV_HROMADA],
           alert_type="artillery_shelling", action="raise", operator="duty"),
    _event(4, "track_end", "01:00", track="D1", reason="intercepted"),
    _event(5, "impact", "01:30", position={"lat": 49.84, "lon": 24.03}, kind="explosion"),
]


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    return _write(tmp_path / "good.jsonl", GOOD)


# --- simulate: bad input ------------------------------------------------------------------------


def test_invalid_field_exits_2_naming_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = dict(GOOD[1], position={"lat": 95.0, "lon": 36.7})
    path = _write(tmp_path / "bad.jsonl", [GOOD[0], bad, GOOD[2]])
    assert main(["simulate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "line 2: position.lat: out of range: 95.0 (expected -90 <= position.lat <= 90)" in err
    assert "nothing was applied" in err


def test_invalid_input_writes_no_out_file_and_no_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = dict(GOOD[2], regions=["UA-NOWHERE"], alert_type="tornado")
    path = _write(tmp_path / "bad.jsonl", [*GOOD[:2], bad])
    out_file, data_dir = tmp_path / "out.jsonl", tmp_path / "data"
    code = main(["simulate", str(path), "--out", str(out_file), "--data-dir", str(data_dir)])
    assert code == 2
    err = capsys.readouterr().err
    assert "line 3: regions[0]: unknown region 'UA-NOWHERE'" in err
    assert "line 3: alert_type: must be one of" in err
    assert not out_file.exists() or out_file.stat().st_size == 0
    assert not (data_dir / "tocsin.db").exists()


def test_invalid_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "bad.jsonl", [GOOD[0], GOOD[1], '{"id": "x", "type": tick}'])
    assert main(["simulate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "line 3: invalid JSON: Expecting value" in err


def test_every_bad_line_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[Any] = [GOOD[0], "not json", dict(GOOD[1], heading_deg=360.5), "", GOOD[3]]
    lines.append(_event(9, "detection", "30:00", track="D2", object="drone",
                        position={"lat": 50.0, "lon": 36.0}))  # 29 min past the last tick
    path = _write(tmp_path / "bad.jsonl", lines)
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 2: invalid JSON" in err
    assert "line 3: heading_deg: out of range: 360.5" in err
    assert "line 6: time: 1800 s ahead of the clock; the limit is 300 s" in err
    assert "3 invalid line(s)" in err


def test_missing_file_and_unknown_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", str(tmp_path / "nope.jsonl")]) == 2
    assert main(["simulate", "--scenario", "no-such-night"]) == 2
    err = capsys.readouterr().err
    assert "no bundled scenario 'no-such-night'; have: night-wave" in err


# --- simulate, then replay ----------------------------------------------------------------------


def _simulate_into(good: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["simulate", str(good), "--data-dir", str(data_dir)]) == 0
    return capsys.readouterr().out


def test_stdout_and_out_file_agree(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", str(good)]) == 0
    printed = capsys.readouterr().out
    assert main(["simulate", str(good), "--out", str(tmp_path / "out.jsonl")]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == printed
    kinds = {json.loads(line)["type"] for line in printed.splitlines()}
    assert kinds == {"alert_started", "alert_updated", "alert_ended", "silent_impact"}


def test_simulate_then_replay(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    printed = _simulate_into(good, data_dir, capsys)
    assert main(["replay", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    entries = len(GOOD) + len(printed.splitlines())
    # the drain's own ticks are logged too, so the log is longer than input plus output
    assert out.startswith("replayed ") and out.rstrip().endswith("every transition reproduced")
    assert int(out.split()[1]) > entries
    # a data directory that already holds a log is refused
    assert main(["simulate", str(good), "--data-dir", str(data_dir)]) == 2
    assert "already holds a log" in capsys.readouterr().err


def test_replay_without_a_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--data-dir", str(tmp_path)]) == 2
    assert "no log here" in capsys.readouterr().err


def _tamper(db: Path, sql: str, *params: Any) -> None:
    con = sqlite3.connect(db)
    try:
        # the append-only triggers stop honest mistakes; an attacker with the file drops them
        con.execute("DROP TRIGGER log_no_update")
        con.execute("DROP TRIGGER log_no_delete")
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()


def _a_transition(db: Path, kind: str) -> tuple[int, str]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT seq, body FROM log WHERE kind = 'transition' ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    seq, body = next((s, b) for s, b in rows if json.loads(b)["type"] == kind)
    return int(seq), str(body)


def test_replay_names_the_first_rewritten_transition(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    _simulate_into(good, data_dir, capsys)
    db = data_dir / "tocsin.db"
    seq, body = _a_transition(db, "alert_started")
    forged = body.replace('"severity":"', '"severity":"x', 1)
    assert forged != body
    _tamper(db, "UPDATE log SET body = ? WHERE seq = ?", forged, seq)
    assert main(["replay", "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert f"replay differs from the log at seq {seq}" in err
    assert f"logged:   {forged}" in err and f"replayed: {body}" in err


def test_replay_names_a_deleted_transition(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    _simulate_into(good, data_dir, capsys)
    db = data_dir / "tocsin.db"
    seq, _ = _a_transition(db, "silent_impact")
    _tamper(db, "DELETE FROM log WHERE seq = ?", seq)
    assert main(["replay", "--data-dir", str(data_dir)]) == 1
    assert f"the log jumps from seq {seq - 1} to {seq + 1}" in capsys.readouterr().err


def test_replay_names_a_dropped_tail(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    _simulate_into(good, data_dir, capsys)
    db = data_dir / "tocsin.db"
    con = sqlite3.connect(db)
    (last,) = con.execute("SELECT MAX(seq) FROM log").fetchone()
    con.close()
    _tamper(db, "DELETE FROM log WHERE seq = ?", last)
    assert main(["replay", "--data-dir", str(data_dir)]) == 1
    assert f"replay differs from the log at seq {last}" in capsys.readouterr().err


# --- regions ------------------------------------------------------------------------------------


def test_regions_list_oblasts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regions", "list", "--set", "ua-oblasts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 27
    assert f"{KYIV_CITY}\toblast\t-\tKyiv" in lines


def test_regions_list_by_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regions", "list", "--set", "ua-raions", "--level", "raion"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 139


def test_regions_locate_kyiv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regions", "locate", "50.45", "30.52"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["hromada", "raion", "oblast"]
    assert lines[-1].split("\t")[1:3] == [KYIV_CITY, "Kyiv"]


def test_regions_locate_outside_and_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regions", "locate", "52.23", "21.01"]) == 1
    assert "is in no region of ua-hromadas" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["regions", "locate", "95", "30"])
    assert info.value.code == 2
    assert "latitude out of range: 95" in capsys.readouterr().err


# --- help ---------------------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(build_parser())


def test_the_commands_are_all_found() -> None:
    assert {("simulate",), ("replay",), ("regions", "list"), ("regions", "locate")} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "tocsin")
def test_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    # `audit counterfactual` is parsed as `audit-counterfactual` (`audit` itself takes options)
    shown = " ".join(path).replace("audit-counterfactual", "audit counterfactual")
    assert out.startswith(f"usage: tocsin {shown}".rstrip())


def test_a_terminal_progress_bar_is_drawn_in_a_thousand_steps_not_one_per_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # rich takes a lock per update: `replay` reports every entry, which on a 250,000-entry log
    # cost over a second when each report redrew the bar
    import sys

    from rich.progress import Progress

    from tocsin.cli.common import progress

    shown: list[float] = []
    original = Progress.update

    def counting(self: Progress, task: Any, **kwargs: Any) -> None:
        shown.append(kwargs["completed"])
        original(self, task, **kwargs)

    monkeypatch.setattr(Progress, "update", counting)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    total = 250_000
    with progress(total, "replay") as advance:
        for n in range(1, total + 1):
            advance(n)
    assert 900 <= len(shown) <= 1001
    assert shown[-1] == total and shown == sorted(shown)
