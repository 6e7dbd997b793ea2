"""Over the real hromadas, a salvo and its aftermath decide the same with the kernels as without.

The grid of the property tests is small; here many leaves are re-decided at once (the array
steps of `Field.redraw` and `_decide_many`), including severities that hold and timers that
move, as on the nights the kernels are for.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import tocsin.engine.field as field_module
import tocsin.engine.rules as rules_module
from tocsin.engine.core import Engine
from tocsin.geo import load_region_set
from tocsin.ledger import Ledger
from tocsin.model import format_time
from tocsin.store import MemoryLog
from tocsin.threats import load_catalog

from .helpers import T0

HROMADAS = load_region_set("ua-hromadas")
CATALOG = load_catalog()

pytestmark = pytest.mark.skipif(
    field_module.fieldcore is None,
    reason="SKIPPED LOUDLY: no compiled kernels (no C compiler, or TOCSIN_PURE=1)",
)

launch = st.tuples(
    st.sampled_from(["shahed-136", "kh-101", "iskander-m", None]),
    st.sampled_from(["drone", "cruise_missile", "ballistic_missile"]),
    st.floats(44.5, 52.0), st.floats(23.0, 40.0),
    st.one_of(st.none(), st.floats(0.0, 359.0)),
    st.integers(0, 90),  # seconds after the first
)


def _events(launches: list[tuple[Any, ...]], later: list[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, (weapon, obj, lat, lon, heading, dt) in enumerate(launches):
        raw: dict[str, Any] = {
            "id": f"d{i}", "type": "detection", "source": "radar", "track": f"T{i % 7}",
            "object": obj, "time": format_time(T0 + timedelta(seconds=dt)),
            "position": {"lat": round(lat, 4), "lon": round(lon, 4)},
        }
        if weapon:
            raw["weapon"] = weapon
        if heading is not None:
            raw["heading_deg"] = round(heading, 1)
        out.append(raw)
    out.sort(key=lambda r: r["time"])
    for k, s in enumerate(sorted(later)):
        out.append({"id": f"tick{k}", "type": "tick", "source": "clock",
                    "time": format_time(T0 + timedelta(seconds=100 + s))})
    return out


def _run(raws: list[dict[str, Any]], pure: bool) -> tuple[list[str], list[int]]:
    index = HROMADAS._index  # noqa: SLF001 - the footprint kernel sits on the index
    saved = index._core, field_module.fieldcore, rules_module.fieldcore  # noqa: SLF001
    if pure:
        index._core = field_module.fieldcore = rules_module.fieldcore = None  # noqa: SLF001
    try:
        ledger = Ledger(MemoryLog(), lambda: Engine(HROMADAS, CATALOG))
        lines = []
        for raw in raws:
            for res in ledger.submit([raw]):
                lines += [t.to_json() for t in res.transitions]
        esc = ledger.engine._field.esc.tolist()  # noqa: SLF001 - every leaf's timer
    finally:
        index._core, field_module.fieldcore, rules_module.fieldcore = saved  # noqa: SLF001
    return lines, esc


@settings(max_examples=25, deadline=None)
@given(st.lists(launch, min_size=1, max_size=25), st.lists(st.integers(0, 1800), max_size=8))
def test_a_salvo_decides_the_same_with_and_without_the_kernels(
    launches: list[tuple[Any, ...]], later: list[int]
) -> None:
    raws = _events(launches, later)
    fast, slow = _run(raws, pure=False), _run(raws, pure=True)
    assert fast[0] == slow[0]
    assert np.array_equal(fast[1], slow[1])
