"""The after-action report: `tocsin report` on a data directory and GET /api/v1/audit/report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tocsin.cli import main


def page_is_offline(page: str) -> None:
    assert "<script" not in page and "src=" not in page and "@import" not in page
    assert not re.findall(r'href="(?!#)', page)


def test_cli_reports_a_simulated_night(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["simulate", "--scenario", "night-wave", "--data-dir", str(data),
                 "--out", str(tmp_path / "t.jsonl")]) == 0
    transitions = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    silent = sum(t["type"] == "silent_impact" for t in transitions)
    out = tmp_path / "report"
    assert main(["report", "--data-dir", str(data), "--from", "2026-11-25T20:00:00Z",
                 "--to", "2026-11-26", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["silent_impacts"] == silent
    assert s["impacts"] >= s["impacts_alerted"] + s["silent_impacts"]
    assert s["alert_hours_by_region"], "the night raised alerts somewhere"
    assert s["events"] > 0 and s["transitions"] == len(transitions)
    page = (out / "report.html").read_text()
    page_is_offline(page)
    assert "Timeline" in page
    # an empty window: nothing happened, and the report says so
    empty = tmp_path / "empty"
    assert main(["report", "--data-dir", str(data), "--from", "2020-01-01",
                 "--to", "2020-01-02", "--out", str(empty)]) == 0
    s = json.loads((empty / "summary.json").read_text())
    assert s["impacts"] == 0 and s["transitions"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-11-26", "--to", "2026-11-25"], "--to must be after --from"),
])
def test_cli_refuses_bad_windows_and_missing_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    data = tmp_path / "data"
    assert main(["simulate", "--scenario", "night-wave", "--data-dir", str(data),
                 "--out", str(tmp_path / "t.jsonl")]) == 0
    assert main(["report", "--data-dir", str(data), *args, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert main(["report", "--data-dir", str(tmp_path / "none"), "--from", "2026-11-25",
                 "--to", "2026-11-26", "--out", str(tmp_path / "o")]) == 2
    assert "no log here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--data-dir", str(data), "--from", "yesterday", "--to", "2026-11-26",
              "--out", str(tmp_path / "o")])
