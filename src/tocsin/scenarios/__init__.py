"""Scenarios: bundled event files (`*.jsonl`) and the generator that builds a day of the public
attack record (`tocsin scenario record`)."""

from __future__ import annotations

from tocsin.scenarios.record import DayRecord, RecordError, build_day, day_window, record_days

__all__ = ["DayRecord", "RecordError", "build_day", "day_window", "record_days"]
