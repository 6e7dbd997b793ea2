"""Spatial index over the leaves of a region set: locate a point, find what a footprint hits.

Theory of operation. At construction every leaf polygon is projected once into the set's
`PlanarFrame` and an STRtree is built over the projected polygons; a second STRtree over the
lon/lat polygons answers `locate()` exactly as `Region.geometry` would. Per query, `hits()` does a
fixed number of vectorised calls and no per-region Python work:

1. `Geod.fwd` for the arc vertices (one call), the planar frame for them and the origin (one call);
2. `STRtree.query(polygon, predicate="intersects")`: the candidates that really touch it;
3. `shapely.shortest_line` from each hit to the origin: the nearest point of each region;
4. one inverse projection of those points and one `Geod.inv` from the origin to them.

So the reported distance is the true ellipsoidal distance to a point of the region; only the
choice of that point is made in the plane, where the conformal projection keeps directions and
relative distances nearly exact, so the result is within a few metres of the geodesic minimum.
Tree order is sorted-id order, so sorting indices sorts by id and the lowest index on a border is
the lowest id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from tocsin.geo.footprint import outline
from tocsin.geo.model import Footprint
from tocsin.geo.planar import GEOD, PlanarFrame

__all__ = ["LeafIndex"]

# Beyond this length a footprint is clipped to the farthest reach of the set (which changes no
# hit) so that huge discs never wrap round a pole or the projection's cut meridian.
REACH_CHECK_M = 2_000_000.0
# The hull is convex in the plane, not quite on the ellipsoid: pad its farthest vertex.
REACH_MARGIN = 1.02
# Footprint outlines for display are densified so their straight lon/lat edges follow the
# planar edges that `hits()` used to within centimetres.
OUTLINE_SEGMENTS = 120
OUTLINE_MIN_SEGMENT_M = 1_000.0


class LeafIndex:
    """Leaf polygons of a region set, projected once, with the trees to query them."""

    __slots__ = ("frame", "_hull_lat", "_hull_lon", "_ids", "_lonlat_tree", "_planar", "_tree")

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
        self._hull_lon, self._hull_lat = self._hull()

    def _hull(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lon/lat vertices of the planar convex hull of all leaves."""
        if not self._planar.size:
            return np.empty(0), np.empty(0)
        points = shapely.multipoints(shapely.get_coordinates(self._planar))
        xy = shapely.get_coordinates(shapely.convex_hull(points))
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
        area, ox, oy = self._planar_footprint(fp)
        found = self._tree.query(area, predicate="intersects")
        if not found.size:
            return []
        found.sort()
        n = found.size
        lines = shapely.shortest_line(self._planar[found], shapely.points(ox, oy))
        near = shapely.get_coordinates(lines)[0::2]
        lon, lat = self.frame.inverse(near[:, 0], near[:, 1])
        _, _, dist = GEOD.inv(np.full(n, fp.lon), np.full(n, fp.lat), lon, lat)
        # An origin inside the region comes back as itself; make that an exact zero rather
        # than the millimetres of a projection round trip.
        dist[(near[:, 0] == ox) & (near[:, 1] == oy)] = 0.0
        ids = self._ids
        return [(ids[i], d) for i, d in zip(found.tolist(), dist.tolist(), strict=True)]

    def footprint_polygon(self, fp: Footprint) -> BaseGeometry:
        """The footprint `hits()` intersects, as a lon/lat geometry."""
        area, _, _ = self._planar_footprint(fp)
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

    def _planar_footprint(self, fp: Footprint) -> tuple[BaseGeometry, float, float]:
        """The footprint polygon in the planar frame, and its origin's x and y."""
        length = fp.length_m
        huge = length > REACH_CHECK_M
        if huge:
            length = min(length, self._reach(fp))
        if length <= 0.0:
            x, y = self.frame.forward(np.array([fp.lon]), np.array([fp.lat]))
            ox, oy = float(x[0]), float(y[0])
            return shapely.points(ox, oy), ox, oy
        lon, lat, cone = outline(fp, length)
        if cone:
            x, y = self.frame.forward(lon, lat)
            ox, oy = float(x[0]), float(y[0])
        else:
            # The origin rides along in the same transformer call as the circle.
            x, y = self.frame.forward(np.append(lon, fp.lon), np.append(lat, fp.lat))
            ox, oy = float(x[-1]), float(y[-1])
            x, y = x[:-1], y[:-1]
        area: BaseGeometry = shapely.polygons(np.column_stack((x, y)))
        if huge and not area.is_valid:
            area = shapely.make_valid(area)
        return area, ox, oy
