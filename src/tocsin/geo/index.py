"""Spatial index over the leaves of a region set: locate a point, find what a footprint hits.

Theory of operation. At construction every leaf polygon is projected once into the set's
`PlanarFrame` and an STRtree is built over the projected polygons; a second STRtree over the
lon/lat polygons answers `locate()` exactly as `Region.geometry` would. Per query, `hits()` does a
fixed number of vectorised calls and no per-region Python work:

1. `Geod.fwd` for the arc vertices (one call), the planar frame for them and the origin (one call);
2. `STRtree.query(polygon)`: leaves whose bounding box meets the footprint's;
3. a numpy pre-filter on those candidates, which decides most of them without GEOS: a leaf whose
   bounding circle lies beyond the footprint's farthest vertex or outside one of the half-planes
   holding a cone is out, a leaf whose interior point (`point_on_surface`) is inside the
   footprint is in;
4. the exact GEOS `intersects` test for the undecided rest, with the leaves prepared once at
   construction (still about 1 µs a polygon, so deciding most candidates without it is most of
   the speed);
5. `shapely.distance` from each hit to the origin, turned into geodesic metres by the frame's
   scale correction (see `tocsin.geo.planar`). The correction samples the scale along the
   segment to the region's nearest point. For a leaf across which the scale varies by under
   0.1 % the point on the ray towards its centre at the same distance does nearly as well (it
   lies in the leaf's bounding circle, so the result moves by under 0.05 %) and is much cheaper
   than `shapely.shortest_line`, which is kept for larger leaves.

Tree order is sorted-id order, so sorting indices sorts by id and the lowest index on a border is
the lowest id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from tocsin.geo.footprint import outline
from tocsin.geo.model import Footprint
from tocsin.geo.planar import GEOD, PlanarFrame

__all__ = ["LeafIndex"]

FloatArray = NDArray[np.float64]

# Beyond this length a footprint is clipped to the farthest reach of the set (which changes no
# hit) so that huge discs never wrap round a pole or the projection's cut meridian.
REACH_CHECK_M = 2_000_000.0
# The hull is convex in the plane, not quite on the ellipsoid: pad its farthest vertex.
REACH_MARGIN = 1.02
# Footprint outlines for display are densified so their straight lon/lat edges follow the
# planar edges that `hits()` used to within centimetres.
# Above this scale variation within a leaf, its nearest point is found exactly (see step 5);
# below it, standing in for the nearest point moves a distance by at most half as much.
LARGE_LEAF_SCALE_VARIATION = 1e-3
OUTLINE_SEGMENTS = 120
OUTLINE_MIN_SEGMENT_M = 1_000.0


class _Area(NamedTuple):
    """A footprint in the planar frame, with what the pre-filter needs to know about it."""

    geometry: BaseGeometry
    ox: float
    oy: float
    # Every point of the polygon is within `reach` of the origin: it is star-shaped from the
    # origin and its vertices are.
    reach: float
    # Outward unit normals (rows) of half-planes through the origin that hold the polygon.
    normals: FloatArray | None
    # False when the polygon had to be repaired, which voids the reach/normals reasoning.
    simple: bool


class LeafIndex:
    """Leaf polygons of a region set, projected once, with the trees to query them."""

    __slots__ = (
        "_centre",
        "_hull_lat",
        "_hull_lon",
        "_ids",
        "_large",
        "_lonlat_tree",
        "_planar",
        "_radius",
        "_rx",
        "_ry",
        "_tree",
        "frame",
    )

    def __init__(self, ids: Sequence[str], geometries: Sequence[BaseGeometry]) -> None:
        if list(ids) != sorted(ids):
            raise ValueError("leaf ids must be sorted")
        geoms = np.empty(len(geometries), dtype=object)
        geoms[:] = list(geometries)
        keep = ~shapely.is_empty(geoms)
        self._ids: list[str] = [ids[i] for i in np.flatnonzero(keep).tolist()]
        lonlat = geoms[keep]
        bounds: tuple[float, float, float, float] = (math.nan,) * 4
        lons = None
        if lonlat.size:
            west, south, east, north = (float(v) for v in shapely.total_bounds(lonlat))
            bounds = (west, south, east, north)
            if east - west > 180.0:
                lons = shapely.get_x(shapely.point_on_surface(lonlat))
        self.frame = PlanarFrame.for_extent(bounds, lons)
        self._planar: NDArray[np.object_] = self.frame.project(lonlat)
        self._tree = shapely.STRtree(self._planar)
        self._lonlat_tree = shapely.STRtree(lonlat)
        # Bounding circle (bbox centre, farthest vertex) and an interior point of every leaf.
        box = shapely.bounds(self._planar).reshape(-1, 4)
        self._centre = (box[:, :2] + box[:, 2:]) / 2.0
        coords, owner = shapely.get_coordinates(self._planar, return_index=True)
        spread = np.hypot(*(coords - self._centre[owner]).T)
        self._radius = np.zeros(lonlat.size)
        np.maximum.at(self._radius, owner, spread)
        # Where the scale varies too much across a leaf to stand in for its nearest point.
        variation = self.frame.scale_variation(self._centre[:, 0], self._centre[:, 1], self._radius)
        self._large = variation > LARGE_LEAF_SCALE_VARIATION
        # Prepared leaves make the exact test about a third cheaper; they are reused forever.
        shapely.prepare(self._planar)
        inner = shapely.get_coordinates(shapely.point_on_surface(self._planar))
        self._rx, self._ry = inner[:, 0].copy(), inner[:, 1].copy()
        self._hull_lon, self._hull_lat = self._hull(coords)

    def _hull(self, coords: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Lon/lat vertices of the planar convex hull of all leaves."""
        if not coords.size:
            return np.empty(0), np.empty(0)
        xy = shapely.get_coordinates(shapely.convex_hull(shapely.multipoints(coords)))
        return self.frame.inverse(xy[:, 0], xy[:, 1])

    def __len__(self) -> int:
        return len(self._ids)

    def locate(self, lat: float, lon: float) -> str | None:
        """The lowest id among leaves whose lon/lat polygon covers the point, or None."""
        if not (math.isfinite(lat) and math.isfinite(lon)):
            raise ValueError(f"cannot locate a non-finite position ({lat}, {lon})")
        lon = (lon + 180.0) % 360.0 - 180.0
        found = self._lonlat_tree.query(shapely.points(lon, lat), predicate="intersects")
        return self._ids[int(found.min())] if found.size else None

    def hits(self, fp: Footprint) -> list[tuple[str, float]]:
        """Leaves the footprint touches, by id, with the geodesic metres from its origin."""
        if not self._ids:
            return []
        area = self._planar_footprint(fp)
        found = self._intersecting(area)
        if not found.size:
            return []
        dist = self._distances(fp, area, found)
        ids = self._ids
        return [(ids[i], d) for i, d in zip(found.tolist(), dist.tolist(), strict=True)]

    def _distances(self, fp: Footprint, area: _Area, found: NDArray[np.intp]) -> FloatArray:
        """Geodesic metres from the footprint origin to the nearest point of each found leaf."""
        leaves = self._planar[found]
        origin = shapely.points(area.ox, area.oy)
        if not self.frame.conic:
            near = shapely.get_coordinates(shapely.shortest_line(leaves, origin))[0::2]
            return self.frame.distances(fp.lon, fp.lat, area.ox, area.oy, near[:, 0], near[:, 1])
        # An origin inside a leaf gives exactly 0, which the scale factor keeps.
        planar = shapely.distance(leaves, origin)
        towards = self._centre[found] - (area.ox, area.oy)
        span = np.hypot(towards[:, 0], towards[:, 1])
        stretch = np.divide(planar, span, out=np.zeros(span.size), where=span > 0.0)
        near = towards * stretch[:, None] + (area.ox, area.oy)
        large = self._large[found]
        if large.any():
            near[large] = shapely.get_coordinates(shapely.shortest_line(leaves[large], origin))[
                0::2
            ]
        return self.frame.distances(
            fp.lon, fp.lat, area.ox, area.oy, near[:, 0], near[:, 1], planar
        )

    def _intersecting(self, area: _Area) -> NDArray[np.intp]:
        """Sorted indices of the leaves that intersect the planar footprint."""
        polygon = area.geometry
        if not area.simple:
            found: NDArray[np.intp] = self._tree.query(polygon, predicate="intersects")
            found.sort()
            return found
        candidates: NDArray[np.intp] = self._tree.query(polygon)
        if not candidates.size:
            return candidates
        offset = self._centre[candidates] - (area.ox, area.oy)
        # A 1 m pad keeps rounding from ever dropping a polygon that touches.
        radius = self._radius[candidates] + 1.0
        maybe = np.einsum("ij,ij->i", offset, offset) <= (radius + area.reach) ** 2
        if area.normals is not None:
            maybe &= (offset @ area.normals.T <= radius[:, None]).all(axis=1)
        candidates = candidates[maybe]
        inside = shapely.contains_xy(polygon, self._rx[candidates], self._ry[candidates])
        rest = candidates[~inside]
        touching = rest[shapely.intersects(self._planar[rest], polygon)]
        found = np.concatenate((candidates[inside], touching))
        found.sort()
        return found

    def footprint_polygon(self, fp: Footprint) -> BaseGeometry:
        """The footprint `hits()` intersects, as a lon/lat geometry."""
        area = self._planar_footprint(fp).geometry
        if area.geom_type == "Point":
            return shapely.points(fp.lon, fp.lat)
        segment = max(OUTLINE_MIN_SEGMENT_M, area.length / OUTLINE_SEGMENTS)
        result: BaseGeometry = self.frame.unproject(shapely.segmentize(area, segment))
        return result

    def _reach(self, fp: Footprint) -> float:
        """Metres from the footprint origin beyond which the set has nothing."""
        n = self._hull_lon.size
        if not n:
            return 0.0
        _, _, dist = GEOD.inv(
            np.full(n, fp.lon), np.full(n, fp.lat), self._hull_lon, self._hull_lat
        )
        return float(dist.max()) * REACH_MARGIN + 1_000.0

    def _planar_footprint(self, fp: Footprint) -> _Area:
        """The footprint polygon in the planar frame."""
        length = fp.length_m
        huge = length > REACH_CHECK_M
        if huge:
            length = min(length, self._reach(fp))
        if length <= 0.0:
            x, y = self.frame.forward(np.array([fp.lon]), np.array([fp.lat]))
            ox, oy = float(x[0]), float(y[0])
            return _Area(shapely.points(ox, oy), ox, oy, 0.0, None, False)
        lon, lat, cone = outline(fp, length)
        normals = None
        if cone:
            x, y = self.frame.forward(lon, lat)
            ox, oy = float(x[0]), float(y[0])
            if fp.half_angle_deg <= 90.0:
                normals = _wedge_normals(x[1] - ox, y[1] - oy, x[-1] - ox, y[-1] - oy)
            rim_x, rim_y = x[1:], y[1:]
            ring = np.column_stack((x, y))
        else:
            # The origin rides along in the same transformer call as the circle.
            x, y = self.frame.forward(np.append(lon, fp.lon), np.append(lat, fp.lat))
            ox, oy = float(x[-1]), float(y[-1])
            rim_x, rim_y = x[:-1], y[:-1]
            ring = np.column_stack((rim_x, rim_y))
        reach = float(np.hypot(rim_x - ox, rim_y - oy).max())
        polygon: BaseGeometry = shapely.polygons(ring)
        if huge and not polygon.is_valid:
            return _Area(shapely.make_valid(polygon), ox, oy, reach, None, False)
        return _Area(polygon, ox, oy, reach, normals, True)


def _wedge_normals(x_first: float, y_first: float, x_last: float, y_last: float) -> FloatArray:
    """Outward normals of the two sides of a convex cone and of its back half-plane.

    The arc runs clockwise by azimuth from the first side to the last, so in x/y the cone
    opens counter-clockwise from the last side to the first.
    """
    first = math.atan2(y_first, x_first)
    last = math.atan2(y_last, x_last)
    axis = last + ((first - last) % math.tau) / 2.0
    return np.array(
        [
            (math.sin(last), -math.cos(last)),
            (-math.sin(first), math.cos(first)),
            (-math.cos(axis), -math.sin(axis)),
        ]
    )
