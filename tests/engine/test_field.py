"""The field's shortcuts give what its plain definitions give."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import tocsin.engine.field as field_module
from tocsin.engine.field import NO_DUE, Field

LEAVES = 12
DUE = st.sampled_from([NO_DUE, 5, 7, 7, 9]) | st.integers(0, 20)
WRITE = st.tuples(st.just("one"), st.integers(0, LEAVES - 1), DUE) | st.tuples(
    st.just("many"), st.lists(st.integers(0, LEAVES - 1), unique=True, max_size=4),
    st.lists(DUE, min_size=4, max_size=4))


def _plain(field: Field) -> tuple[int, int] | None:
    leaf = int(field.esc.argmin())
    due = int(field.esc[leaf])
    return None if due == NO_DUE else (due, leaf)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(WRITE, st.booleans()), max_size=30))
def test_the_earliest_crossing_kept_between_writes_is_the_argmin(
    writes: list[tuple[tuple[object, ...], bool]],
) -> None:
    field = Field(LEAVES)
    for (kind, where, due), ask in writes:
        if kind == "one":
            assert isinstance(where, int) and isinstance(due, int)
            field.set_due(where, due)
        else:
            assert isinstance(where, list) and isinstance(due, list)
            pos = np.array(where, dtype=np.intp)
            field.set_dues(pos, np.array(due[: pos.size], dtype=np.int64))
        if ask:  # asked between writes, or only at the end
            assert field.next_escalation() == _plain(field)
    assert field.next_escalation() == _plain(field)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from([np.inf, 1.0, 2.0, 2.0, 3.5]), min_size=3,
                         max_size=3), min_size=1, max_size=6),
       st.permutations(["c", "a", "b"]))
def test_row_minima_take_the_smaller_id_on_a_tie(rows: list[list[float]],
                                                 ids: list[str]) -> None:
    field = Field(1)
    for tid in ids:
        field.alloc(tid)
    block = np.array(rows)
    low, arg = field._first(block)  # noqa: SLF001 - the search itself
    for r, row in enumerate(rows):
        best = min(row)
        assert low[r] == best
        if best == np.inf:
            assert arg[r] == -1
        else:
            assert arg[r] == min((s for s in range(3) if row[s] == best), key=ids.__getitem__)


def test_an_empty_row_has_no_slot_even_with_one_slot_live() -> None:
    field = Field(1)
    field.alloc("a")
    low, arg = field._first(np.array([[np.inf], [4.0]]))  # noqa: SLF001
    assert low.tolist() == [np.inf, 4.0]
    assert arg.tolist() == [-1, 0]


# --- the compiled redraw (tocsin.geo.kernel) against the pure one ----------------------------

ETAS = st.sampled_from([0.0, 1.0, 2.5, 2.5, 7.0, 1e9])
STEP = st.tuples(
    st.sampled_from(["redraw", "redraw", "redraw", "end", "new"]),
    st.integers(0, 5),  # which live track
    st.lists(st.tuples(st.integers(0, LEAVES - 1), ETAS), max_size=LEAVES),
    st.sampled_from([0, 1_000_000, 1_500_000, 2_500_000]),  # t_us: arrivals tie across tracks
    st.sampled_from([0.0, 30.0, 600.0]),  # alert_s
)


def _same(a: Field, b: Field) -> None:
    for name in ("eta", "min_a", "arg_a", "min_b", "arg_b", "t_us", "t_s", "off"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name


@pytest.mark.skipif(field_module.fieldcore is None,
                    reason="SKIPPED LOUDLY: no compiled kernels (no C compiler, or TOCSIN_PURE=1)")
@settings(max_examples=400, deadline=None)
@given(st.lists(STEP, max_size=60), st.permutations(["t3", "t1", "t5", "t2", "t4", "t0"]))
def test_the_compiled_redraw_writes_what_the_pure_one_does(steps: list[tuple[object, ...]],
                                                           names: list[str]) -> None:
    module = field_module
    fast, slow = Field(LEAVES), Field(LEAVES)
    live: dict[str, tuple[int, np.ndarray]] = {}
    spare = list(names)
    for kind, which, cells, t_us, off in [("new", 0, [], 0, 0.0)] * 3 + steps:
        assert isinstance(cells, list) and isinstance(which, int)
        assert isinstance(t_us, int) and isinstance(off, float)
        if kind == "new" and spare:
            tid = spare.pop()
            slot = fast.alloc(tid)
            assert slow.alloc(tid) == slot
            live[tid] = (slot, np.empty(0, dtype=np.intp))
            continue
        if not live:
            continue
        tid = sorted(live)[which % len(live)]
        slot, old = live[tid]
        chosen = dict(cells)
        new = np.array(sorted(chosen), dtype=np.intp)
        eta = np.array([chosen[p] for p in new.tolist()], dtype=np.float64)
        if kind == "end":
            new, eta = new[:0], eta[:0]
        got = fast.redraw(slot, old, new, eta, t_us, off)
        module.fieldcore, core = None, module.fieldcore
        try:
            want = slow.redraw(slot, old, new, eta, t_us, off)
        finally:
            module.fieldcore = core
        assert got.tolist() == want.tolist()
        _same(fast, slow)
        live[tid] = (slot, new)
        if kind == "end":
            fast.release(slot)
            slow.release(slot)
            del live[tid]
            spare.append(tid)
