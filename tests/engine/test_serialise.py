"""A transition's JSON text, written directly for replay's sake, is what `dumps` gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

from tocsin.model import Transition, dumps, format_time

T0 = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
TEXT = st.text(max_size=12)  # quotes, backslashes, control characters, non-ASCII, surrogates
ETA = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5)
EXTRA = st.lists(st.tuples(st.sampled_from(["level", "previous_level", "siren", "position"]),
                           st.integers(0, 3) | TEXT | st.tuples(TEXT)), max_size=2)


@settings(max_examples=400, deadline=None)
@given(TEXT, TEXT, st.integers(0, 2**40) | st.booleans(), st.integers(0, 2**40),
       st.none() | TEXT, st.none() | TEXT, st.lists(TEXT, max_size=4), ETA, EXTRA,
       st.integers(0, 10**12))
def test_to_json_is_dumps_of_to_dict(kind: str, region: str, seq: Any, cause_seq: int,
                                     alert_type: str | None, severity: str | None,
                                     causes: list[str], eta: Any,
                                     extra: list[tuple[str, Any]], us: int) -> None:
    t = Transition(type=kind, region=region, time=T0 + timedelta(microseconds=us),
                   cause_seq=cause_seq, seq=seq, alert_type=alert_type, severity=severity,
                   causes=tuple(causes), eta_s=eta, extra=tuple(extra))
    try:
        expected: str | None = dumps(t.to_dict())
    except ValueError:  # NaN and infinities are refused either way
        expected = None
    if expected is None:
        try:
            t.to_json()
        except ValueError:
            return
        raise AssertionError("to_json wrote what dumps refuses")
    assert t.to_json() == expected


def test_format_time_repeats_its_last_answer_only_for_the_same_moment() -> None:
    a, b = T0 + timedelta(microseconds=120), T0 + timedelta(seconds=1)
    assert format_time(a) == "2026-11-25T21:00:00.00012Z"
    assert format_time(a) == "2026-11-25T21:00:00.00012Z"
    assert format_time(b) == "2026-11-25T21:00:01Z"
    assert format_time(T0 + timedelta(microseconds=120)) == "2026-11-25T21:00:00.00012Z"
