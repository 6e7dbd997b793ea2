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

import math
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Geod, Proj, Transformer

__all__ = ["GEOD", "PlanarFrame"]

GEOD = Geod(ellps="WGS84")
_LONLAT = CRS.from_epsg(4326)
# Planar distances longer than this go through `Geod.inv`: beyond ~3,000 km the straight planar
# segment drifts from the geodesic's image and Simpson's rule passes 0.1 %.
SIMPSON_MAX_M = 2_500_000.0
# Latitudes sampled for the conic frame's scale table (the far pole maps to infinity).
_TABLE_SIZE = 2048
_TABLE_POLE_GAP_DEG = 0.05

FloatArray = NDArray[np.float64]


class PlanarFrame:
    """A projection from lon/lat to metres and back, with its transformers built once."""

    __slots__ = ("_apex_x", "_apex_y", "_forward", "_inverse", "_inv_k", "_k", "_rho", "crs")

    def __init__(self, crs: CRS, *, conic: tuple[float, bool] | None = None) -> None:
        self.crs = crs
        # pyproj transformers are thread-safe since 3.1 and costly to create: keep one each way.
        self._forward = Transformer.from_crs(_LONLAT, crs, always_xy=True)
        self._inverse = Transformer.from_crs(crs, _LONLAT, always_xy=True)
        self._rho: FloatArray | None = None
        self._k: FloatArray = np.empty(0)
        self._inv_k: FloatArray = np.empty(0)
        self._apex_x = self._apex_y = 0.0
        if conic is not None:
            self._scale_table(*conic)

    def _scale_table(self, lon_0: float, south: bool) -> None:
        """Tabulate the conic scale factor against the distance from the apex."""
        apex_lat, far_lat = (-90.0, 90.0) if south else (90.0, -90.0)
        x, y = self.forward(np.array([lon_0]), np.array([apex_lat]))
        self._apex_x, self._apex_y = float(x[0]), float(y[0])
        lat = np.linspace(apex_lat, far_lat, _TABLE_SIZE)
        lat = np.clip(lat, -90.0 + _TABLE_POLE_GAP_DEG, 90.0 - _TABLE_POLE_GAP_DEG)
        lon = np.full(lat.size, lon_0)
        x, y = self.forward(lon, lat)
        rho = np.hypot(x - self._apex_x, y - self._apex_y)
        factors = Proj(self.crs).get_factors(lon, lat)
        order = np.argsort(rho)
        self._rho = rho[order]
        self._k = np.asarray(factors.parallel_scale, dtype=np.float64)[order]
        self._inv_k = 1.0 / self._k

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
        if lat_1 * lat_2 > 0.0:
            params.update(proj="lcc", lat_1=lat_1, lat_2=lat_2, lat_0=(south + north) / 2.0)
            return cls(CRS.from_dict(params), conic=(lon_0, lat_1 < 0.0))
        params.update(proj="aeqd", lat_0=(south + north) / 2.0)
        return cls(CRS.from_dict(params))

    def forward(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Project lon/lat arrays to planar x/y metres."""
        x, y = self._forward.transform(lon, lat)
        return x, y

    def inverse(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Unproject planar x/y arrays to lon/lat."""
        lon, lat = self._inverse.transform(x, y)
        return lon, lat

    @property
    def conic(self) -> bool:
        """True when distances come from the plane with a scale correction (see module doc)."""
        return self._rho is not None

    def scale_variation(self, x: FloatArray, y: FloatArray, radius: FloatArray) -> FloatArray:
        """How much the scale factor varies within `radius` of planar points (0 if not conic)."""
        if self._rho is None:
            return np.zeros(np.shape(x))
        rho = np.hypot(x - self._apex_x, y - self._apex_y)
        # k(rho) has one minimum between the standard parallels, so sample across the range.
        samples = rho[:, None] + radius[:, None] * np.linspace(-1.0, 1.0, 9)[None, :]
        k = np.interp(samples, self._rho, self._k)
        result: FloatArray = k.max(axis=1) - k.min(axis=1)
        return result

    def distances(
        self,
        lon: float,
        lat: float,
        x0: float,
        y0: float,
        x: FloatArray,
        y: FloatArray,
        planar: FloatArray | None = None,
    ) -> FloatArray:
        """Geodesic metres from the origin (`lon`/`lat`, planar `x0`/`y0`) to planar points.

        `planar`, if given, is the planar length to use for each point (the exact distance to a
        region, when `x`/`y` only stand in for its nearest point to place the scale samples).
        """
        if planar is None:
            planar = np.hypot(x - x0, y - y0)
        if self._rho is not None and (not planar.size or planar.max() <= SIMPSON_MAX_M):
            # Simpson's rule for the integral of 1/k along the segment, on a table of 1/k.
            rho = np.hypot(
                np.concatenate(((x0,), (x + x0) * 0.5, x)) - self._apex_x,
                np.concatenate(((y0,), (y + y0) * 0.5, y)) - self._apex_y,
            )
            inv = np.interp(rho, self._rho, self._inv_k)
            n = planar.size
            result: FloatArray = planar * ((inv[0] + 4.0 * inv[1 : n + 1] + inv[n + 1 :]) / 6.0)
            return result
        n = planar.size
        lons, lats = self.inverse(x, y)
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
