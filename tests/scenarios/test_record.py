"""`tocsin scenario record`: the record's days as event files, through the real CLI."""

from __future__ import annotations

import gzip
import json
import os
import random
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tocsin.audit.report import read_attacks
from tocsin.cli import main
from tocsin.geo import RegionSet
from tocsin.model import parse_event, parse_time
from tocsin.scenarios.places import launch_places, resolve_launch, resolve_target, split_places
from tocsin.scenarios.record import RecordError, build_day, day_rows, record_days
from tocsin.threats import load_catalog

FIRST, LAST = date(2022, 9, 28), date(2026, 6, 6)


@pytest.fixture(scope="module")
def attacks(shared_data: Path) -> Path:
    return shared_data / "missile_attacks" / "missile_attacks_daily.csv.gz"


@pytest.fixture(scope="module")
def rows(attacks: Path) -> list[tuple[int, dict[str, str]]]:
    return list(read_attacks(attacks))


def _record(tmp_path: Path, attacks: Path, name: str, *extra: str) -> tuple[int, Path]:
    out = tmp_path / name
    code = main(["scenario", "record", "--attacks", str(attacks), "--out", str(out), *extra])
    return code, out


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, attacks: Path) -> None:
    a = _record(tmp_path, attacks, "a.jsonl", "--day", "2023-03-09", "--seed", "7")
    b = _record(tmp_path, attacks, "b.jsonl", "--day", "2023-03-09", "--seed", "7")
    c = _record(tmp_path, attacks, "c.jsonl", "--day", "2023-03-09", "--seed", "8")
    assert a[0] == b[0] == c[0] == 0
    assert a[1].read_bytes() == b[1].read_bytes()
    assert a[1].read_bytes() != c[1].read_bytes()


def test_summary_is_printed_against_the_record(
    tmp_path: Path, attacks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out = _record(tmp_path, attacks, "d.jsonl", "--day", "2024-12-25")
    assert code == 0
    text = capsys.readouterr().out
    assert "The record" in text and "Generated tracks" in text
    assert "launch places not in the gazetteer" in text


def _check_day(rows: list[tuple[int, dict[str, str]]], day: date, ua: RegionSet,
               report_s: float = 600.0) -> None:
    """A built day agrees with the record's figures and is a valid, time-ordered event file."""
    result = build_day(rows, day, catalog=CATALOG, regions=ua, report_s=report_s)
    s = result.summary
    launched = sum(v["launched"] for v in s["record"].values())
    destroyed = sum(v["destroyed"] for v in s["record"].values())
    lost = sum(v["not_reach_goal"] for v in s["record"].values())
    assert s["tracks"] == launched
    assert s["outcomes"] == {"destroyed": destroyed, "lost": lost,
                             "impact": launched - destroyed - lost}
    assert s["impacts"]["explosion"] == launched - destroyed - lost
    times = [parse_time(e["time"]) for e in result.events]
    assert times == sorted(times)
    assert len({e["id"] for e in result.events}) == len(result.events)
    first_seen: dict[str, dict[str, Any]] = {}
    for raw in result.events:
        parse_event(raw)  # every event is one the engine accepts
        if raw["type"] == "detection":
            first_seen.setdefault(raw["track"], raw)
    for raw in first_seen.values():
        if raw["object"] == "ballistic_missile":
            assert "heading_deg" not in raw and raw["phase"] == "launch"
    threats = {t for t in first_seen if not t.startswith("I")}
    ended = Counter(e["reason"] for e in result.events if e["type"] == "track_end"
                    and not e["track"].startswith("I"))
    assert ended["intercepted"] == destroyed and ended["lost"] == lost
    assert len(threats) == launched


CATALOG = load_catalog()


def _days_to_check(rows: list[tuple[int, dict[str, str]]]) -> list[date]:
    days = record_days(rows)
    if os.environ.get("TOCSIN_LONG") == "1":
        return days
    # a fixed spread plus the ends and the largest day; TOCSIN_LONG=1 builds every day
    by_size = Counter[date]()
    for _n, r in rows:
        try:
            by_size[date.fromisoformat(r["time_start"][:10])] += int(float(r["launched"] or 0))
        except ValueError:
            continue
    picks = {days[0], days[-1], by_size.most_common(1)[0][0]}
    picks.update(random.Random(17).sample(days, 6))
    return sorted(picks)


def test_the_record_spans_the_goal(rows: list[tuple[int, dict[str, str]]]) -> None:
    days = record_days(rows)
    assert days[0] == FIRST and days[-1] == LAST


def test_record_days_build(rows: list[tuple[int, dict[str, str]]], ua: RegionSet) -> None:
    for day in _days_to_check(rows):
        _check_day(rows, day, ua)


def test_every_launch_place_of_the_record_is_in_the_gazetteer(
    rows: list[tuple[int, dict[str, str]]]
) -> None:
    missing = Counter[str]()
    for _n, r in rows:
        for place in split_places(r["launch_place"]):
            if resolve_launch(place) is None:
                missing[place] += 1
    assert not missing


def test_gazetteer_rows_have_coordinates_and_a_source() -> None:
    for place in launch_places().values():
        assert -90 <= place.lat <= 90 and -180 <= place.lon <= 180
        assert place.source and place.basis


def test_unknown_and_blank_places_fall_back_and_are_counted(
    rows: list[tuple[int, dict[str, str]]], ua: RegionSet
) -> None:
    fake = [(2, {"time_start": "2023-05-01 20:00", "time_end": "2023-05-02 06:00",
                 "model": "Shahed-136/131", "launch_place": "Atlantis and ",
                 "target": "Odesa oblast", "launched": "4", "destroyed": "2",
                 "not_reach_goal": "1"}),
            (3, {"time_start": "2023-05-01 20:00", "time_end": "2023-05-02 06:00",
                 "model": "Kalibr", "launch_place": "", "target": "south",
                 "launched": "2.0", "destroyed": "", "not_reach_goal": ""})]
    s = build_day(fake, date(2023, 5, 1), catalog=CATALOG, regions=ua).summary
    assert s["unknown_places"] == {"Atlantis": 4, "(blank)": 2}
    assert s["outcomes"] == {"destroyed": 2, "lost": 1, "impact": 3}


def test_targets_are_sampled_inside_the_named_area(ua: RegionSet) -> None:
    fake = [(2, {"time_start": "2024-02-01 01:00", "time_end": "2024-02-01 05:00",
                 "model": "Shahed-136/131", "launch_place": "Primorsko-Akhtarsk",
                 "target": "Dnipropetrovsk oblast, Kryvyi Rih Raion", "launched": "30",
                 "destroyed": "0", "not_reach_goal": "0"})]
    result = build_day(fake, date(2024, 2, 1), catalog=CATALOG, regions=ua, seed=3)
    raion = resolve_target("Dnipropetrovsk oblast, Kryvyi Rih Raion", ua)[0]
    assert raion.leaves and ua.get(ua.get(raion.leaves[0]).parent or "").name == "Kryvorizkyi"
    impacts = [e for e in result.events if e["type"] == "impact"]
    assert len(impacts) == 30
    for e in impacts:
        leaf = ua.locate(e["position"]["lat"], e["position"]["lon"])
        assert leaf in raion.leaves


def test_south_is_the_four_southern_oblasts(ua: RegionSet) -> None:
    (area,) = resolve_target("south", ua)
    tops = {ua.chain(leaf)[-1].name for leaf in area.leaves}
    assert tops == {"Odeska", "Mykolaivska", "Khersonska", "Zaporizka"}


def test_a_day_with_no_rows_is_refused(rows: list[tuple[int, dict[str, str]]],
                                       ua: RegionSet) -> None:
    assert not day_rows(rows, date(2022, 1, 1))
    with pytest.raises(RecordError, match="no row dated 2022-01-01"):
        build_day(rows, date(2022, 1, 1), catalog=CATALOG, regions=ua)


@pytest.mark.parametrize(("args", "message"), [
    (["--day", "2022-01-01"], "no row dated 2022-01-01"),
    (["--day", "2023-03-09", "--report-s", "0"], "report interval"),
])
def test_cli_refuses_bad_days_and_intervals(
    tmp_path: Path, attacks: Path, capsys: pytest.CaptureFixture[str], args: list[str],
    message: str,
) -> None:
    code, out = _record(tmp_path, attacks, "x.jsonl", *args)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_refuses_a_bad_date_and_a_table_that_is_not_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scenario", "record", "--day", "2023-13-01", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    other = tmp_path / "other.csv.gz"
    other.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    code = main(["scenario", "record", "--day", "2023-03-09", "--attacks", str(other),
                 "--out", str(tmp_path / "o.jsonl")])
    assert code == 2 and "not the attack table" in capsys.readouterr().err
    code = main(["scenario", "record", "--day", "2023-03-09", "--attacks",
                 str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.jsonl")])
    assert code == 2 and "no such file" in capsys.readouterr().err


def test_generated_day_runs_through_simulate(tmp_path: Path, attacks: Path) -> None:
    code, out = _record(tmp_path, attacks, "s.jsonl", "--day", "2023-01-23")
    assert code == 0
    transitions = tmp_path / "t.jsonl"
    assert main(["simulate", str(out), "--out", str(transitions)]) == 0
    kinds = Counter(json.loads(line)["type"] for line in transitions.read_text().splitlines())
    assert kinds["alert_started"] > 0 and kinds["alert_started"] == kinds["alert_ended"]
