"""`tocsin serve --demo`: play a scenario at the chosen speed, in a loop, marked as an exercise.

The scenario is a bundled one (by name), a JSON-lines file, or `record:YYYY-MM-DD`, a day of the
public attack record built on the spot (`tocsin.scenarios.record`; the table is read from
`$TOCSIN_ATTACKS`). Its clock is shifted so its first played event happens now, and quiet
stretches (no event for `QUIET_S` seconds of scenario time) are cut to `SKIP_TO_S` seconds, so
a drill starts alerting within seconds, not after the minutes a real night takes to build up.
Its `tick` events are dropped (a running server ticks itself). Every run gets its own ids —
event ids and track ids carry a tag made from the start time — so a restarted demo never
collides with the
de-duplication of the run before, nor continues that run's tracks. Each event also carries the
extension field `"exercise": true` in the log.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from tocsin.errors import TocsinError
from tocsin.model import format_time, parse_time
from tocsin.service import Service

__all__ = ["DEFAULT_SCENARIO", "QUIET_S", "SKIP_TO_S", "Step", "check_scenario",
           "load_scenario", "plan", "run_demo", "start_demo"]

log = logging.getLogger("tocsin.demo")

DEFAULT_SCENARIO = "record-2024-12-25"
KEY_NAME = "demo"
RECORD_PREFIX = "record:"
# A gap this long (scenario seconds) is a quiet stretch; it plays as SKIP_TO_S seconds. Longer
# than any report interval of a live track, so tracks never jump.
QUIET_S = 120.0
SKIP_TO_S = 2.0


@dataclass(frozen=True, slots=True)
class Step:
    """Events to submit together, `at_s` seconds after the demo started."""

    at_s: float
    events: list[dict[str, Any]]


def load_scenario(name_or_path: str | Path = DEFAULT_SCENARIO) -> list[dict[str, Any]]:
    """The events of a bundled scenario (by name), of a JSON-lines file (`.jsonl`, or gzipped
    `.jsonl.gz`), or of a record day (`record:YYYY-MM-DD`)."""
    text = str(name_or_path)
    if text.startswith(RECORD_PREFIX):
        return _record_day(text[len(RECORD_PREFIX):])
    path = Path(name_or_path)
    if path.name.endswith((".jsonl", ".jsonl.gz")) and path.is_file():
        raw = path.read_bytes()
    else:
        root = resources.files("tocsin") / "scenarios"
        plain, packed = root / f"{text}.jsonl", root / f"{text}.jsonl.gz"
        if packed.is_file():
            raw = packed.read_bytes()
        elif plain.is_file():
            raw = plain.read_bytes()
        else:
            raise TocsinError(f"no scenario {text!r}: not a .jsonl file, a bundled name or "
                              f"{RECORD_PREFIX}YYYY-MM-DD")
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    lines = raw.decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def check_scenario(name_or_path: str | Path) -> None:
    """Raise `TocsinError` unless `name_or_path` names a scenario `load_scenario` can read
    (a record day is only checked for its date and the table's presence)."""
    text = str(name_or_path)
    if text.startswith(RECORD_PREFIX):
        import os
        from datetime import date

        try:
            date.fromisoformat(text[len(RECORD_PREFIX):])
        except ValueError:
            raise TocsinError(f"{text}: not a date YYYY-MM-DD") from None
        table = os.environ.get("TOCSIN_ATTACKS")
        if not table or not Path(table).is_file():
            raise TocsinError(f"{text} needs the attack table: set TOCSIN_ATTACKS to "
                              "missile_attacks_daily.csv")
        return
    load_scenario(name_or_path)


def _record_day(day_text: str) -> list[dict[str, Any]]:
    """A day of the attack record, generated with the default seed and report interval."""
    import os
    from datetime import date

    from tocsin.audit.report import read_attacks
    from tocsin.geo import load_region_set
    from tocsin.scenarios.record import build_day
    from tocsin.threats import load_catalog

    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise TocsinError(f"{RECORD_PREFIX}{day_text}: not a date YYYY-MM-DD") from None
    table = os.environ.get("TOCSIN_ATTACKS")
    if not table or not Path(table).is_file():
        raise TocsinError(f"{RECORD_PREFIX}{day_text} needs the attack table: set "
                          "TOCSIN_ATTACKS to missile_attacks_daily.csv")
    rows = list(read_attacks(Path(table)))
    return build_day(rows, day, catalog=load_catalog(), regions=load_region_set()).events


def plan(
    events: list[dict[str, Any]],
    start: datetime,
    *,
    tag: str,
    track_tag: str | None = None,
    speed: float = 1.0,
    quiet_s: float = QUIET_S,
    skip_to_s: float = SKIP_TO_S,
) -> list[Step]:
    """Shift, rename and group a scenario's events: what to submit, and when.

    Time plays `speed` times faster, except that a gap of more than `quiet_s` scenario seconds
    between two events plays as `skip_to_s` seconds.

    Event ids become `TAG-ID`, track ids `TRACK.TRACK_TAG` (short, since people read them on
    the map). Pure: the same arguments give the same plan. Events whose time does not parse are
    left out (the scenario is data; a bad line must not stop a demo).
    """
    if speed <= 0:
        raise ValueError("speed must be > 0")
    timed: list[tuple[datetime, dict[str, Any]]] = []
    for raw in events:
        if raw.get("type") == "tick":
            continue
        try:
            timed.append((parse_time(raw["time"]), raw))
        except (KeyError, TypeError, ValueError):
            log.warning("demo: skipping an event with no usable time: %r", raw.get("id"))
    if not timed:
        return []
    timed.sort(key=lambda pair: pair[0])  # stable: the file's order among equal times
    steps: list[Step] = []
    at_s, previous = 0.0, timed[0][0]
    for when, raw in timed:
        gap = (when - previous).total_seconds()
        previous = when
        at_s += skip_to_s if gap > quiet_s else gap / speed
        event = dict(raw)
        event["id"] = f"{tag}-{raw.get('id')}"
        event["time"] = format_time(start + timedelta(seconds=at_s))
        if isinstance(event.get("track"), str):
            event["track"] = f"{event['track']}.{track_tag or tag}"
        event["exercise"] = True
        if steps and steps[-1].at_s == at_s:
            steps[-1].events.append(event)
        else:
            steps.append(Step(at_s, [event]))
    return steps


def _tags(start: datetime) -> tuple[str, str]:
    """Tags of a run: `demo-20261125T210000` for event ids, 4 base-36 digits for track ids.

    The short one repeats only every 36**4 seconds (19 days); tracks live for minutes.
    """
    n, digits = int(start.timestamp()), ""
    for _ in range(4):
        n, d = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
    return "demo-" + start.strftime("%Y%m%dT%H%M%S"), digits


async def run_demo(
    service: Service,
    *,
    scenario: str | Path = DEFAULT_SCENARIO,
    speed: float = 1.0,
    repeat: bool = True,
    pause_s: float = 60.0,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """Play `scenario` in real time (or `speed` times faster), then again after `pause_s`.

    Each round is a new run (new ids, new track names) planned from the clock at its start.
    """
    events = load_scenario(scenario)
    loop = asyncio.get_running_loop()
    while True:
        start = service.clock()
        tag, track_tag = _tags(start)
        steps = plan(events, start, tag=tag, track_tag=track_tag, speed=speed)
        log.info("demo: playing %s (%d events, exercise)", scenario,
                 sum(len(s.events) for s in steps))
        began = loop.time()
        for step in steps:
            wait = began + step.at_s - loop.time()
            if wait > 0:
                await sleep(wait)
            try:
                await service.submit(step.events, key_name=KEY_NAME)
            except TocsinError as exc:
                log.warning("demo: %s refused: %s", [e["id"] for e in step.events], exc)
        if not repeat:
            return
        await sleep(pause_s)


def start_demo(service: Service, **options: Any) -> asyncio.Task[None]:
    """Run the demo as a task of the running loop; the caller cancels it on shutdown."""
    return asyncio.create_task(run_demo(service, **options), name="tocsin-demo")
