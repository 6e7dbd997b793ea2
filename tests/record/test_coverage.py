"""The impact audit: attack targets, report times, coverage with tolerance, lead times, logged
impacts, and `tocsin audit` end to end (on the real record too)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.record.conftest import LVIV, impact, operator, raw
from tocsin.audit.coverage import (
    OBLASTS,
    AlertSpan,
    AttackCase,
    ImpactAuditor,
    attack_cases,
    cover,
    oblasts_in_target,
    parse_report_time,
    summarise_cases,
)
from tocsin.cli import main
from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import RegionSet
from tocsin.ledger import Ledger
from tocsin.store import MemoryLog
from tocsin.store.history import HistoryAlert, HistoryStore
from tocsin.threats import load_catalog

ODESA = OBLASTS["Odesa"]
KYIV_OBLAST = OBLASTS["Kyiv"]
DNIPRO = OBLASTS["Dnipropetrovsk"]
MYKOLAIV = OBLASTS["Mykolaiv"]


@pytest.mark.parametrize(("target", "expected"), [
    ("Odesa oblast", [ODESA]),
    ("Dnipropetrovsk oblast, Dnipro Raion", [DNIPRO]),
    ("Kyiv oblast (south)", [KYIV_OBLAST]),
    ("Odesa oblast and Mykolaiv oblast", [ODESA, MYKOLAIV]),
    ("Dnipropetrovsk oblast, Dnipro Raion and Dnipropetrovsk oblast, Kryvyi Rih Raion", [DNIPRO]),
    ("Kyiv oblast and Starokostiantyniv", [KYIV_OBLAST]),
    ("Sumy oblast and Kursk oblast", [OBLASTS["Sumy"]]),
    ("Kursk oblast", []),
    ("Kyiv", []),  # the city, not "<Name> oblast"
    ("Ukraine", []),
    ("south", []),
    ("", []),
])
def test_targets_name_oblasts(target: str, expected: list[str]) -> None:
    assert oblasts_in_target(target) == expected


def test_report_times_need_a_time_of_day_in_kyiv() -> None:
    summer = parse_report_time("2023-07-01 3:30 ")
    assert summer == datetime(2023, 7, 1, 0, 30, tzinfo=UTC)  # EEST, UTC+3
    assert parse_report_time("2023-01-01 19:00") == datetime(2023, 1, 1, 17, 0, tzinfo=UTC)
    assert parse_report_time("2023-01-01") is None
    assert parse_report_time("2023-02-30 10:00") is None
    assert parse_report_time("01.01.2023 10:00") is None


def _row(start: str, end: str, target: str, model: str = "Shahed-136/131") -> dict[str, str]:
    return {"time_start": start, "time_end": end, "target": target, "model": model}


def test_attack_rows_become_one_case_per_oblast_within_the_history_span() -> None:
    span = (datetime(2023, 1, 1, tzinfo=UTC).timestamp(),
            datetime(2023, 12, 31, tzinfo=UTC).timestamp())
    rows = [
        (2, _row("2023-03-01 19:00", "2023-03-02 07:00", "Odesa oblast and Mykolaiv oblast")),
        (3, _row("2023-03-01", "2023-03-02", "Odesa oblast")),
        (4, _row("2023-03-02 07:00", "2023-03-01 19:00", "Odesa oblast")),
        (5, _row("2022-03-01 19:00", "2022-03-02 07:00", "Odesa oblast")),
        (6, _row("2023-03-01 19:00", "2023-03-02 07:00", "Ukraine")),
    ]
    cases, skipped = attack_cases(rows, span)
    assert [(c.line, c.oblast) for c in cases] == [(2, ODESA), (2, MYKOLAIV)]
    assert cases[0].start_s == datetime(2023, 3, 1, 17, tzinfo=UTC).timestamp()
    assert skipped == Counter({"no time of day": 1, "end before start": 1,
                               "outside the imported history": 1,
                               "no Ukrainian oblast in target": 1})
    assert attack_cases(rows, None)[0] == []


def _case(start: float, end: float, oblast: str = ODESA) -> AttackCase:
    return AttackCase(1, oblast, start, end, "2023-03-01 19:00", "2023-03-01 20:00", "m", "t")


def test_a_case_is_covered_by_any_alert_in_its_oblast_within_the_tolerance() -> None:
    hromada = ODESA[:4] + "02" + "0" * 13  # any KATOTTG code of the oblast counts
    alerts = [
        AlertSpan(ODESA, 1000, 2000),
        AlertSpan(hromada, 500, 1200),
        AlertSpan(MYKOLAIV, 0, 10_000),
    ]
    results = cover([
        _case(1100, 1500),  # inside both Odesa alerts: lead from the earliest start
        _case(2500, 2600),  # 500 s after the end: inside a 600 s tolerance
        _case(2601, 2700),  # 601 s after: not
        _case(400, 450),  # ends 50 s before the hromada alert: covered, negative lead
        _case(5000, 6000, DNIPRO),  # no alert in that oblast at all
    ], alerts, 600)
    assert [(r.covered, r.lead_s, r.alerts) for r in results] == [
        (True, 600, 2), (True, 1500, 1), (False, None, 0), (True, -100, 2), (False, None, 0)]
    assert results[0].first_alert_region == hromada
    summary = summarise_cases(results, 600)
    assert summary["attacks_considered"] == 5 and summary["covered"] == 3
    assert summary["coverage"] == pytest.approx(0.6) and summary["median_lead_s"] == 600
    assert summary["tolerance_s"] == 600 and summary["negative_leads"] == 1
    assert summary["by_oblast"][ODESA]["cases"] == 4


def test_impacts_are_judged_on_the_alerts_in_force_when_they_were_logged(
    oblasts: RegionSet,
) -> None:
    log = MemoryLog()
    ledger = Ledger(log, lambda: Engine(oblasts, load_catalog(), Policy()))
    ledger.submit([raw("tick", 0), operator("raise", LVIV, 10)])
    ledger.submit([impact(70, 49.84, 24.03), impact(71, 46.48, 30.72), impact(72, 0.0, 0.0)])
    ledger.submit([operator("clear", LVIV, 80), impact(90, 49.84, 24.03)])
    auditor = ImpactAuditor(oblasts.locate)
    auditor.feed(log.read(1, 6))
    auditor.feed(log.read())  # again and further: nothing is counted twice
    got = [(r.region, r.covered, r.silent, r.lead_s) for r in auditor.results]
    assert got == [(LVIV, True, False, 60.0), (ODESA, False, True, None),
                   (None, False, False, None), (LVIV, False, True, None)]
    silent_transitions = [json.loads(e.body)["cause_seq"] for e in log.read()
                          if e.kind == "transition" and '"silent_impact"' in e.body]
    assert silent_transitions == [r.seq for r in auditor.results if r.silent]


def _history(data: Path) -> None:
    store = HistoryStore(data / "tocsin.db")
    t = int(datetime(2023, 3, 1, 16, 0, tzinfo=UTC).timestamp())
    store.add([HistoryAlert(ODESA, "oblast", t, t + 7200),
               HistoryAlert(MYKOLAIV, "oblast", t + 86_400, t + 90_000)])
    store.close()


def test_audit_writes_summary_cases_and_a_self_contained_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _history(data)
    attacks = tmp_path / "attacks.csv"
    with attacks.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["time_start", "time_end", "model", "target"])
        writer.writeheader()
        writer.writerow(_row("2023-03-01 19:00", "2023-03-01 19:30",
                             "Odesa oblast and Mykolaiv oblast"))
        writer.writerow(_row("2023-03-01", "2023-03-01", "Odesa oblast"))
    assert main(["audit", "--data-dir", str(data), "--attacks", str(attacks),
                 "--tolerance", "30m", "--out", str(out)]) == 0
    assert "attacks: 2 cases, 1 covered (50.0 %), median lead 60 min" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert {k: summary[k] for k in ("attacks_considered", "covered", "coverage",
                                    "median_lead_s", "tolerance_s")} == {
        "attacks_considered": 2, "covered": 1, "coverage": 0.5, "median_lead_s": 3600.0,
        "tolerance_s": 1800.0}
    assert summary["attack_table"]["rows_skipped"] == {"no time of day": 1}
    with (out / "cases.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["kind"], r["ref"], r["name"], r["covered"], r["lead_s"]) for r in rows] == [
        ("attack", "2", "Odesa", "1", "3600"), ("attack", "2", "Mykolaiv", "0", "")]
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2 and "<script" not in page
    assert "src=" not in page and "@import" not in page
    # matplotlib's SVG refers to its own elements (href="#…"); nothing else may be linked
    assert not re.findall(r'href="(?!#)', page)
    assert (out / "lead_times.svg").read_text().startswith("<svg")


def test_audit_without_attacks_reports_the_logs_impacts(
    tmp_path: Path, oblasts: RegionSet, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.record.conftest import write_log

    rec = write_log(tmp_path / "data", oblasts, rounds=3)
    assert main(["audit", "--data-dir", str(rec.data_dir), "--out", str(tmp_path / "o")]) == 0
    assert "impacts in the log: 6 (2 under alert, 4 silent)" in capsys.readouterr().out
    with (tmp_path / "o" / "cases.csv").open() as fh:
        kinds = Counter(r["kind"] for r in csv.DictReader(fh))
    assert kinds == {"impact": 6}
    assert main(["audit", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 3


def test_the_2022_2024_audit_figures(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The figures `docs/audit-2022-2024.md` publishes, from the real record and attack table."""
    data, out = tmp_path / "data", tmp_path / "out"
    record = shared_data / "air_raid_sirens" / "official_data_en.csv.gz"
    attacks = shared_data / "missile_attacks" / "missile_attacks_daily.csv.gz"
    assert main(["history", "import", str(record), "--data-dir", str(data)]) == 0
    assert main(["audit", "--data-dir", str(data), "--attacks", str(attacks), "--tolerance",
                 "30m", "--out", str(out)]) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attacks_considered"] == 135 and summary["covered"] == 109
    assert summary["median_lead_s"] == 2233.0
