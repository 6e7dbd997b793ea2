"""CAP 1.2 values: the message, its info blocks, areas and resources, and `CapError`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from tocsin.errors import TocsinError

__all__ = [
    "CAP_NS",
    "CapArea",
    "CapError",
    "CapInfo",
    "CapMessage",
    "CapResource",
    "Ring",
    "cap_time",
]

CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"

Ring = tuple[tuple[float, float], ...]
"""A closed polygon ring of (lat, lon) points, first == last, as CAP writes it."""


class CapError(TocsinError):
    """A CAP document is malformed, schema-invalid or not CAP; `path` says where."""

    status_hint = 422

    def __init__(self, reason: str, path: str | None = None, more: Sequence[str] = ()) -> None:
        self.reason = reason
        self.path = path
        first = reason if path is None else f"{reason} (at {path})"
        self.problems: tuple[str, ...] = (first, *more)
        text = first
        if more:
            text += f"; and {len(more)} more problem{'s' if len(more) > 1 else ''}"
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class CapArea:
    """One `<area>`: a description and any polygons, circles (lat, lon, radius_km) and geocodes."""

    desc: str
    polygons: tuple[Ring, ...] = ()
    circles: tuple[tuple[float, float, float], ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()
    altitude: float | None = None
    ceiling: float | None = None


@dataclass(frozen=True, slots=True)
class CapResource:
    """One `<resource>`: a file that goes with the message."""

    desc: str
    mime_type: str
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CapInfo:
    """One `<info>` block: the alert in one language."""

    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    language: str = "en-US"
    response_types: tuple[str, ...] = ()
    audience: str | None = None
    event_codes: tuple[tuple[str, str], ...] = ()
    effective: str | None = None
    onset: str | None = None
    expires: str | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    resources: tuple[CapResource, ...] = ()
    areas: tuple[CapArea, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CapMessage:
    """One CAP `<alert>`; `signed` is True when it arrived with an XML-DSig signature."""

    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    scope: str
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    code: tuple[str, ...] = ()
    note: str | None = None
    references: tuple[tuple[str, str, str], ...] = ()
    incidents: str | None = None
    infos: tuple[CapInfo, ...] = ()
    signed: bool = False


def cap_time(dt: datetime) -> str:
    """Format an aware datetime as CAP's `2026-11-25T03:00:00+00:00` (UTC, whole seconds)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("cap_time needs an aware datetime: a naive one names no instant")
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()
