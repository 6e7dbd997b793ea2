"""The counterfactual audit over many days: a pool of worker processes and a progress file.

The engine is the cost of the audit (geometry of every footprint), and days are independent: each
is generated from its own rows with the run's seed and run through a fresh engine. So days go to
`jobs` worker processes, each of which loads the inputs (attack table, regions, catalog, official
record) once, and the results are put back in day order — the figures are the same whatever
`jobs` is. Days are handed out in an order whose every beginning is spread over the whole range,
so a run cut short has measured a fair sample.

`ProgressFile` keeps `progress.json` in the output directory current, so a long run that is
interrupted (or still going) can be seen from outside; `DayLog` keeps every finished day in
`days.jsonl`, so that it can be resumed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tocsin.audit.counterfactual import DayResult, Impact, OfficialIndex, run_day
from tocsin.engine.policy import Policy
from tocsin.geo import RegionSet
from tocsin.scenarios.record import RecordError
from tocsin.threats import Catalog

__all__ = ["DayLog", "Inputs", "Loaded", "ProgressFile", "load_inputs", "run_days", "spread"]

Rows = Sequence[tuple[int, Mapping[str, str]]]


@dataclass(frozen=True)
class Inputs:
    """Where a run's inputs come from: small enough to send to every worker."""

    attacks: str
    history: str
    regions: str
    policy: Mapping[str, Any]  # `Policy.to_dict()`: a Policy's mapping proxies do not pickle
    seed: int = 0
    report_s: float = 60.0


@dataclass
class Loaded:
    """The inputs read once per process."""

    rows: Rows
    regions: RegionSet
    catalog: Catalog
    official: OfficialIndex
    policy: Policy
    read: int  # alerts read from the official record, of any type and region
    unread: int  # rows of the official record that could not be read (repairs not counted)


def load_inputs(inputs: Inputs) -> Loaded:
    """Read the attack table, the region set, the catalog and the official record."""
    from tocsin.audit.report import _open_text, read_attacks
    from tocsin.engine.policy import load_policy
    from tocsin.geo import load_region_set
    from tocsin.history_import import read_official
    from tocsin.store.history import HistoryAlert
    from tocsin.threats import load_catalog

    rows = list(read_attacks(Path(inputs.attacks)))
    regions = load_region_set(inputs.regions)
    alerts: list[HistoryAlert] = []
    unread = 0
    with _open_text(Path(inputs.history)) as fh:
        for item in read_official(fh):
            if isinstance(item, HistoryAlert):
                alerts.append(item)
            elif not item.reason.startswith("repaired"):
                unread += 1
    return Loaded(rows=rows, regions=regions, catalog=load_catalog(),
                  official=OfficialIndex(alerts, regions), policy=load_policy(inputs.policy),
                  read=len(alerts), unread=unread)


def spread(days: Sequence[date]) -> list[date]:
    """`days` in an order whose every beginning is spread evenly over them (van der Corput):
    the days a run has finished so far are a fair sample of the range, not its first weeks
    nor its largest days."""
    bits = max(1, (len(days) - 1).bit_length())

    def reversed_index(i: int) -> int:
        return int(format(i, f"0{bits}b")[::-1], 2)

    return [days[i] for i in sorted(range(len(days)), key=reversed_index)]


# One worker's inputs, loaded by `_init` (or set directly when the run stays in-process).
_worker: dict[str, Any] = {}


def _init(inputs: Inputs) -> None:
    _worker["inputs"] = inputs
    _worker["loaded"] = load_inputs(inputs)


def _one(day_iso: str) -> tuple[str, DayResult | str]:
    inputs: Inputs = _worker["inputs"]
    loaded: Loaded = _worker["loaded"]
    began = time.process_time()
    try:
        result = run_day(loaded.rows, date.fromisoformat(day_iso), loaded.official,
                         regions=loaded.regions, catalog=loaded.catalog, policy=loaded.policy,
                         seed=inputs.seed, report_s=inputs.report_s)
    except RecordError as exc:
        return day_iso, str(exc)
    # processor time, not wall time: on a shared machine it says what the day costs
    result.cpu_s = time.process_time() - began
    return day_iso, result


def run_days(
    inputs: Inputs,
    days: Sequence[date],
    *,
    jobs: int = 1,
    loaded: Loaded | None = None,
    on_day: Callable[[str, DayResult | str], None] | None = None,
    done: Mapping[str, DayResult | str] | None = None,
) -> tuple[list[DayResult], dict[str, str]]:
    """Run every day, in `jobs` processes (1: in this one, using `loaded` when given).

    Returns the results in day order and the days the generator could not build, with the
    reason. `on_day` is called in this process as each day finishes, in finishing order.
    Days in `done` (from an earlier, interrupted run) are taken as they are.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    if loaded is None and jobs == 1:
        loaded = load_inputs(inputs)
    wanted = {d.isoformat() for d in days}
    finished: dict[str, DayResult | str] = {k: v for k, v in (done or {}).items()
                                            if k in wanted}
    todo = [d for d in days if d.isoformat() not in finished]
    order = spread(todo)
    for day_iso, result in _results(inputs, [d.isoformat() for d in order], jobs, loaded):
        finished[day_iso] = result
        if on_day is not None:
            on_day(day_iso, result)
    results = [r for _d, r in sorted(finished.items()) if isinstance(r, DayResult)]
    skipped = {d: r for d, r in sorted(finished.items()) if isinstance(r, str)}
    return results, skipped


def _results(inputs: Inputs, days: list[str], jobs: int,
             loaded: Loaded | None) -> Iterator[tuple[str, DayResult | str]]:
    if not days:
        return
    if jobs == 1:
        assert loaded is not None
        _worker["inputs"], _worker["loaded"] = inputs, loaded
        try:
            yield from map(_one, days)
        finally:
            _worker.clear()
        return
    # spawn, not fork: the parent may hold threads (a progress bar) and a fork would copy
    # their locks; each worker pays its own start-up and load once (about 2 s)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(jobs, max(1, len(days))), initializer=_init, initargs=(inputs,)) as pool:
        yield from pool.imap_unordered(_one, days, chunksize=1)


class DayLog:
    """`days.jsonl`: every finished day as it finishes, so an interrupted run keeps its work.

    Its first line holds the run's settings; `--resume` takes the days of a log whose settings
    are the same and runs only the rest (a day's figures depend on nothing but the settings).
    """

    def __init__(self, path: Path, settings: Mapping[str, Any], *, resume: bool) -> None:
        self.path = path
        self.done: dict[str, DayResult | str] = {}
        head = json.loads(json.dumps({"settings": settings}))
        if resume and path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            if not lines or json.loads(lines[0]) != head:
                raise ValueError(f"{path}: made with other settings; cannot resume it")
            for line in lines[1:]:
                try:
                    item = json.loads(line)
                except ValueError:
                    break  # a line cut short by the interruption
                self.done[item["day"]] = (item["skipped"] if "skipped" in item
                                          else _from_json(item))
            text = "".join(line + "\n" for line in lines[:1 + len(self.done)])
        else:
            text = json.dumps(head) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def append(self, day_iso: str, result: DayResult | str) -> None:
        """Log a finished (or skipped) day."""
        item = ({"day": day_iso, "skipped": result} if isinstance(result, str)
                else asdict(result))
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(item) + "\n")


def _from_json(item: Mapping[str, Any]) -> DayResult:
    fields = dict(item)
    fields["window"] = tuple(fields["window"])
    fields["by_oblast"] = {k: (v[0], v[1]) for k, v in fields["by_oblast"].items()}
    fields["impacts"] = [Impact(**i) for i in fields["impacts"]]
    return DayResult(**fields)


class ProgressFile:
    """`progress.json`: how far a run has got, rewritten (atomically) after every day."""

    def __init__(self, path: Path, total: int, jobs: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._began = clock()
        self.state: dict[str, Any] = {
            "status": "running", "pid": os.getpid(), "jobs": jobs, "total_days": total,
            "done_days": 0, "skipped_days": 0,
            "started": datetime.fromtimestamp(self._began, UTC).isoformat(timespec="seconds"),
            "elapsed_s": 0.0, "last_day": None, "official_alert_hours": 0.0,
            "tocsin_alert_hours": 0.0, "impacts": 0, "impacts_alerted": 0,
            "load_average": _load(),
        }
        self._write()

    def day(self, day_iso: str, result: DayResult | str) -> None:
        """Count a finished (or skipped) day."""
        s = self.state
        s["done_days"] += 1
        s["last_day"] = day_iso
        if isinstance(result, str):
            s["skipped_days"] += 1
        else:
            s["official_alert_hours"] = round(
                s["official_alert_hours"] + result.official_alert_hours, 3)
            s["tocsin_alert_hours"] = round(s["tocsin_alert_hours"] + result.tocsin_alert_hours, 3)
            located = [i for i in result.impacts if i.region is not None]
            s["impacts"] += len(located)
            s["impacts_alerted"] += sum(1 for i in located if i.alerted)
        self._write()

    def finish(self, status: str = "finished") -> None:
        """Mark the run finished (or `interrupted`, `failed`)."""
        self.state["status"] = status
        self._write()

    def _write(self) -> None:
        self.state["elapsed_s"] = round(self._clock() - self._began, 1)
        self.state["load_average"] = _load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text(json.dumps(self.state, indent=1) + "\n", encoding="utf-8")
        tmp.replace(self.path)


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
