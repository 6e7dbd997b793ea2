"""Planar distances from one point to many polygons, with GEOS's arithmetic but fewer segments.

GEOS measures a point against a polygon segment by segment: each costs the same, so a disc over
every hromada (a missile first seen without a heading) walks all 59,000 segments of the set for
about 1 ms. Here the segments of all leaves are kept as arrays, and one pass over their
midpoints finds, per leaf, the nearest midpoint `u`: a point of the boundary, so the leaf is no
farther than `u`. A segment of length `l` whose midpoint is `m` away is at least `m - l/2` away,
so only those with `m <= u + l/2` can hold the nearest point, about one in ten; those get
GEOS's own point-to-segment formula (`Distance::pointToSegment`), step for step, so every
distance is the same float GEOS gives, and the minimum per leaf is GEOS's answer. A point
inside a leaf gives 0 there, as GEOS does; the caller says which leaves contain it.

Worth it only for many leaves at once: below `MIN_LEAVES` the caller asks GEOS.
"""

from __future__ import annotations

import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["MIN_LEAVES", "Segments"]

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]

# Below this many leaves, GEOS on the leaves alone beats a pass over every segment of the set.
MIN_LEAVES = 600
# The pruning pass runs in float32 (half the memory to stream): its bound is widened by this
# much, far more than float32 rounding moves a distance of a few thousand kilometres (< 1 m),
# so it can never drop the nearest segment; the exact step is float64.
_REL, _ABS_M = 1e-5, 2.0


class Segments:
    """The boundary segments of a set of planar polygons, grouped by polygon."""

    __slots__ = ("_ax", "_ay", "_bx", "_by", "_counts", "_dx", "_dy", "_half", "_len2", "_mx",
                 "_my", "_n", "_owner", "_starts")

    _mx: NDArray[np.float32]
    _my: NDArray[np.float32]
    _half: NDArray[np.float32]

    def __init__(self, polygons: NDArray[np.object_]) -> None:
        parts, part_owner = shapely.get_parts(polygons, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        coords, vertex_ring = shapely.get_coordinates(rings, return_index=True)
        vertex_owner = part_owner[ring_part][vertex_ring]
        # a segment joins two consecutive vertices of one ring (rings are closed); GEOS
        # measures one of length 0 too, to its end, and so does the exact step below
        ring = vertex_ring[1:] == vertex_ring[:-1]
        a, b = coords[:-1][ring], coords[1:][ring]
        self._owner: IndexArray = vertex_owner[:-1][ring]
        self._n = len(polygons)
        self._ax, self._ay = a[:, 0].copy(), a[:, 1].copy()
        self._bx, self._by = b[:, 0].copy(), b[:, 1].copy()
        self._dx, self._dy = self._bx - self._ax, self._by - self._ay
        len2 = self._dx * self._dx + self._dy * self._dy
        # with dx = dy = 0 and any nonzero divisor the projection factor is 0: the end
        self._len2 = np.where(len2 > 0.0, len2, 1.0)
        self._half = (np.sqrt(len2) / 2.0 + _ABS_M).astype(np.float32)
        self._mx = ((self._ax + self._bx) / 2.0).astype(np.float32)
        self._my = ((self._ay + self._by) / 2.0).astype(np.float32)
        self._starts: IndexArray = np.flatnonzero(np.diff(self._owner, prepend=-1))
        if self._starts.size != self._n:
            raise ValueError("every polygon needs at least one segment")
        self._counts: IndexArray = np.diff(np.append(self._starts, self._owner.size))

    def ends(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, IndexArray]:
        """Every segment's two ends (x, y of each), grouped by polygon, and each polygon's first
        segment followed by the total (what `tocsin.geo.kernel` walks)."""
        offsets: IndexArray = np.append(self._starts, self._owner.size).astype(np.intp)
        return self._ax, self._ay, self._bx, self._by, offsets

    def distances(self, x: float, y: float, inside: IndexArray) -> FloatArray:
        """Distance from (x, y) to every polygon, 0 for the `inside` ones; GEOS's floats."""
        mx, my = np.float32(x) - self._mx, np.float32(y) - self._my
        m2 = mx * mx + my * my
        u = np.sqrt(np.minimum.reduceat(m2, self._starts))
        # runs of one owner are contiguous: a repeat streams where a gather would jump
        bound = np.repeat(u, self._counts) + self._half
        cand = np.flatnonzero(m2 <= bound * bound * np.float32(1.0 + _REL))
        ax, ay, bx, by = self._ax[cand], self._ay[cand], self._bx[cand], self._by[cand]
        dx, dy, len2 = self._dx[cand], self._dy[cand], self._len2[cand]
        # GEOS Distance::pointToSegment: the projection factor, then an end or the foot
        r = ((x - ax) * dx + (y - ay) * dy) / len2
        s = ((ay - y) * dx - (ax - x) * dy) / len2
        to_a = np.sqrt((x - ax) * (x - ax) + (y - ay) * (y - ay))
        to_b = np.sqrt((x - bx) * (x - bx) + (y - by) * (y - by))
        d = np.where(r <= 0.0, to_a, np.where(r >= 1.0, to_b, np.abs(s) * np.sqrt(len2)))
        owner = self._owner[cand]
        first = np.flatnonzero(np.diff(owner, prepend=-1))
        out = np.full(self._n, np.inf)
        out[owner[first]] = np.minimum.reduceat(d, first)
        out[inside] = 0.0
        return out
