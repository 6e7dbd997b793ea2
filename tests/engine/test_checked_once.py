"""The ledger checks a batch against the engine once; the engine does not check it again.

`Ledger.decide` checks every event of a batch before applying any (so nothing of a bad batch is
applied) and then hands the checked events to `Engine.apply(..., checked=True)`. A replay, which
has no such caller, still has every event checked by the engine itself.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tocsin.engine.core import Engine
from tocsin.errors import EventRejected
from tocsin.geo import RegionSet
from tocsin.ledger import replay_into
from tocsin.model import Event

from .helpers import Sim, detection, event

KHARKIV = (49.99, 36.23)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the engine's check ran, by event id (`check` and `apply` both run `_check`)."""
    seen: Counter[str] = Counter()
    original = Engine._check

    def counting(self: Engine, ev: Event, t: int) -> None:
        seen[ev.id] += 1
        original(self, ev, t)

    monkeypatch.setattr(Engine, "_check", counting)
    return seen


def night() -> list[dict[str, object]]:
    return [
        event("tick", 0),
        detection("D1", 1, *KHARKIV, weapon="shahed-136", heading_deg=90),
        detection("D1", 11, KHARKIV[0], KHARKIV[1] + 0.05, weapon="shahed-136",
                  heading_deg=90),
        event("operator_alert", 12, regions=["UA63000000000041885"], alert_type="air_raid",
              action="raise", operator="duty"),
        event("track_end", 20, track="D1", reason="intercepted"),
        event("tick", 4000),
    ]


def test_each_event_is_checked_once_on_the_way_in(ua: RegionSet, checks: Counter[str]) -> None:
    sim = Sim(ua)
    raws = night()
    sim.ledger.submit(raws[:1])
    sim.ledger.submit(raws[1:5])  # one batch: checked as a whole, then applied unchecked
    sim.ledger.submit(raws[5:])
    assert checks == Counter({str(r["id"]): 1 for r in raws})


def test_a_replay_still_checks_every_event(ua: RegionSet, checks: Counter[str]) -> None:
    sim = Sim(ua)
    raws = night()
    for raw in raws:
        sim.ledger.submit([raw])
    checks.clear()
    fresh = sim.ledger.new_engine()
    replay_into(fresh, sim.ledger.log.read())
    assert checks == Counter({str(r["id"]): 1 for r in raws})


def test_a_tick_inside_a_batch_has_the_events_after_it_checked_again(ua: RegionSet) -> None:
    # What the batch check saw of the clock is moved by a tick in the batch: the first tick
    # of a fresh engine makes an event dated a day later too far ahead, as it always did.
    sim = Sim(ua)
    with pytest.raises(EventRejected, match="ahead of the clock"):
        sim.ledger.submit([event("tick", 0),
                           detection("D1", 86_400, *KHARKIV, weapon="shahed-136")])
