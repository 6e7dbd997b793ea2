"""`tocsin audit counterfactual` and its arithmetic: alert-hours, clipping, protection."""

from __future__ import annotations

import csv
import gzip
import json
import re
from datetime import date
from pathlib import Path

import pytest

from tocsin.audit.counterfactual import OfficialIndex, sample_days, union_hours
from tocsin.cli import main
from tocsin.geo import RegionSet
from tocsin.scenarios.record import day_window
from tocsin.store.history import HistoryAlert

ODESA = "UA51000000000030770"
H = 3600.0


def test_union_counts_overlaps_once_and_clips() -> None:
    assert union_hours([(0, H), (0.5 * H, 2 * H), (5 * H, 6 * H)], 0, 10 * H) == 3.0
    assert union_hours([(0, 4 * H)], H, 2 * H) == 1.0
    assert union_hours([(0, H)], 2 * H, 3 * H) == 0.0
    assert union_hours([], 0, H) == 0.0


def test_an_oblast_alert_counts_for_every_hromada_in_it(ua: RegionSet) -> None:
    alerts = [HistoryAlert(ODESA, "oblast", 0, 7200),
              HistoryAlert(ua.leaves_under(ODESA)[0], "hromada", 3600, 10800)]
    index = OfficialIndex(alerts, ua)
    spans = index.spans(0, 7200)
    hromadas = ua.leaves_under(ODESA)
    assert set(spans) == set(hromadas)
    total = sum(union_hours(v, 0, 7200) for v in spans.values())
    assert total == pytest.approx(2.0 * len(hromadas))  # the overlap counts once


def test_window_runs_from_earliest_start_to_latest_end_kyiv_time() -> None:
    rows = [(2, {"time_start": "2023-03-09 01:00", "time_end": "2023-03-09 07:00"}),
            (3, {"time_start": "2023-03-09 03:00", "time_end": "2023-03-09 09:30"})]
    lo, hi = day_window(rows)
    assert (lo.isoformat(), hi.isoformat()) == ("2023-03-08T23:00:00+00:00",
                                                "2023-03-09T07:30:00+00:00")
    lo, hi = day_window([(2, {"time_start": "2023-07-01", "time_end": "2023-07-01"})])
    assert (lo.isoformat(), hi.isoformat()) == ("2023-06-30T21:00:00+00:00",
                                                "2023-07-01T21:00:00+00:00")


def test_sample_spreads_days_evenly() -> None:
    days = [date(2023, 1, d) for d in range(1, 31)]
    assert sample_days(days, 3) == [date(2023, 1, 6), date(2023, 1, 16), date(2023, 1, 26)]
    assert sample_days(days, None) == days
    assert sample_days(days, 100) == days


# official alerts (oblast, start, end): an evening in Odesa with an overlapping second alert,
# and two nights in Lviv on days the attack record has nothing for (not compared)
SIREN_ODESA = ("Odeska oblast", "2023-05-01 18:00:00+00:00", "2023-05-01 20:00:00+00:00")
SIREN_ODESA_OVERLAPPING = ("Odeska oblast", "2023-05-01 19:00:00+00:00",
                           "2023-05-01 21:00:00+00:00")
SIREN_LVIV = ("Lvivska oblast", "2023-05-05 00:00:00+00:00", "2023-05-05 01:00:00+00:00")
SIREN_LVIV_EARLIER = ("Lvivska oblast", "2023-04-01 00:00:00+00:00", "2023-04-01 01:00:00+00:00")


def _official(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    text = "oblast,raion,hromada,level,started_at,finished_at,source\r\n" + "".join(
        f"{o},,,oblast,{a},{b},official\r\n" for o, a, b in rows)
    path.write_bytes(gzip.compress(text.encode()))
    return path


def _attacks(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["time_start", "time_end", "model", "launch_place", "target",
                                "launched", "destroyed", "not_reach_goal"])
        w.writeheader()
        w.writerow({"time_start": "2023-05-01 21:00", "time_end": "2023-05-02 03:00",
                    "model": "Shahed-136/131", "launch_place": "Primorsko-Akhtarsk",
                    "target": "Odesa oblast", "launched": "6", "destroyed": "3",
                    "not_reach_goal": "1"})
        w.writerow({"time_start": "2023-05-03 02:00", "time_end": "2023-05-03 02:00",
                    "model": "Iskander-M", "launch_place": "Crimea",
                    "target": "Odesa oblast", "launched": "1", "destroyed": "0",
                    "not_reach_goal": "0"})
        # outside the official record's span: not a day of the comparison
        w.writerow({"time_start": "2025-05-01 21:00", "time_end": "2025-05-02 03:00",
                    "model": "Shahed-136/131", "launch_place": "Kursk oblast",
                    "target": "Ukraine", "launched": "2", "destroyed": "0",
                    "not_reach_goal": "0"})
    return path


def test_cli_compares_generated_days_with_the_official_alerts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _official(tmp_path / "official.csv.gz", [SIREN_ODESA, SIREN_ODESA_OVERLAPPING,
                                                           SIREN_LVIV, SIREN_LVIV_EARLIER])
    attacks = _attacks(tmp_path / "attacks.csv")
    out = tmp_path / "out"
    assert main(["audit", "counterfactual", "--attacks", str(attacks), "--history",
                 str(history), "--report-s", "120", "--out", str(out)]) == 0
    assert "2 days: official" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    for key in ("days", "official_alert_hours", "tocsin_alert_hours", "ratio", "impacts",
                "impacts_alerted", "median_lead_s"):
        assert key in s
    assert s["days"] == 2
    with (out / "days.csv").open() as fh:
        days = {r["day"]: r for r in csv.DictReader(fh)}
    assert set(days) == {"2023-05-01", "2023-05-03"}
    # 2023-05-01 21:00-03:00 Kyiv is 18:00-00:00 UTC: the two overlapping official alerts
    # cover 18:00-21:00, three hours, counted once, on every hromada of Odesa oblast
    from tocsin.geo import load_region_set

    n = len(load_region_set().leaves_under(ODESA))
    assert float(days["2023-05-01"]["official_alert_hours"]) == pytest.approx(3.0 * n, rel=1e-3)
    assert float(days["2023-05-03"]["official_alert_hours"]) == 0.0
    assert int(days["2023-05-01"]["impacts"]) + int(days["2023-05-03"]["impacts"]) == s["impacts"]
    assert s["impacts"] >= 2  # 2 drones + the missile fall (less any at sea)
    assert s["by_class"]["drone"]["impacts"] + s["by_class"]["ballistic_missile"][
        "impacts"] == s["explosions"]["impacts"]
    page = (out / "report.html").read_text()
    assert "The threats are generated, the official alerts are real" in page
    _assert_offline(page)
    assert page.count("<svg") == 3


def _assert_offline(page: str) -> None:
    assert "<script" not in page and "src=" not in page and "@import" not in page
    # matplotlib's SVG refers to its own elements (href="#…"); nothing else may be linked
    assert not re.findall(r'href="(?!#)', page)


@pytest.mark.parametrize(("args", "message"), [
    (["--history", "missing.csv"], "no such file"),
    (["--sample", "0"], "at least 1"),
    (["--from", "2023-06-01", "--to", "2023-05-01"], "before --from"),
    (["--from", "2024-01-01"], "no attack day"),
])
def test_cli_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    history = _official(tmp_path / "official.csv.gz", [
        ("Odeska oblast", "2023-04-01 18:00:00+00:00", "2023-05-10 20:00:00+00:00")])
    attacks = _attacks(tmp_path / "attacks.csv")
    base = ["audit", "counterfactual", "--attacks", str(attacks), "--out", str(tmp_path / "o")]
    if "--history" not in args:
        base += ["--history", str(history)]
    else:
        args = ["--history", str(tmp_path / args[1])]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_file_that_is_not_the_official_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["audit", "counterfactual", "--attacks", str(_attacks(tmp_path / "a.csv")),
                 "--history", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "no alert could be read" in capsys.readouterr().err


def _comparable(out: Path) -> tuple[dict[str, object], list[dict[str, str]]]:
    """summary.json and days.csv without what depends on the machine (timings, the run)."""
    s = json.loads((out / "summary.json").read_text())
    for key in ("run", "wall_s", "engine_s", "cpu_s"):
        s.pop(key)
    with (out / "days.csv").open() as fh:
        days = [{k: v for k, v in r.items() if k not in ("engine_s", "cpu_s")}
                for r in csv.DictReader(fh)]
    return s, days


def test_the_figures_are_the_same_whatever_the_number_of_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _official(tmp_path / "official.csv.gz", [SIREN_ODESA, SIREN_LVIV, SIREN_LVIV_EARLIER])
    attacks = _attacks(tmp_path / "attacks.csv")
    runs = {}
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}"
        assert main(["audit", "counterfactual", "--attacks", str(attacks), "--history",
                     str(history), "--report-s", "120", "--jobs", str(jobs),
                     "--out", str(out)]) == 0
        assert f"with {jobs} job(s)" in capsys.readouterr().out
        runs[jobs] = _comparable(out)
        progress = json.loads((out / "progress.json").read_text())
        assert progress["status"] == "finished"
        assert (progress["total_days"], progress["done_days"], progress["jobs"]) == (2, 2, jobs)
        s = json.loads((out / "summary.json").read_text())
        assert s["run"]["jobs"] == jobs and len(s["run"]["load_average_before"]) == 3
    assert runs[1] == runs[2]
    assert runs[1][0]["days"] == 2


def test_a_cruise_missile_impact_is_counted_in_the_cruise_class(ua: RegionSet) -> None:
    from tocsin.audit.counterfactual import run_day, summarise
    from tocsin.engine.policy import Policy
    from tocsin.threats import load_catalog

    rows = [(2, {"time_start": "2023-05-01 02:00", "time_end": "2023-05-01 05:00",
                 "model": "X-101/X-555", "launch_place": "Caspian Sea",
                 "target": "Odesa oblast", "launched": "2", "destroyed": "0",
                 "not_reach_goal": "0"})]
    # the official system alerted all night in Odesa oblast
    official = OfficialIndex([HistoryAlert(ODESA, "oblast", 1682888400 - 86400,
                                           1682888400 + 86400)], ua)
    day = run_day(rows, date(2023, 5, 1), official, regions=ua, catalog=load_catalog(),
                  policy=Policy(), seed=3, report_s=60)
    falls = [i for i in day.impacts if i.kind == "explosion"]
    assert [i.object for i in falls] == ["cruise_missile", "cruise_missile"]
    assert all(i.weapon == "kh-101" and i.region in ua.leaves_under(ODESA) for i in falls)
    s = summarise([day], {})
    cruise = s["by_class"]["cruise_missile"]
    assert cruise["impacts"] == 2
    silent = [i for i in s["silent_impacts"] if i["object"] == "cruise_missile"]
    assert cruise["impacts_alerted"] + len(silent) == 2
    assert s["drones_and_cruise_missiles"]["impacts"] == 2
    assert s["by_class"]["drone"]["impacts"] == 0
    # a cruise missile from the Caspian flies for hours: its path is under alert well ahead
    assert cruise["impacts_alerted"] == 2 and cruise["median_lead_s"] >= 600
    q = cruise["lead_s"]
    assert q["min"] <= q["p10"] <= q["p50"] <= q["p90"] <= q["max"]
    assert q["p50"] == pytest.approx(cruise["median_lead_s"], abs=0.1)


def test_a_long_run_is_drawn_per_month() -> None:
    from datetime import timedelta

    from tocsin.audit.cf_report import render
    from tocsin.audit.counterfactual import DayResult, summarise

    first = date(2023, 1, 1)
    results = [DayResult(day=(first + timedelta(days=k)).isoformat(), window=(0.0, H),
                         tracks=1, events=1, transitions=0, official_alert_hours=2.0,
                         tocsin_alert_hours=1.0, tocsin_alert_hours_no_pre=0.5, by_oblast={})
               for k in range(60)]
    page = render(results, summarise(results, {}))
    assert "per month" in page and "per day" not in page
    assert "per day" in render(results[:5], summarise(results[:5], {}))


def test_an_interrupted_run_resumes_with_the_days_it_had(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _official(tmp_path / "official.csv.gz", [SIREN_ODESA, SIREN_LVIV, SIREN_LVIV_EARLIER])
    base = ["audit", "counterfactual", "--attacks", str(_attacks(tmp_path / "attacks.csv")),
            "--history", str(history), "--report-s", "120", "--jobs", "1"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*base, "--out", str(whole)]) == 0
    lines = (whole / "days.jsonl").read_text().splitlines()
    assert len(lines) == 3 and "settings" in json.loads(lines[0])
    kept = json.loads(lines[1])
    # the run stopped while writing its second day
    cut.mkdir()
    (cut / "days.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    assert main([*base, "--seed", "1", "--resume", "--out", str(cut)]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main([*base, "--resume", "--out", str(cut)]) == 0
    assert _comparable(cut) == _comparable(whole)
    again = (cut / "days.jsonl").read_text().splitlines()
    assert len(again) == 3 and json.loads(again[1]) == kept  # taken, not run again
    with (cut / "days.csv").open() as fh:
        cpu = {r["day"]: float(r["cpu_s"]) for r in csv.DictReader(fh)}
    assert cpu[kept["day"]] == round(kept["cpu_s"], 2)


def test_days_are_handed_out_spread_over_the_range() -> None:
    from datetime import timedelta

    from tocsin.audit.cf_pool import spread

    days = [date(2023, 1, 1) + timedelta(days=k) for k in range(100)]
    order = spread(days)
    assert sorted(order) == days
    first = sorted(order[:4])
    assert first[0] == days[0]
    assert all((b - a).days >= 20 for a, b in zip(first, first[1:], strict=False))


def test_an_interrupted_run_says_so_in_its_progress_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tocsin.audit.cf_pool as cf_pool

    history = _official(tmp_path / "official.csv.gz", [
        ("Odeska oblast", "2023-04-01 18:00:00+00:00", "2023-05-10 20:00:00+00:00")])
    real = cf_pool.run_days

    def interrupted(*args: object, **kwargs: object) -> object:
        on_day = kwargs.pop("on_day")

        def first_then_stop(day_iso: str, result: object) -> None:
            on_day(day_iso, result)  # type: ignore[operator]
            raise KeyboardInterrupt

        return real(*args, on_day=first_then_stop, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cf_pool, "run_days", interrupted)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        main(["audit", "counterfactual", "--attacks", str(_attacks(tmp_path / "a.csv")),
              "--history", str(history), "--report-s", "120", "--jobs", "1", "--out", str(out)])
    progress = json.loads((out / "progress.json").read_text())
    assert (progress["status"], progress["done_days"], progress["total_days"]) == (
        "interrupted", 1, 2)
    assert len((out / "days.jsonl").read_text().splitlines()) == 2
    assert not (out / "summary.json").exists()
