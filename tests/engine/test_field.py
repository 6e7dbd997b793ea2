"""The field's shortcuts give what its plain definitions give."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

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
