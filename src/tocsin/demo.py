"""`tocsin serve --demo`: play a bundled scenario in real time, marked as an exercise.

The scenario's clock is shifted so its first played event happens now; its `tick` events are
dropped (a running server ticks itself). Every run gets its own ids — event ids and track ids
carry a tag made from the start time — so a restarted demo never collides with the
de-duplication of the run before, nor continues that run's tracks. Each event also carries the
extension field `"exercise": true` in the log.
"""

from __future__ import annotations

import asyncio
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

__all__ = ["DEFAULT_SCENARIO", "Step", "load_scenario", "plan", "run_demo", "start_demo"]

log = logging.getLogger("tocsin.demo")

DEFAULT_SCENARIO = "night-wave"
KEY_NAME = "demo"


@dataclass(frozen=True, slots=True)
class Step:
    """Events to submit together, `at_s` seconds after the demo started."""

    at_s: float
    events: list[dict[str, Any]]


def load_scenario(name_or_path: str | Path = DEFAULT_SCENARIO) -> list[dict[str, Any]]:
    """The events of a bundled scenario (by name) or of a JSON-lines file."""
    path = Path(name_or_path)
    if path.suffix == ".jsonl" and path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        text = (resources.files("tocsin") / "scenarios" / f"{name_or_path}.jsonl").read_text(
            encoding="utf-8"
        )
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def plan(
    events: list[dict[str, Any]],
    start: datetime,
    *,
    tag: str,
    track_tag: str | None = None,
    speed: float = 1.0,
) -> list[Step]:
    """Shift, rename and group a scenario's events: what to submit, and when.

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
    t0 = timed[0][0]
    steps: list[Step] = []
    for when, raw in timed:
        at_s = (when - t0).total_seconds() / speed
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
    pause_s: float = 600.0,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """Play `scenario` in real time (or `speed` times faster), then again after `pause_s`."""
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
