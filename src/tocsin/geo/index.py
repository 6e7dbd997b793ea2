"""Spatial index over the leaves of a region set: locate a point, find what a footprint hits.

Theory of operation. At construction every leaf polygon is projected once into the set's
`PlanarFrame`, an STRtree is built over the projected polygons, and a few numbers are kept per
leaf; a second STRtree over the lon/lat polygons answers `locate()` exactly as
`Region.geometry` would. Per query, `hits()` makes a fixed number of vectorised calls and does no
per-region Python work:

1. `Geod.fwd` for the arc vertices (one call) and the frame for them and the origin (one call);
2. `STRtree.query(polygon)`: leaves whose bounding box meets the footprint's;
3. a numpy pre-filter that decides most candidates without GEOS. Each leaf's minimum extent along
   16 fixed directions is stored (a 16-sided "discrete oriented polytope"); a leaf whose minimum
   exceeds the footprint's maximum along any direction is out. A leaf whose interior point
   (`point_on_surface`) is inside the footprint is in, and so is one with any of a few of its
   own vertices (`_SAMPLES`, spread along its boundary) inside: most of the leaves left after
   the interior point are on the footprint's edge, partly inside. These tests are exact: they
   only ever skip work, never change an answer;
4. the exact GEOS `intersects` for the undecided rest, against the prepared footprint (still
   about 1-3 µs a polygon, which is why step 3 matters);
5. `shapely.distance` from each hit to the origin, turned into geodesic metres by the frame's
   scale correction (`tocsin.geo.planar`). The correction samples the scale at the far end and
   the middle of the segment to the region's nearest point; the leaf's centre stands in for that
   point, which moves the result by at most half the scale variation across the leaf. Leaves
   where that could pass 0.05 % (see `LARGE_LEAF_SCALE_VARIATION`; none in the bundled hromada
   set) use `shapely.shortest_line` for the exact nearest point instead.

Most of the cost is the fixed overhead of each library call, so the steps above keep the count
of calls small rather than the arithmetic. After construction nothing is written, so queries may
run in several threads at once. Tree order is sorted-id order, so sorting indices
sorts by id, and the lowest index on a border is the lowest id.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from tocsin.geo.footprint import outline
from tocsin.geo.kernel import leafcore
from tocsin.geo.model import Footprint
from tocsin.geo.planar import GEOD, SIMPSON_MAX_M, PlanarFrame, squares
from tocsin.geo.segments import MIN_LEAVES, Segments

__all__ = ["LeafIndex"]

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]

# Beyond this length a footprint is clipped to the farthest reach of the set (which changes no
# hit) so that huge discs never wrap round a pole or the projection's cut meridian.
REACH_CHECK_M = 2_000_000.0
# The hull is convex in the plane, not quite on the ellipsoid: pad its farthest vertex.
REACH_MARGIN = 1.02
# Above this scale variation within a leaf its nearest point is found exactly (step 5); below
# it, the leaf's centre standing in for that point moves a distance by at most half as much.
LARGE_LEAF_SCALE_VARIATION = 1e-3
# Directions of the pre-filter's polytope, every 22.5°.
_DIRECTIONS = np.array(
    [(math.cos(a), math.sin(a)) for a in np.radians(np.arange(0.0, 360.0, 22.5))]
)
# Boundary vertices per leaf tried against the footprint before GEOS `intersects` (step 3):
# 8 decide about 70 % of the leaves the interior point left (a drone's cone over hromadas).
_SAMPLES = 8
# Metres of slack in the pre-filter so that rounding can never drop a polygon that touches.
_SLACK_M = 1.0
# Longest lon/lat edge projected as a straight planar edge (see `LeafIndex.__init__`).
DENSIFY_DEG = 0.1
# Footprint outlines for display are densified in the same spirit: up to 400 edges, none
# shorter than 2 km, keep them within metres of the planar polygon `hits()` used up to ~1,000 km.
OUTLINE_SEGMENTS = 400
OUTLINE_MIN_SEGMENT_M = 2_000.0


def _along(xy: FloatArray) -> FloatArray:
    """Each row's extent along each of `_DIRECTIONS` (rows x directions): x·cos + y·sin as a
    product, a product and a sum, as the compiled kernel computes it. Not `xy @ _DIRECTIONS.T`:
    that wakes OpenBLAS, whose worker threads then spin on the other CPU."""
    result: FloatArray = xy[:, :1] * _DIRECTIONS[:, 0]
    result += xy[:, 1:2] * _DIRECTIONS[:, 1]
    return result


class LeafIndex:
    """Leaf polygons of a region set, projected once, with the trees to query them."""

    __slots__ = (
        "_any_large",
        "_core",
        "_end",
        "_extent",
        "_half",
        "_hull_lat",
        "_hull_lon",
        "_id_array",
        "_ids",
        "_large",
        "_lonlat",
        "_lonlat_tree",
        "_planar",
        "_rx",
        "_ry",
        "_sx",
        "_sy",
        "_segments",
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
        self._id_array: NDArray[np.object_] = np.array(self._ids, dtype=object)
        lonlat = geoms[keep]
        bounds: tuple[float, float, float, float] = (math.nan,) * 4
        lons = None
        if lonlat.size:
            west, south, east, north = (float(v) for v in shapely.total_bounds(lonlat))
            bounds = (west, south, east, north)
            if east - west > 180.0:
                lons = shapely.get_x(shapely.point_on_surface(lonlat))
        self.frame = PlanarFrame.for_extent(bounds, lons)
        # An edge that is straight in lon/lat bows in the plane (by 55 m over a 50 km east-west
        # edge); splitting edges longer than 0.1° first keeps the projected leaves within a few
        # metres of `Region.geometry`, for 5 % more vertices.
        densified = shapely.segmentize(lonlat, DENSIFY_DEG)
        self._planar: NDArray[np.object_] = self.frame.project(densified)
        self._tree = shapely.STRtree(self._planar)
        self._lonlat_tree = shapely.STRtree(lonlat)
        self._lonlat = lonlat
        coords, owner = shapely.get_coordinates(self._planar, return_index=True)
        starts = np.flatnonzero(np.diff(owner, prepend=-1))
        self._extent: FloatArray = np.minimum.reduceat(_along(coords), starts, axis=0)
        box = shapely.bounds(self._planar).reshape(-1, 4)
        centre = (box[:, :2] + box[:, 2:]) / 2.0
        radius = np.zeros(lonlat.size)
        np.maximum.at(radius, owner, np.sqrt(squares(coords - centre[owner])))
        variation = self.frame.scale_variation(centre, radius)
        self._large = variation > LARGE_LEAF_SCALE_VARIATION
        self._any_large = bool(self._large.any())
        # The centre stands in for the nearest point in the scale correction (step 5).
        self._half, self._end = self.frame.segment_ends(centre)
        inner = shapely.get_coordinates(shapely.point_on_surface(self._planar))
        self._rx, self._ry = inner[:, 0].copy(), inner[:, 1].copy()
        counts = np.bincount(owner, minlength=lonlat.size)
        pick = starts[:, None] + (np.arange(_SAMPLES) * counts[:, None]) // _SAMPLES
        self._sx, self._sy = coords[pick, 0], coords[pick, 1]
        self._hull_lon, self._hull_lat = self._hull(coords)
        # GEOS measures a set with a leaf that has no boundary at all (nothing does otherwise)
        self._segments: Segments | None = None
        with contextlib.suppress(ValueError):
            self._segments = Segments(self._planar)
        # The compiled kernel (see `tocsin.geo.kernel`) answers steps 2-5 in one pass each, with
        # the same answers; None where it is not built, or a leaf has no boundary to walk.
        self._core = None
        if leafcore is not None and self._segments is not None:
            self._core = leafcore.LeafTable(
                np.ascontiguousarray(box, dtype=np.float64),
                np.ascontiguousarray(self._extent, dtype=np.float64),
                np.ascontiguousarray(_DIRECTIONS, dtype=np.float64),
                self._rx, self._ry, *self._segments.ends(), _SLACK_M,
                scale=self.frame.scale_table(self._half, self._end),
            )

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
        # A point from an array is several times cheaper than from two scalars.
        found = self._lonlat_tree.query(shapely.points(np.array((lon, lat))))
        if found.size:
            found = found[shapely.intersects_xy(self._lonlat[found], lon, lat)]
        return self._ids[int(found.min())] if found.size else None

    def hits(self, fp: Footprint) -> list[tuple[str, float]]:
        """Leaves the footprint touches, by id, with the geodesic metres from its origin."""
        ids, dist = self.hit_arrays(fp)
        return list(zip(ids, dist.tolist(), strict=True))

    def hit_arrays(self, fp: Footprint) -> tuple[list[str], FloatArray]:
        """`hits()` as the ids in order and their distances as one array."""
        found, dist = self.hit_indices(fp)
        return self._id_array[found].tolist(), dist

    def hit_indices(self, fp: Footprint) -> tuple[IndexArray, FloatArray]:
        """`hits()` as sorted positions in `ids` (so in id order) and their distances."""
        if not self._ids:
            return np.empty(0, dtype=np.intp), np.empty(0)
        if fp.is_disc and fp.length_m > 0.0 and fp.length_m >= self._reach(fp):
            # A disc past the set's farthest reach holds every leaf (the same reasoning that
            # lets `_planar_footprint` clip it there), so nothing needs to be intersected.
            x, y = self.frame.forward(np.array([fp.lon]), np.array([fp.lat]))
            found = np.arange(len(self._ids), dtype=np.intp)
            return found, self._distances(fp, np.array([x[0], y[0]]), found)
        if self._core is not None and 0.0 < fp.length_m <= REACH_CHECK_M:
            found, origin = self._covered(fp)
        else:
            polygon, xy, exact = self._planar_footprint(fp)
            found, origin = self._intersecting(polygon, xy, exact), xy[0]
        if not found.size:
            return found, np.empty(0)
        return found, self._distances(fp, origin, found)

    @property
    def ids(self) -> list[str]:
        """The indexed leaf ids, sorted (leaves with an empty geometry are left out)."""
        return self._ids

    def footprint_polygon(self, fp: Footprint) -> BaseGeometry:
        """The footprint `hits()` intersects, as a lon/lat geometry."""
        if fp.length_m <= 0.0:
            return shapely.points(fp.lon, fp.lat)
        polygon = self._planar_footprint(fp)[0]
        segment = max(OUTLINE_MIN_SEGMENT_M, polygon.length / OUTLINE_SEGMENTS)
        result: BaseGeometry = self.frame.unproject(shapely.segmentize(polygon, segment))
        return result

    def _planar_footprint(self, fp: Footprint) -> tuple[BaseGeometry, FloatArray, bool]:
        """The planar footprint, its origin and vertices (x/y rows), and if only GEOS may judge."""
        # A point, or a polygon that had to be repaired, voids the pre-filter's reasoning.
        length = fp.length_m
        huge = length > REACH_CHECK_M
        if huge:
            length = min(length, self._reach(fp))
        if length <= 0.0:
            x, y = self.frame.forward(np.array([fp.lon]), np.array([fp.lat]))
            xy = np.column_stack((x, y))
            return shapely.points(xy[0]), xy, True
        lon, lat, cone = outline(fp, length)
        x, y = self.frame.forward(lon, lat)
        xy = np.column_stack((x, y))
        polygon: BaseGeometry = shapely.polygons(xy if cone else xy[1:])
        if huge and not polygon.is_valid:
            return shapely.make_valid(polygon), xy, True
        return polygon, xy, False

    def _covered(self, fp: Footprint) -> tuple[IndexArray, FloatArray]:
        """`_intersecting` by the kernel (same footprint, same answer), and the planar origin."""
        x, y, cone = outline(fp, fp.length_m)
        self.frame.forward_inplace(x, y)  # the outline's own arrays: lon/lat become x/y
        found = self._cover_ring(x, y) if cone else self._cover_ring(x[1:], y[1:])
        return found, np.array([x[0], y[0]])

    def _cover_ring(self, x: FloatArray, y: FloatArray) -> IndexArray:
        """Sorted indices of the leaves that meet the planar polygon with this ring (kernel)."""
        assert self._core is not None
        hits, unsure = self._core.cover(x, y)
        found: IndexArray = np.frombuffer(hits, dtype=np.intp)
        if unsure:
            # touching or nearly collinear edges: GEOS's robust predicate settles them
            maybe = np.frombuffer(unsure, dtype=np.intp)
            polygon = shapely.polygons(np.column_stack((x, y)))
            found = np.union1d(found, maybe[shapely.intersects(polygon, self._planar[maybe])])
        return found

    def _intersecting(self, polygon: BaseGeometry, xy: FloatArray, exact: bool) -> IndexArray:
        """Sorted indices of the leaves that intersect the planar footprint."""
        if exact:
            found: IndexArray = self._tree.query(polygon, predicate="intersects")
            found.sort()
            return found
        candidates: IndexArray = self._tree.query(polygon)
        if not candidates.size:
            return candidates
        # The footprint's maximum along each direction; the origin is in the footprint, so
        # including it in `xy` for a disc changes nothing.
        reach = _along(xy).max(axis=0) + _SLACK_M
        candidates = candidates[(self._extent[candidates] <= reach).all(axis=1)]
        # Only this query's own footprint is prepared: GEOS prepared geometries build their
        # indexes lazily and are not thread-safe, so shared leaves stay unprepared.
        shapely.prepare(polygon)
        inside = shapely.contains_xy(polygon, self._rx[candidates], self._ry[candidates])
        found = candidates[inside]
        rest = candidates[~inside]
        if rest.size:
            # a vertex of the leaf inside the footprint: the two meet
            meets = shapely.contains_xy(polygon, self._sx[rest], self._sy[rest]).any(axis=1)
            left = rest[~meets]
            found = np.concatenate((found, rest[meets],
                                    left[shapely.intersects(polygon, self._planar[left])]))
        found.sort()
        return found

    def _distances(self, fp: Footprint, origin: FloatArray, found: IndexArray) -> FloatArray:
        """Geodesic metres from the footprint origin to the nearest point of each found leaf."""
        if self.frame.conic:
            # An origin inside a leaf gives exactly 0, which the scale factor keeps.
            if self._core is not None:
                dist, farthest = self._measured(origin, found)
            else:
                planar = self._planar_distances(origin, found)
                farthest = float(planar.max()) if planar.size else 0.0
                if farthest <= SIMPSON_MAX_M:
                    dist = planar * self.frame.scale_factors(origin, self._half[found],
                                                             self._end[found])
            if farthest <= SIMPSON_MAX_M:
                if self._any_large:
                    large = self._large[found]
                    dist[large] = self._exact(fp, origin, found[large])
                return dist
        return self._exact(fp, origin, found)

    def _measured(self, origin: FloatArray, found: IndexArray) -> tuple[FloatArray, float]:
        """The conic path of `_distances` by the kernel, same floats; and the farthest planar
        distance (past `SIMPSON_MAX_M` the caller measures exactly instead)."""
        assert self._core is not None
        x, y = float(origin[0]), float(origin[1])
        measured, unsure, farthest = self._core.measure(x, y, np.ascontiguousarray(found, np.intp))
        dist: FloatArray = np.frombuffer(measured, dtype=np.float64)
        if unsure:  # on or too near a boundary for the kernel to say: GEOS does
            near = np.flatnonzero(np.isnan(dist))
            planar = shapely.distance(self._planar[found[near]], shapely.points(x, y))
            leaves = found[near]
            dist[near] = planar * self.frame.scale_factors(origin, self._half[leaves],
                                                           self._end[leaves])
            farthest = max(farthest, float(planar.max()))
        return dist, farthest

    def _planar_distances(self, origin: FloatArray, found: IndexArray) -> FloatArray:
        """GEOS's planar distance from the origin to each found leaf, 0 inside."""
        x, y = float(origin[0]), float(origin[1])
        if self._core is not None:
            measured, unsure = self._core.distances(x, y, np.ascontiguousarray(found, np.intp))
            planar: FloatArray = np.frombuffer(measured, dtype=np.float64)
            if unsure:  # on or too near a boundary for the kernel to say: GEOS does
                near = np.flatnonzero(np.isnan(planar))
                planar[near] = shapely.distance(self._planar[found[near]], shapely.points(x, y))
            return planar
        point = shapely.points(origin)
        if found.size >= MIN_LEAVES and self._segments is not None:
            inside = self._tree.query(point, predicate="intersects")
            return self._segments.distances(x, y, inside)[found]
        distance: FloatArray = shapely.distance(self._planar[found], point)
        return distance

    def _exact(self, fp: Footprint, origin: FloatArray, found: IndexArray) -> FloatArray:
        """Distances through each found leaf's exact nearest point."""
        line = shapely.shortest_line(self._planar[found], shapely.points(origin))
        near = shapely.get_coordinates(line)[0::2]
        return self.frame.distances(fp.lon, fp.lat, origin, near)

    def _reach(self, fp: Footprint) -> float:
        """Metres from the footprint origin beyond which the set has nothing."""
        n = self._hull_lon.size
        if not n:
            return 0.0
        _, _, dist = GEOD.inv(
            np.full(n, fp.lon), np.full(n, fp.lat), self._hull_lon, self._hull_lat
        )
        return float(dist.max()) * REACH_MARGIN + 1_000.0
