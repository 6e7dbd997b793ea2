"""A tiny harness: feed raw events to a ledger over a memory log, collect transitions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from tocsin.engine.core import Engine
from tocsin.engine.policy import Policy
from tocsin.geo import RegionSet
from tocsin.ledger import Accepted, Ledger
from tocsin.model import Transition, format_time
from tocsin.store import MemoryLog
from tocsin.threats import load_catalog

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
_ids = itertools.count(1)


def at(seconds: float) -> str:
    """The RFC 3339 time `seconds` after T0."""
    return format_time(T0 + timedelta(seconds=seconds))


def detection(track: str, t: float, lat: float, lon: float, **kw: Any) -> dict[str, Any]:
    """A raw detection event."""
    ev: dict[str, Any] = {
        "id": f"e{next(_ids)}", "type": "detection", "time": at(t), "source": "radar-1",
        "track": track, "object": kw.pop("object", "drone"),
        "position": {"lat": lat, "lon": lon},
    }
    ev.update(kw)
    return ev


def event(etype: str, t: float, **kw: Any) -> dict[str, Any]:
    """Any raw event."""
    ev: dict[str, Any] = {"id": f"e{next(_ids)}", "type": etype, "time": at(t), "source": "test"}
    ev.update(kw)
    return ev


class Sim:
    """A ledger over a memory log, as `tocsin simulate` runs it."""

    def __init__(self, regions: RegionSet, policy: Policy | None = None) -> None:
        catalog = load_catalog()
        self.ledger = Ledger(MemoryLog(), lambda: Engine(regions, catalog, policy or Policy()))
        self.all: list[Transition] = []

    @property
    def engine(self) -> Engine:
        return self.ledger.engine

    def send(self, *raws: dict[str, Any]) -> list[Transition]:
        out: list[Transition] = []
        for raw in raws:
            res: Accepted = self.ledger.submit([raw])[0]
            out.extend(res.transitions)
        self.all.extend(out)
        return out

    def tick(self, t: float) -> list[Transition]:
        return self.send(event("tick", t))

    def drain(self) -> list[Transition]:
        out = self.ledger.drain()
        self.all.extend(out)
        return out


def of(transitions: list[Transition], kind: str, region: str | None = None) -> list[Transition]:
    """The transitions of one type (and region)."""
    return [t for t in transitions if t.type == kind and (region is None or t.region == region)]
