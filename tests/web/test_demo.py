"""`tocsin serve --demo`: the scenario plan (pure) and its playing against a stand-in service."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tocsin.demo import load_scenario, plan, run_demo
from tocsin.model import parse_event, parse_time

START = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)

SCENARIO = [
    {"id": "e1", "type": "tick", "time": "2026-11-25T21:00:00Z", "source": "clock"},
    {"id": "e2", "type": "threat_level", "time": "2026-11-25T21:01:00Z", "source": "ops",
     "regions": ["UA46000000000026241"], "level": 1, "operator": "duty"},
    {"id": "e3", "type": "detection", "time": "2026-11-25T21:03:00Z", "source": "radar",
     "track": "S1", "object": "drone", "position": {"lat": 49.8, "lon": 24.0}},
    {"id": "e4", "type": "impact", "time": "2026-11-25T21:03:00Z", "source": "police",
     "track": "S1", "position": {"lat": 49.8, "lon": 24.0}, "kind": "explosion"},
    {"id": "e5", "type": "tick", "time": "2026-11-25T21:10:00Z", "source": "clock"},
]


def test_plan_shifts_to_now_drops_ticks_and_renames() -> None:
    steps = plan(SCENARIO, START, tag="demo-x", track_tag="ab12")
    assert [s.at_s for s in steps] == [0.0, 120.0]  # e3 and e4 share a time: one batch
    events = [e for s in steps for e in s.events]
    assert [e["id"] for e in events] == ["demo-x-e2", "demo-x-e3", "demo-x-e4"]
    assert events[0]["time"] == "2027-03-01T12:00:00Z"
    assert parse_time(events[1]["time"]) == START + timedelta(minutes=2)
    assert events[1]["track"] == events[2]["track"] == "S1.ab12"
    assert all(e["exercise"] is True for e in events)
    for e in events:
        parse_event(e)  # still valid events
    assert SCENARIO[1]["id"] == "e2"  # the scenario itself is not changed


def test_plan_speed() -> None:
    steps = plan(SCENARIO, START, tag="t", speed=60.0)
    assert [s.at_s for s in steps] == [0.0, 2.0]
    assert steps[1].events[0]["time"] == "2027-03-01T12:00:02Z"
    with pytest.raises(ValueError):
        plan(SCENARIO, START, tag="t", speed=0)


def test_bundled_scenario_plans() -> None:
    events = load_scenario()
    steps = plan(events, START, tag="demo-y")
    played = [e for s in steps for e in s.events]
    assert played and all(e["type"] != "tick" for e in played)
    assert len({e["id"] for e in played}) == len(played)
    assert steps[0].at_s == 0.0


class StandIn:
    """What `run_demo` needs of a service: a clock and submit."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[dict[str, Any]], str | None]] = []

    def clock(self) -> datetime:
        return START

    async def submit(self, raws: list[dict[str, Any]], *, key_name: str | None = None) -> None:
        self.batches.append((raws, key_name))


@pytest.mark.anyio
async def test_run_demo_submits_each_step_as_demo(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in SCENARIO) + "\n", encoding="utf-8")
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    svc = StandIn()
    await run_demo(svc, scenario=path, repeat=False, sleep=no_sleep)  # type: ignore[arg-type]
    assert [len(b) for b, _ in svc.batches] == [1, 2]
    assert {name for _, name in svc.batches} == {"demo"}
    assert waits and 119 < waits[0] <= 120


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _first_detection_s(events: list[dict[str, Any]], speed: float = 1.0) -> float:
    steps = plan(events, START, tag="t", speed=speed)
    return min(s.at_s for s in steps for e in s.events if e["type"] == "detection")


@pytest.mark.parametrize("name", ["record-2024-12-25", "night-wave"])
def test_bundled_drills_detect_within_ten_seconds(name: str) -> None:
    # night-wave's first detection is 4 minutes into the night: the quiet stretch is cut
    assert _first_detection_s(load_scenario(name)) <= 10.0


def test_default_drill_is_a_record_day() -> None:
    events = load_scenario()
    assert events and all(e.get("record_row") for e in events if e["type"] == "detection")


def test_quiet_stretches_are_cut_but_reports_keep_their_pace() -> None:
    from tocsin.demo import QUIET_S, SKIP_TO_S

    quiet = [dict(SCENARIO[1]), dict(SCENARIO[2])]
    quiet[1]["time"] = "2026-11-25T23:01:00Z"  # two hours after the threat level
    steps = plan(quiet, START, tag="q")
    assert [s.at_s for s in steps] == [0.0, SKIP_TO_S]
    paced = [dict(SCENARIO[2]), dict(SCENARIO[2], id="e3b", time="2026-11-25T21:04:00Z")]
    assert 60 <= QUIET_S
    assert [s.at_s for s in plan(paced, START, tag="p")] == [0.0, 60.0]
    assert [s.at_s for s in plan(paced, START, tag="p", speed=10)] == [0.0, 6.0]


def test_record_day_scenario_needs_the_table(monkeypatch: pytest.MonkeyPatch,
                                             shared_data: Path) -> None:
    from tocsin.demo import check_scenario
    from tocsin.errors import TocsinError

    monkeypatch.delenv("TOCSIN_ATTACKS", raising=False)
    with pytest.raises(TocsinError, match="TOCSIN_ATTACKS"):
        check_scenario("record:2023-01-23")
    monkeypatch.setenv("TOCSIN_ATTACKS",
                       str(shared_data / "missile_attacks" / "missile_attacks_daily.csv.gz"))
    with pytest.raises(TocsinError, match="not a date"):
        check_scenario("record:2023-02-30")
    check_scenario("record:2023-01-23")
    events = load_scenario("record:2023-01-23")
    assert _first_detection_s(events) <= 10.0
    with pytest.raises(TocsinError, match="no scenario"):
        check_scenario("no-such-drill")


def test_serve_refuses_an_unknown_drill_and_a_bad_speed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tocsin.cli import main

    assert main(["serve", "--data-dir", str(tmp_path), "--demo", "no-such-drill"]) == 2
    assert "--demo: no scenario" in capsys.readouterr().err
    assert main(["serve", "--data-dir", str(tmp_path), "--demo", "--speed", "0"]) == 2
    assert "--speed" in capsys.readouterr().err
