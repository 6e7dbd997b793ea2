"""Engine time: integer microseconds since the epoch, the same arithmetic in every replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "from_us", "to_us"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (dt - EPOCH) // _US


def from_us(us: int) -> datetime:
    """The UTC datetime of `us` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)
