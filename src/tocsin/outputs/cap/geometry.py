"""CAP areas and shapely geometries: `cap_polygons` out, `areas_shapes` in."""

from __future__ import annotations

import math
from typing import Any, Final

import shapely
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from tocsin.outputs.cap.model import CapMessage, Ring

__all__ = ["areas_shapes", "cap_polygons"]

_FIRST_TOLERANCE_DEG: Final = 1e-4  # about 10 m: below that simplification changes nothing useful
_TOLERANCE_STEP: Final = 1.25  # small steps keep the result close to max_points, not far under
_MAX_STEPS: Final = 120  # 1e-4 * 1.25**120 is far beyond any region; the loop always ends


def cap_polygons(geometry: BaseGeometry, *, max_points: int = 100) -> tuple[Ring, ...]:
    """CAP polygons for a shapely lon/lat area: one closed (lat, lon) ring per part, largest first.

    Each part's exterior is simplified (Douglas-Peucker, topology kept) with the smallest tolerance
    that brings it to at most `max_points` points, then rounded to 5 decimals (about 1 m).
    Holes are dropped because a CAP polygon has none: the hole is then warned too, which is the
    safe side. Invalid input or a ring that rounding made invalid is repaired with `make_valid`;
    parts that round away to under a metre are dropped.
    """
    if max_points < 5:
        raise ValueError("max_points must be at least 5")
    geom = geometry if geometry.is_valid else shapely.make_valid(geometry)
    rings: list[Ring] = []
    for part in _polygon_parts(geom):
        rings.extend(_part_rings(Polygon(part.exterior), max_points, 0))
    return tuple(rings)


def _polygon_parts(geom: BaseGeometry) -> list[Polygon]:
    """The non-empty polygons inside any geometry, largest first (points and lines dropped)."""
    if isinstance(geom, Polygon):
        found = [] if geom.is_empty else [geom]
    elif hasattr(geom, "geoms"):
        found = [p for g in geom.geoms for p in _polygon_parts(g)]
    else:
        found = []
    return sorted(found, key=lambda p: -float(p.area))


def _part_rings(outline: Polygon, max_points: int, depth: int) -> list[Ring]:
    ring = _rounded(_simplified(outline, max_points))
    if ring is None:
        return []
    candidate = Polygon([(lon, lat) for lat, lon in ring])
    if candidate.is_valid or depth >= 2:
        return [ring]
    # Rounding can make two nearly touching edges cross; split at the crossing and go again.
    out: list[Ring] = []
    for piece in _polygon_parts(shapely.make_valid(candidate)):
        out.extend(_part_rings(Polygon(piece.exterior), max_points, depth + 1))
    return out


def _simplified(outline: Polygon, max_points: int) -> Polygon:
    if len(outline.exterior.coords) <= max_points:
        return outline
    tolerance = _FIRST_TOLERANCE_DEG
    for _ in range(_MAX_STEPS):
        simple = outline.simplify(tolerance, preserve_topology=True)
        if isinstance(simple, Polygon) and len(simple.exterior.coords) <= max_points:
            return simple
        tolerance *= _TOLERANCE_STEP
    # Unreachable for real shapes; a rectangle around the part still covers it.
    envelope = shapely.oriented_envelope(outline)
    return envelope if isinstance(envelope, Polygon) else Polygon(outline.envelope.exterior)


def _rounded(poly: Polygon) -> Ring | None:
    points: list[tuple[float, float]] = []
    for coord in poly.exterior.coords:
        point = (round(float(coord[1]), 5), round(float(coord[0]), 5))
        if not points or points[-1] != point:
            points.append(point)
    if len(set(points)) < 3:
        return None
    if points[0] != points[-1]:
        points.append(points[0])
    return tuple(points)


# --- areas as shapes ------------------------------------------------------------------------------

_EARTH_RADIUS_KM: Final = 6371.0088  # IUGG mean radius
_CIRCLE_VERTICES: Final = 64
# The mean-radius sphere measures up to 0.56% long against WGS84 (north-south at the equator, where
# the meridional radius is 6335 km); growing the radius by that much keeps the true circle inside.
_SPHERE_MARGIN: Final = 1.0057


def areas_shapes(msg: CapMessage) -> list[BaseGeometry]:
    """Shapely lon/lat geometries of every polygon and circle in a message, each once.

    A circle becomes a 64-vertex polygon computed on a sphere of the mean Earth radius. Two
    margins keep it covering the true WGS84 circle rather than cutting into it: the radius is
    divided by cos(pi/64) so the straight edges circumscribe the circle, and raised 0.57% for the
    sphere's largest error, so the shape is up to 1.2% wider than exact. A zero radius is a
    point.
    Longitudes are not wrapped at the antimeridian and a circle around a pole is not special-
    cased. Areas given only by geocodes yield no shape: match those codes directly.
    """
    seen: set[tuple[Any, ...]] = set()
    shapes: list[BaseGeometry] = []
    for info in msg.infos:
        for area in info.areas:
            for ring in area.polygons:
                if ("p", ring) not in seen:
                    seen.add(("p", ring))
                    shapes.append(_valid(Polygon([(lon, lat) for lat, lon in ring])))
            for circle in area.circles:
                if ("c", circle) not in seen:
                    seen.add(("c", circle))
                    shapes.append(_circle_shape(*circle))
    return shapes


def _valid(geom: BaseGeometry) -> BaseGeometry:
    # A self-intersecting polygon from another sender would make spatial predicates raise.
    return geom if geom.is_valid else shapely.make_valid(geom)


def _circle_shape(lat: float, lon: float, radius_km: float) -> BaseGeometry:
    if radius_km == 0:
        return Point(lon, lat)
    radius = radius_km * _SPHERE_MARGIN / math.cos(math.pi / _CIRCLE_VERTICES)
    delta = min(radius / _EARTH_RADIUS_KM, math.pi)
    phi1, lam1 = math.radians(lat), math.radians(lon)
    points: list[tuple[float, float]] = []
    for k in range(_CIRCLE_VERTICES):
        theta = 2 * math.pi * k / _CIRCLE_VERTICES
        phi2 = math.asin(
            math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
        )
        lam2 = lam1 + math.atan2(
            math.sin(theta) * math.sin(delta) * math.cos(phi1),
            math.cos(delta) - math.sin(phi1) * math.sin(phi2),
        )
        points.append((math.degrees(lam2), math.degrees(phi2)))
    return _valid(Polygon(points))
