"""The set-wide planar frame that footprints and leaf polygons are intersected in.

Intersections run in one conformal projection chosen from the set's extent, not per query:
every leaf polygon is projected once at load time, so a query only projects the few footprint
vertices. For a set in one hemisphere that is a Lambert Conformal Conic with standard parallels
at 1/6 and 5/6 of the set's latitude span, whose scale stays within about 0.1 % of true over
Ukraine; sets that straddle the equator fall back to an azimuthal equidistant projection centred
on the set.

Distances from a footprint origin to the regions' nearest points are needed for every hit, so
they are the other half of the hot path. In the conic frame they are taken from the plane and
corrected for scale: the LCC is conformal and its scale factor `k` depends only on the distance
`rho` from the cone's apex, so the true length of a planar segment is `∫ ds / k`, which Simpson's
rule on `k` at both ends and the middle gives in a few vectorised numpy operations. Against
`Geod.inv` this is within 0.001 % over Ukraine and 0.08 % for any origin in the northern hemisphere
up to 3,000 km away, while costing a tenth of an inverse projection plus `Geod.inv`. Longer
segments, and the azimuthal fallback frame, use the exact `Geod.inv` path instead.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Geod, Proj, Transformer
from pyproj.enums import TransformDirection

__all__ = ["GEOD", "PlanarFrame", "geod_fwd_inplace"]

GEOD = Geod(ellps="WGS84")
_LONLAT = CRS.from_epsg(4326)
# Planar distances longer than this go through `Geod.inv`: beyond ~3,000 km the straight planar
# segment drifts from the geodesic's image and Simpson's rule passes 0.1 %.
SIMPSON_MAX_M = 2_500_000.0
# Latitudes sampled for the conic frame's scale table (the far pole maps to infinity).
_TABLE_SIZE = 2048
_TABLE_POLE_GAP_DEG = 0.05

FloatArray = NDArray[np.float64]

# pyproj's public `Geod.fwd` and `Transformer.transform` copy each input, convert each output
# back, and (`transform`) first try a scalar path that raises TypeError on arrays: about 10 µs a
# call around 1-5 µs of PROJ's own work, twice per footprint. The hot path calls the compiled
# methods those two wrap, which pyproj's shipped stubs type (`_Geod._fwd`,
# `_Transformer._transform`), on float64 arrays it owns, in place: the same PROJ calls, so the
# same floats (a test holds both ways to it). A pyproj without them takes the public calls.
_DIRECT = callable(getattr(GEOD, "_fwd", None))


def geod_fwd_inplace(lon: FloatArray, lat: FloatArray, az: FloatArray, dist: FloatArray) -> None:
    """`GEOD.fwd(lon, lat, az, dist, inplace=True)`: the points `dist` metres along the
    azimuths, written over `lon` and `lat` (C-contiguous float64); `az` is overwritten too."""
    if _DIRECT:
        GEOD._fwd(lon, lat, az, dist, radians=False, return_back_azimuth=True)
    else:
        GEOD.fwd(lon, lat, az, dist, inplace=True)


def squares(xy: FloatArray) -> FloatArray:
    """x² + y² of each row, one IEEE step at a time.

    Not `einsum` nor `@`: those may run a BLAS or SIMD kernel picked for the CPU at run time,
    which can fuse the two products' sum into one multiply-add, so the same log would replay
    to other floats on another machine (`r @ r` differs from this in about one case in six
    here).
    """
    x, y = xy[:, 0], xy[:, 1]
    result: FloatArray = x * x
    result += y * y
    return result


class PlanarFrame:
    """A projection from lon/lat to metres and back, with its transformers built once."""

    __slots__ = ("_apex", "_forward", "_inverse", "_inv_k", "_rho2", "_slope", "_table", "crs")

    def __init__(self, crs: CRS, *, conic: tuple[float, bool] | None = None) -> None:
        self.crs = crs
        # pyproj transformers are thread-safe since 3.1 and costly to create: keep one each way.
        self._forward = Transformer.from_crs(_LONLAT, crs, always_xy=True)
        self._inverse = Transformer.from_crs(crs, _LONLAT, always_xy=True)
        # Squared distance from the apex -> 1/k, ascending; None for a non-conic frame.
        self._rho2: FloatArray | None = None
        self._inv_k: FloatArray = np.empty(0)
        self._slope: FloatArray = np.empty(0)
        self._table: tuple[list[float], list[float], list[float]] = ([], [], [])
        self._apex: FloatArray = np.zeros(2)
        if conic is not None:
            self._scale_table(*conic)

    def _scale_table(self, lon_0: float, south: bool) -> None:
        """Tabulate the conic scale factor against the squared distance from the apex."""
        apex_lat, far_lat = (-90.0, 90.0) if south else (90.0, -90.0)
        x, y = self.forward(np.array([lon_0]), np.array([apex_lat]))
        self._apex = np.array([x[0], y[0]])
        lat = np.linspace(apex_lat, far_lat, _TABLE_SIZE)
        lat = np.clip(lat, -90.0 + _TABLE_POLE_GAP_DEG, 90.0 - _TABLE_POLE_GAP_DEG)
        lon = np.full(lat.size, lon_0)
        x, y = self.forward(lon, lat)
        rho2 = (x - self._apex[0]) ** 2 + (y - self._apex[1]) ** 2
        factors = Proj(self.crs).get_factors(lon, lat)
        order = np.argsort(rho2)
        self._rho2 = rho2[order]
        self._inv_k = 1.0 / np.asarray(factors.parallel_scale, dtype=np.float64)[order]
        if not (np.all(np.isfinite(self._inv_k)) and np.all(np.diff(self._rho2) > 0.0)):
            raise ValueError("the conic scale table must ascend and be finite")
        # each interval's slope, as `np.interp` computes it
        self._slope = np.diff(self._inv_k) / np.diff(self._rho2)
        self._table = (self._rho2.tolist(), self._inv_k.tolist(), self._slope.tolist())

    def inv_k(self, squared: FloatArray) -> FloatArray:
        """1/k at squared distances from the apex, interpolated in the table.

        The same numbers as `np.interp`, written out as single IEEE steps (a product, then a
        sum) so that nothing fuses them into one multiply-add: every machine, and the compiled
        kernel (`tocsin.geo.kernel`), rounds each step alike.
        """
        assert self._rho2 is not None
        rho2, inv_k = self._rho2, self._inv_k
        j = np.searchsorted(rho2, squared, side="right") - 1
        inner = np.clip(j, 0, rho2.size - 2)
        below = rho2[inner]
        result: FloatArray = self._slope[inner] * (squared - below)
        result += inv_k[inner]
        result = np.where(squared == below, inv_k[inner], result)
        result = np.where(j < 0, inv_k[0], result)
        return np.where(j >= rho2.size - 1, inv_k[-1], result)

    def inv_k_at(self, squared: float) -> float:
        """`inv_k` of one value, in Python floats (the same IEEE steps)."""
        rho2, inv_k, slope = self._table
        j = bisect.bisect_right(rho2, squared) - 1
        if j < 0:
            return inv_k[0]
        if j >= len(rho2) - 1:
            return inv_k[-1]
        if squared == rho2[j]:
            return inv_k[j]
        return slope[j] * (squared - rho2[j]) + inv_k[j]

    @classmethod
    def for_extent(
        cls, bounds: tuple[float, float, float, float], lons: FloatArray | None = None
    ) -> PlanarFrame:
        """Choose the frame for a set with lon/lat `bounds` (and sample `lons` if it wraps)."""
        west, south, east, north = bounds
        if not all(math.isfinite(v) for v in bounds):
            west, south, east, north = 0.0, 0.0, 0.0, 0.0
        lon_0 = (west + east) / 2.0
        if east - west > 180.0 and lons is not None and lons.size:
            # A set split at the antimeridian (Chukotka) has a bbox spanning the whole world;
            # centre on the circular mean of its longitudes instead.
            rad = np.radians(lons)
            lon_0 = math.degrees(math.atan2(float(np.sin(rad).mean()), float(np.cos(rad).mean())))
        span = north - south
        lat_1 = south + span / 6.0
        lat_2 = south + span * 5.0 / 6.0
        params: dict[str, Any] = {"lon_0": lon_0, "ellps": "WGS84", "units": "m", "no_defs": True}
        # A cone whose standard parallels lie on (or within a degree of) the equator is
        # degenerate (PROJ refuses |lat_1 + lat_2| ~ 0): such sets take the azimuthal frame.
        if lat_1 * lat_2 > 0.0 and min(abs(lat_1), abs(lat_2)) >= 1.0:
            params.update(proj="lcc", lat_1=lat_1, lat_2=lat_2, lat_0=(south + north) / 2.0)
            return cls(CRS.from_dict(params), conic=(lon_0, lat_1 < 0.0))
        params.update(proj="aeqd", lat_0=(south + north) / 2.0)
        return cls(CRS.from_dict(params))

    def warm(self) -> None:
        """Build the calling thread's PROJ objects now.

        A pyproj transformer is thread-safe by keeping one PROJ object per thread, made on the
        thread's first `transform` (13-70 ms here, both ways): a service warms its writer thread
        at start, or the first detection after every restart would wait for it.
        """
        self.inverse(*self.forward(np.zeros(1), np.zeros(1)))

    def forward(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Project lon/lat arrays to planar x/y metres."""
        x, y = self._forward.transform(lon, lat)
        return x, y

    def forward_inplace(self, lon: FloatArray, lat: FloatArray) -> None:
        """`forward`, writing x over `lon` and y over `lat` (C-contiguous float64 arrays)."""
        transformer = self._forward
        if _DIRECT and hasattr(transformer, "_transformer"):
            transformer._transformer._transform(
                lon, lat, None, None, TransformDirection.FORWARD, False, False)
        else:
            transformer.transform(lon, lat, inplace=True)

    def inverse(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Unproject planar x/y arrays to lon/lat."""
        lon, lat = self._inverse.transform(x, y)
        return lon, lat

    @property
    def conic(self) -> bool:
        """True when distances come from the plane with a scale correction (see module doc)."""
        return self._rho2 is not None

    def inverse_scale(self, xy: FloatArray) -> FloatArray:
        """1/k at planar points (rows of x, y); ones if the frame is not conic."""
        if self._rho2 is None:
            return np.ones(len(xy))
        rel = xy - self._apex
        return self.inv_k(squares(rel))

    def scale_variation(self, xy: FloatArray, radius: FloatArray) -> FloatArray:
        """How much k varies within `radius` of planar points (rows); 0 if not conic."""
        if self._rho2 is None:
            return np.zeros(len(xy))
        rho = np.sqrt(squares(xy - self._apex))
        # k(rho) has one minimum between the standard parallels, so sample across the range.
        samples = np.maximum(rho[:, None] + radius[:, None] * np.linspace(-1.0, 1.0, 9), 0.0)
        k = 1.0 / self.inv_k(samples * samples)
        result: FloatArray = k.max(axis=1) - k.min(axis=1)
        return result

    def scale_table(
        self, half: FloatArray, end: FloatArray
    ) -> tuple[float, float, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray] | None:
        """What the compiled kernel needs to apply `scale_factors` itself (None if not conic):
        the apex, the table and its slopes, and `segment_ends()` of each leaf."""
        if self._rho2 is None:
            return None
        return (float(self._apex[0]), float(self._apex[1]), self._rho2, self._inv_k,
                self._slope, np.ascontiguousarray(half, dtype=np.float64),
                np.ascontiguousarray(end, dtype=np.float64))

    def segment_ends(self, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
        """What `scale_factors()` needs of segment ends: half their offsets, and 1/(6k) there."""
        return (ends - self._apex) * 0.5, self.inverse_scale(ends) * (1.0 / 6.0)

    def scale_factors(self, origin: FloatArray, half: FloatArray, end: FloatArray) -> FloatArray:
        """Geodesic metres per planar metre on segments from `origin`, by Simpson's rule."""
        # Simpson: (1/k0 + 4/k_mid + 1/k_end) / 6. The ends' parts come precomputed from
        # `segment_ends()`, so a leaf's centre costs nothing per query.
        assert self._rho2 is not None
        rel = origin - self._apex
        rx, ry = float(rel[0]), float(rel[1])
        start = self.inv_k_at(rx * rx + ry * ry) * (1.0 / 6.0)
        middle = half + rel * 0.5
        result: FloatArray = self.inv_k(squares(middle)) * (4.0 / 6.0)
        result += end
        result += start
        return result

    def distances(self, lon: float, lat: float, origin: FloatArray, xy: FloatArray) -> FloatArray:
        """Geodesic metres from the origin (`lon`/`lat`, planar `origin`) to planar points."""
        planar = np.sqrt(squares(xy - origin))
        if self._rho2 is not None and (not planar.size or planar.max() <= SIMPSON_MAX_M):
            result: FloatArray = planar * self.scale_factors(origin, *self.segment_ends(xy))
            return result
        n = planar.size
        lons, lats = self.inverse(xy[:, 0].copy(), xy[:, 1].copy())
        _, _, dist = GEOD.inv(np.full(n, lon), np.full(n, lat), lons, lats)
        # A point at the origin itself is 0, not the millimetres of a projection round trip.
        dist[planar == 0.0] = 0.0
        return np.asarray(dist, dtype=np.float64)

    def project(self, geometries: NDArray[np.object_]) -> NDArray[np.object_]:
        """Project an array of lon/lat geometries, all coordinates in one transformer call."""
        result: NDArray[np.object_] = shapely.transform(geometries, self._project_xy)
        return result

    def unproject(self, geometry: shapely.Geometry) -> shapely.Geometry:
        """Unproject one planar geometry to lon/lat."""
        return shapely.transform(geometry, self._unproject_xy)

    def _project_xy(self, coords: FloatArray) -> FloatArray:
        x, y = self._forward.transform(coords[:, 0], coords[:, 1])
        return np.column_stack((x, y))

    def _unproject_xy(self, coords: FloatArray) -> FloatArray:
        lon, lat = self._inverse.transform(coords[:, 0], coords[:, 1])
        return np.column_stack((lon, lat))
