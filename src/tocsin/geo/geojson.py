"""Read regions from a GeoJSON FeatureCollection.

Canonical feature properties:

- `id` (required, unique; a string, or an integer taken as its decimal string);
- `parent`: id of the parent region in the same collection, or null/absent for a root;
- `level`: free text such as "oblast" (default "region");
- `name_xx` for each language `xx` (`name_uk`, `name_en`, `name_he`, `name_zh_hant`, …); a bare
  `name` is taken as Ukrainian when there is no `name_uk` (map it elsewhere with `mapping`);
- `shelter_s`: time to reach shelter in seconds, a number >= 0 (optional);
- `alerts_uid`: the alerts.in.ua location uid, an integer (optional).

`mapping` maps canonical names to the file's own: `{"id": "iso_3166_2", "name_en": "name"}`
reads the id from `iso_3166_2` and the English name from `name`. A file property that a mapping
claims is read only under its mapped name. Other properties are ignored. Invalid polygons are
repaired with `shapely.make_valid` and rings are oriented as RFC 7946 asks (exteriors
counter-clockwise); a missing or empty geometry gives a region that can be alerted but is never
located.
Coordinates must be finite numbers, latitudes within ±90° and longitudes within ±360° (sets
that cross the antimeridian may continue past ±180°); empty parts of a multi-part geometry are
dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from tocsin.errors import RegionSetError
from tocsin.geo.model import Names, Region

__all__ = ["CANONICAL_PROPERTIES", "regions_from_geojson"]

CANONICAL_PROPERTIES = ("id", "parent", "level", "name", "shelter_s", "alerts_uid")
DEFAULT_LEVEL = "region"
# Unmapped `name_*` properties count only when the suffix looks like a language tag, so that
# Natural Earth's `name_len` (an integer) or `name_alt` do not become languages.
_LANGUAGE_PROPERTY = re.compile(r"name_([a-z]{2}(?:[-_][A-Za-z0-9]{2,8})*)")
_POLYGONAL = ("Polygon", "MultiPolygon")


class _Properties:
    """Resolves canonical property names through a `mapping` for one collection."""

    __slots__ = ("_claimed", "_mapping", "_source")

    def __init__(self, mapping: Mapping[str, str] | None, source: str) -> None:
        self._source = source
        self._mapping = dict(mapping or {})
        for key, value in self._mapping.items():
            if not (isinstance(key, str) and isinstance(value, str)):
                raise RegionSetError(f"{source}: mapping must map strings to strings")
            if key not in CANONICAL_PROPERTIES and not key.startswith("name_"):
                known = ", ".join(CANONICAL_PROPERTIES + ("name_<language>",))
                raise RegionSetError(f"{source}: mapping key {key!r} is not one of {known}")
        self._claimed = set(self._mapping.values())

    def get(self, props: Mapping[str, Any], key: str) -> Any:
        """The value of canonical property `key`, or None."""
        if key in self._mapping:
            return props.get(self._mapping[key])
        if key in self._claimed:
            return None
        return props.get(key)

    def names(self, props: Mapping[str, Any], where: str) -> Names:
        """Language -> name from `name_xx` properties, mapped ones first."""
        names: dict[str, str] = {}
        for key, prop in self._mapping.items():
            if key.startswith("name_"):
                value = props.get(prop)
                if value is not None and not isinstance(value, str):
                    raise RegionSetError(f"{where}: {prop} (as {key}) must be a string")
                if value:
                    names[key[5:]] = value
        for prop, value in props.items():
            if prop in self._claimed or prop in self._mapping:
                continue
            match = _LANGUAGE_PROPERTY.fullmatch(prop)
            if match and isinstance(value, str) and value:
                names.setdefault(match.group(1), value)
        bare = self.get(props, "name")
        if isinstance(bare, str) and bare:
            names.setdefault("uk", bare)
        return Names(names)


def _feature_label(index: int, region_id: str | None) -> str:
    return f"feature {index}" if region_id is None else f"feature {index} (id {region_id!r})"


def _as_id(value: Any) -> str | None:
    """An id value as a string, None if absent; raise ValueError if it cannot be one."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"must be a string or an integer, got {value!r}")
    return str(value)


def _as_shelter(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"shelter_s must be a number of seconds >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"shelter_s must be >= 0, got {value!r}")
    return float(value)


def _as_uid(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"alerts_uid must be an integer, got {value!r}")
    return value


def _geometry(raw: Any) -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry object (None gives an empty one)."""
    if raw is None:
        return shapely.GeometryCollection()
    return shape(raw)


def _without_empty_parts(geometry: BaseGeometry) -> BaseGeometry:
    """A multi-part geometry without its empty parts (GEOS cannot segmentize those)."""
    if not hasattr(geometry, "geoms") or geometry.is_empty:
        return geometry
    original = list(shapely.get_parts(geometry))
    cleaned = [_without_empty_parts(p) for p in original]
    kept = [p for p in cleaned if not p.is_empty]
    if len(kept) == len(original) and all(a is b for a, b in zip(kept, original, strict=True)):
        return geometry
    return type(geometry)(kept)


def _repair(geometry: BaseGeometry) -> BaseGeometry:
    """Make an invalid geometry valid, keeping a polygon a polygon (GEOSException if GEOS
    cannot repair it at all)."""
    try:
        fixed = shapely.make_valid(geometry)
    except shapely.errors.GEOSException:
        # the linework method gives up on rings collapsed to points beside real ones ("mixed
        # dimension"); the structure method drops what collapsed instead
        fixed = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
    if geometry.geom_type not in _POLYGONAL or fixed.geom_type in _POLYGONAL:
        return fixed
    # Collapsed spikes come back as lines next to the polygon: an area region keeps only areas.
    polygons = [p for p in shapely.get_parts(fixed) if p.geom_type in _POLYGONAL]
    return shapely.union_all(polygons) if polygons else shapely.Polygon()


def regions_from_geojson(
    data: Mapping[str, Any],
    *,
    mapping: Mapping[str, str] | None = None,
    source: str = "<geojson>",
) -> list[Region]:
    """Regions in file order from a FeatureCollection; raise `RegionSetError` on bad input."""
    if data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise RegionSetError(f"{source}: not a GeoJSON FeatureCollection")
    props_of = _Properties(mapping, source)
    rows: list[tuple[str, str | None, str, Names, float | None, int | None]] = []
    geometries: list[BaseGeometry] = []
    first_seen: dict[str, int] = {}
    for index, feature in enumerate(data["features"]):
        where = f"{source}: {_feature_label(index, None)}"
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
            raise RegionSetError(f"{where}: not a GeoJSON Feature")
        props = feature.get("properties") or {}
        if not isinstance(props, Mapping):
            raise RegionSetError(f"{where}: properties must be an object")
        try:
            region_id = _as_id(props_of.get(props, "id"))
        except ValueError as exc:
            raise RegionSetError(f"{where}: id {exc}") from None
        if region_id is None:
            raise RegionSetError(f"{where}: missing id")
        if region_id in first_seen:
            raise RegionSetError(
                f"{where}: duplicate id {region_id!r} (also feature {first_seen[region_id]})"
            )
        first_seen[region_id] = index
        where = f"{source}: {_feature_label(index, region_id)}"
        try:
            parent = _as_id(props_of.get(props, "parent"))
            shelter = _as_shelter(props_of.get(props, "shelter_s"))
            uid = _as_uid(props_of.get(props, "alerts_uid"))
        except ValueError as exc:
            raise RegionSetError(f"{where}: {exc}") from None
        level = props_of.get(props, "level")
        if level is None or level == "":
            level = DEFAULT_LEVEL
        elif not isinstance(level, str):
            raise RegionSetError(f"{where}: level must be a string, got {level!r}")
        try:
            geometry = _geometry(feature.get("geometry"))
        except Exception as exc:  # shapely raises several types for malformed GeoJSON
            raise RegionSetError(f"{where}: bad geometry: {exc}") from None
        geometry = _without_empty_parts(geometry)
        coords = shapely.get_coordinates(geometry)
        if not np.isfinite(coords).all():
            raise RegionSetError(f"{where}: bad geometry: a coordinate is not a finite number")
        if coords.size and np.abs(coords[:, 1]).max() > 90.0:
            raise RegionSetError(f"{where}: bad geometry: a latitude is beyond ±90°")
        if coords.size and np.abs(coords[:, 0]).max() > 360.0:
            raise RegionSetError(f"{where}: bad geometry: a longitude is beyond ±360°")
        rows.append((region_id, parent, level, props_of.names(props, where), shelter, uid))
        geometries.append(geometry)
    for index, (region_id, parent, *_rest) in enumerate(rows):
        if parent is not None and parent not in first_seen:
            where = f"{source}: {_feature_label(index, region_id)}"
            raise RegionSetError(f"{where}: parent {parent!r} is not in the set")
    geoms = np.empty(len(geometries), dtype=object)
    geoms[:] = geometries
    # Validity is checked for the whole array in one call; only the broken ones are repaired.
    for index in np.flatnonzero(~shapely.is_valid(geoms)).tolist():
        try:
            geometries[index] = _repair(geometries[index])
        except shapely.errors.GEOSException as exc:
            where = f"{source}: {_feature_label(index, rows[index][0])}"
            raise RegionSetError(f"{where}: bad geometry: it cannot be repaired ({exc})") from exc
    # RFC 7946 wants exterior rings counter-clockwise; orienting once here means every output
    # that serialises a region (API, map, exports) is right whatever the file's winding.
    geoms[:] = geometries
    geometries = list(shapely.orient_polygons(geoms, exterior_cw=False))
    return [
        Region(
            id=region_id,
            level=level,
            parent=parent,
            names=names,
            shelter_s=shelter,
            alerts_uid=uid,
            geometry=geometry,
        )
        for (region_id, parent, level, names, shelter, uid), geometry in zip(
            rows, geometries, strict=True
        )
    ]
