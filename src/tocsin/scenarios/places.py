"""Where attacks in the public record come from and go to: the launch-place gazetteer and the
target areas.

The attack record names places as free text: launch places such as "Primorsko-Akhtarsk and
Chauda, Crimea and Kursk oblast", targets such as "Ukraine", "south", "Odesa oblast" or
"Dnipropetrovsk oblast, Kryvyi Rih Raion". `data/launch_places.csv` gives each launch place that
occurs a point and the source of that point (see `data/ATTRIBUTION.md`); targets resolve to
regions of the bundled region set, or to a city point from `data/target_places.csv`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Final

from tocsin.audit.coverage import OBLASTS
from tocsin.geo import RegionSet

__all__ = [
    "DEFAULT_LAUNCH",
    "DIRECTIONS",
    "Place",
    "TargetArea",
    "launch_places",
    "resolve_launch",
    "resolve_target",
    "split_places",
    "target_places",
]


@dataclass(frozen=True, slots=True)
class Place:
    """A named point with where its coordinates come from."""

    name: str
    lat: float
    lon: float
    kind: str  # point, area, sea, direction
    source: str
    basis: str


@dataclass(frozen=True, slots=True)
class TargetArea:
    """Where a target text points: leaf regions to sample, or a city point and radius."""

    text: str
    leaves: tuple[str, ...] = ()
    point: Place | None = None
    radius_m: float = 0.0
    known: bool = True


# Where a track comes from when its row names no launch place, or one the gazetteer lacks, by
# the catalog's flight profile: the most frequent launch place of that class in the record
# (drones: Kursk oblast; cruise missiles: the Black Sea fleet; ballistic missiles and glide
# bombs: Belgorod oblast, at the border nearest the front).
DEFAULT_LAUNCH: Final[Mapping[str, str]] = MappingProxyType({
    "drone": "Kursk oblast",
    "cruise": "Black Sea",
    "ballistic": "Belgorod oblast",
    "glide_bomb": "Belgorod oblast",
    "unknown": "Kursk oblast",
})

# The record's compass directions as the oblasts they cover. Occupied Crimea, Sevastopol and
# Luhansk oblast are never targets.
_SOUTH = ("Odesa", "Mykolaiv", "Kherson", "Zaporizhzhia")
_EAST = ("Kharkiv", "Donetsk", "Dnipropetrovsk")
_NORTH = ("Kyiv", "Chernihiv", "Sumy", "Zhytomyr")
_WEST = ("Lviv", "Volyn", "Rivne", "Ternopil", "Ivano-Frankivsk", "Zakarpattia", "Chernivtsi",
         "Khmelnytskyi")
_CENTRE = ("Vinnytsia", "Cherkasy", "Kirovohrad", "Poltava")
DIRECTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "south": _SOUTH,
    "east": _EAST,
    "north": _NORTH,
    "west": _WEST,
    "center": _CENTRE,
    "centre": _CENTRE,
    "south-east": ("Zaporizhzhia", "Dnipropetrovsk", "Donetsk"),
    "north-east": ("Sumy", "Kharkiv", "Chernihiv"),
    "front line": ("Kharkiv", "Donetsk", "Zaporizhzhia", "Kherson"),
    "ukraine": _SOUTH + _EAST + _NORTH + _WEST + _CENTRE,
})
_KYIV_CITY: Final = "UA80000000000093317"
_PAREN: Final = re.compile(r"\s*\([^()]*\)\s*$")
_SPACES: Final = re.compile(r"\s+")


def _fold(text: str) -> str:
    return _SPACES.sub(" ", text.strip()).casefold()


def _read(name: str) -> dict[str, Place]:
    text = (resources.files("tocsin") / "scenarios" / "data" / name).read_text(encoding="utf-8")
    out: dict[str, Place] = {}
    for row in csv.DictReader(io.StringIO(text)):
        place = Place(row["name"], float(row["lat"]), float(row["lon"]), row["kind"],
                      row["source"], row["basis"])
        out[_fold(place.name)] = place
    return out


@cache
def launch_places() -> Mapping[str, Place]:
    """The bundled gazetteer, keyed by folded name."""
    return MappingProxyType(_read("launch_places.csv"))


@cache
def target_places() -> Mapping[str, Place]:
    """Cities the record names as targets, keyed by folded name."""
    return MappingProxyType(_read("target_places.csv"))


def split_places(text: str) -> list[str]:
    """The places of a launch_place text, split on " and " (blank parts dropped)."""
    parts = (p.strip() for p in text.replace(" and ", "\n").splitlines())
    return [re.sub(r"^and\s+", "", p) for p in parts if p and p.casefold() != "and"]


def resolve_launch(text: str) -> Place | None:
    """The gazetteer's point for one launch place; a "place, detail" text falls back to its
    most specific known part. None when nothing matches."""
    places = launch_places()
    found = places.get(_fold(text))
    if found is not None:
        return found
    for part in reversed(text.split(",")):
        found = places.get(_fold(part))
        if found is not None:
            return found
    return None


def _oblast_code(name: str) -> str | None:
    head = _PAREN.sub("", name.strip())
    if head.casefold().endswith(" oblast"):
        head = head[: -len(" oblast")]
    return OBLASTS.get(head.strip())


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.casefold())


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def resolve_target(text: str, regions: RegionSet) -> list[TargetArea]:
    """The areas a target text names, one per " and "-part.

    "X oblast" is the oblast's leaves; "X oblast, Y Raion" the raion's whose name starts like Y
    (the record writes "Kryvyi Rih Raion" where the regions say "Kryvorizkyi"); a city is a
    point with a radius; a compass direction its oblasts. Anything else — blank, "Ukraine", an
    area outside the regions — is the whole unoccupied country, marked `known=False` unless it
    said "Ukraine".
    """
    out: list[TargetArea] = []
    for part in (p.strip() for p in text.split(" and ")):
        out.append(_target_part(part, regions))
    return out or [_country(text, regions, known=False)]


def _leaves(regions: RegionSet, codes: list[str]) -> tuple[str, ...]:
    leaves: list[str] = []
    for code in codes:
        if code in regions:
            leaves.extend(regions.leaves_under(code))
    return tuple(sorted(set(leaves)))


def _country(text: str, regions: RegionSet, *, known: bool) -> TargetArea:
    codes = [OBLASTS[n] for n in DIRECTIONS["ukraine"]] + [_KYIV_CITY]
    return TargetArea(text, _leaves(regions, codes), known=known)


def _target_part(part: str, regions: RegionSet) -> TargetArea:
    folded = _fold(_PAREN.sub("", part))
    if folded in ("ukraine", ""):
        return _country(part, regions, known=folded == "ukraine")
    city = target_places().get(folded)
    if city is not None:
        return TargetArea(part, point=city, radius_m=_city_radius(city))
    if folded in DIRECTIONS:
        codes = [OBLASTS[n] for n in DIRECTIONS[folded]]
        if folded == "north":
            codes.append(_KYIV_CITY)
        return TargetArea(part, _leaves(regions, codes))
    head, _, detail = part.partition(",")
    oblast = _oblast_code(head)
    if oblast is None or oblast not in regions:
        return _country(part, regions, known=False)
    detail = detail.strip()
    if detail.casefold().endswith(" raion"):
        # the record's "Kryvyi Rih Raion" is the regions' "Kryvorizkyi": the raion whose name
        # shares the longest start (at least 4 letters) with it
        stem = _letters(detail[: -len(" raion")])
        best, best_n = None, 3
        for child in regions.children(oblast):
            n = _common(stem, _letters(regions.get(child).name))
            if n > best_n:
                best, best_n = child, n
        if best is not None:
            return TargetArea(part, tuple(sorted(regions.leaves_under(best))))
    return TargetArea(part, _leaves(regions, [oblast]))


def _city_radius(city: Place) -> float:
    # the "basis" of a target place starts with its radius in km ("12 km: ...")
    m = re.match(r"(\d+(?:\.\d+)?) km", city.basis)
    return 1000 * float(m.group(1)) if m else 10_000.0
