"""The set-wide planar frame that footprints and leaf polygons are intersected in.

Intersections run in one conformal projection chosen from the set's extent, not per query:
every leaf polygon is projected once at load time, so a query only projects the few footprint
vertices. For a set in one hemisphere that is a Lambert Conformal Conic with standard parallels
at 1/6 and 5/6 of the set's latitude span, whose scale stays within about 0.1 % of true over
Ukraine; sets that straddle the equator fall back to an azimuthal equidistant projection centred
on the set. Distances never come from the plane: they are measured on the WGS84 ellipsoid with
`GEOD`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Geod, Transformer

__all__ = ["GEOD", "PlanarFrame"]

GEOD = Geod(ellps="WGS84")
_LONLAT = CRS.from_epsg(4326)

FloatArray = NDArray[np.float64]


class PlanarFrame:
    """A projection from lon/lat to metres and back, with its transformers built once."""

    __slots__ = ("crs", "_forward", "_inverse")

    def __init__(self, crs: CRS) -> None:
        self.crs = crs
        # pyproj transformers are thread-safe since 3.1 and costly to create: keep one each way.
        self._forward = Transformer.from_crs(_LONLAT, crs, always_xy=True)
        self._inverse = Transformer.from_crs(crs, _LONLAT, always_xy=True)

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
        params: dict[str, Any]
        if lat_1 * lat_2 > 0.0:
            params = {"proj": "lcc", "lat_1": lat_1, "lat_2": lat_2, "lat_0": (south + north) / 2}
        else:
            params = {"proj": "aeqd", "lat_0": (south + north) / 2.0}
        params.update({"lon_0": lon_0, "ellps": "WGS84", "units": "m", "no_defs": True})
        return cls(CRS.from_dict(params))

    def forward(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Project lon/lat arrays to planar x/y metres."""
        x, y = self._forward.transform(lon, lat)
        return x, y

    def inverse(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Unproject planar x/y arrays to lon/lat."""
        lon, lat = self._inverse.transform(x, y)
        return lon, lat

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
