"""Region sets, spatial index and geodesic footprints.

`load_region_set()` gives a bundled Ukrainian set (`ua-oblasts`, `ua-raions`, `ua-hromadas`) or
any GeoJSON file; `RegionSet.hits()` says which leaf regions a threat `Footprint` touches and how
far each is from the threat, on the WGS84 ellipsoid.
"""

from __future__ import annotations

from tocsin.geo.geojson import CANONICAL_PROPERTIES
from tocsin.geo.model import Footprint, Names, Region
from tocsin.geo.regions import (
    BUNDLED_REGION_SETS,
    DEFAULT_REGION_SET,
    RegionSet,
    load_region_set,
)

__all__ = [
    "BUNDLED_REGION_SETS",
    "CANONICAL_PROPERTIES",
    "DEFAULT_REGION_SET",
    "Footprint",
    "Names",
    "Region",
    "RegionSet",
    "load_region_set",
]
