"""Value types of `tocsin.geo`: a region, its names, and a threat footprint."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from shapely.geometry.base import BaseGeometry

__all__ = ["Footprint", "Names", "Region"]


class Names(Mapping[str, str]):
    """An immutable, hashable mapping of language code to name, in insertion order."""

    __slots__ = ("_data", "_hash")

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._data: dict[str, str] = dict(items)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"Names({self._data!r})"


@dataclass(frozen=True, slots=True)
class Region:
    """One region of a set: id, place in the hierarchy, names and lon/lat geometry."""

    id: str
    level: str
    parent: str | None
    names: Mapping[str, str]
    shelter_s: float | None
    alerts_uid: int | None
    # Lon/lat WGS84; may be empty (a region that can be alerted but never located).
    geometry: BaseGeometry = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.names, Names):
            object.__setattr__(self, "names", Names(self.names))

    @property
    def name(self) -> str:
        """The English name, else the Ukrainian one, else the first given, else the id."""
        for language in ("en", "uk"):
            if language in self.names:
                return self.names[language]
        return next(iter(self.names.values()), self.id)


@dataclass(frozen=True, slots=True)
class Footprint:
    """Where a threat can be soon: a cone from `lat`/`lon` along `heading_deg`, or a disc."""

    lat: float
    lon: float
    length_m: float
    heading_deg: float | None
    half_angle_deg: float = 30.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise ValueError(f"footprint latitude {self.lat} is not in [-90, 90]")
        if not math.isfinite(self.lon):
            raise ValueError(f"footprint longitude {self.lon} is not finite")
        if not (math.isfinite(self.length_m) and self.length_m >= 0.0):
            raise ValueError(f"footprint length {self.length_m} m is not a finite number >= 0")
        if self.heading_deg is not None and not math.isfinite(self.heading_deg):
            raise ValueError(f"footprint heading {self.heading_deg} is not finite")
        if not (math.isfinite(self.half_angle_deg) and self.half_angle_deg > 0.0):
            raise ValueError(f"footprint half-angle {self.half_angle_deg} is not > 0")

    @property
    def is_disc(self) -> bool:
        """True when the footprint has no direction: no heading, or a half-angle of 180° or more."""
        return self.heading_deg is None or self.half_angle_deg >= 180.0
