"""Region sets: a hierarchy of regions with a spatial index over its leaves.

A `RegionSet` holds every region of every level loaded (for the bundled Ukrainian sets: oblasts,
raions and hromadas in one hierarchy). Alerts are decided at the *leaves*, the regions with no
child in the set, and rolled up to their ancestors; `leaves_under()` gives the leaves a parent
rolls up from. Only leaves are located and hit by footprints.

Bundled sets (`load_region_set`), built by `scripts/build_regions.py` from OCHA COD-AB
boundaries (see `data/ATTRIBUTION.md`):

- `ua-oblasts`: the 27 first-level units (24 oblasts, Crimea, Kyiv and Sevastopol cities);
- `ua-raions`: those plus 139 raion-level units as leaves;
- `ua-hromadas` (the default): those plus 1,769 hromada-level units as leaves.

Ids are 19-character KATOTTG codes (`UA01020030000085835`). The three COD units that have no
KATOTTG raion or hromada code use their COD P-code instead: `cod:UA3200` and `cod:UA3200000`
(Chornobyl Exclusion Zone, under Kyivska `UA32000000000030281`), `cod:UA8000` and
`cod:UA8000000` (Kyiv, under `UA80000000000093317`), `cod:UA8500` and `cod:UA8500000`
(Sevastopol, under `UA85000000000065278`); each hromada-level one is the child of its
raion-level one.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from tocsin.errors import RegionSetError, UnknownRegion
from tocsin.geo.geojson import regions_from_geojson
from tocsin.geo.index import LeafIndex
from tocsin.geo.model import Footprint, Region

__all__ = ["BUNDLED_REGION_SETS", "DEFAULT_REGION_SET", "RegionSet", "load_region_set"]

DEFAULT_REGION_SET = "ua-hromadas"
# Each bundled set is its own file plus every coarser one, coarse files first.
BUNDLED_REGION_SETS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ua-oblasts": ("ua-oblasts",),
        "ua-raions": ("ua-oblasts", "ua-raions"),
        "ua-hromadas": ("ua-oblasts", "ua-raions", "ua-hromadas"),
    }
)


class RegionSet:
    """A named hierarchy of regions; alerts are decided at its leaves."""

    __slots__ = ("_bounds", "_children", "_index", "_index_pos", "_leaves_under", "leaves", "name",
                 "regions")

    def __init__(self, name: str, regions: Iterable[Region]) -> None:
        by_id: dict[str, Region] = {}
        for region in regions:
            if region.id in by_id:
                raise RegionSetError(f"region set {name!r}: duplicate region id {region.id!r}")
            by_id[region.id] = region
        if not by_id:
            raise RegionSetError(f"region set {name!r} has no regions")
        children: dict[str, list[str]] = {rid: [] for rid in by_id}
        for region in by_id.values():
            if region.parent is None:
                continue
            if region.parent not in by_id:
                raise RegionSetError(
                    f"region set {name!r}: region {region.id!r} has parent {region.parent!r},"
                    " which is not in the set"
                )
            children[region.parent].append(region.id)
        _check_acyclic(name, by_id)
        self.name = name
        self.regions: Mapping[str, Region] = MappingProxyType(by_id)
        self._children = {rid: tuple(sorted(kids)) for rid, kids in children.items()}
        self.leaves: tuple[str, ...] = tuple(sorted(rid for rid, k in children.items() if not k))
        under: dict[str, list[str]] = {rid: [] for rid in by_id}
        for leaf in self.leaves:
            rid: str | None = leaf
            while rid is not None:
                under[rid].append(leaf)
                rid = by_id[rid].parent
        # Leaves are visited in sorted order, so every list is already sorted.
        self._leaves_under = {rid: tuple(leaves) for rid, leaves in under.items()}
        self._index = LeafIndex(self.leaves, [by_id[rid].geometry for rid in self.leaves])
        # the index leaves out empty geometries: its positions, as positions in `leaves`
        pos = {leaf: i for i, leaf in enumerate(self.leaves)}
        self._index_pos = np.array([pos[leaf] for leaf in self._index.ids], dtype=np.intp)
        geoms = np.array([r.geometry for r in by_id.values()], dtype=object)
        west, south, east, north = (float(v) for v in shapely.total_bounds(geoms))
        self._bounds = (west, south, east, north)

    def __repr__(self) -> str:
        return f"<RegionSet {self.name!r}: {len(self.regions)} regions, {len(self.leaves)} leaves>"

    def __len__(self) -> int:
        return len(self.regions)

    def __contains__(self, region_id: object) -> bool:
        return region_id in self.regions

    def get(self, region_id: str) -> Region:
        """The region with this id; raises `UnknownRegion` if the set has none."""
        try:
            return self.regions[region_id]
        except KeyError:
            raise self._unknown(region_id) from None

    def chain(self, region_id: str) -> list[Region]:
        """The region, then its parent, and so on up to its root."""
        region = self.get(region_id)
        out = [region]
        while region.parent is not None:
            region = self.regions[region.parent]
            out.append(region)
        return out

    def children(self, region_id: str) -> tuple[str, ...]:
        """Sorted ids of the region's direct children."""
        try:
            return self._children[region_id]
        except KeyError:
            raise self._unknown(region_id) from None

    def leaves_under(self, region_id: str) -> tuple[str, ...]:
        """Sorted ids of the leaves at or below the region; a leaf gives itself."""
        try:
            return self._leaves_under[region_id]
        except KeyError:
            raise self._unknown(region_id) from None

    def _unknown(self, region_id: str) -> UnknownRegion:
        return UnknownRegion(f"unknown region {region_id!r} in set {self.name!r}")

    def warm(self) -> None:
        """Make the calling thread's projection objects now (see `PlanarFrame.warm`)."""
        self._index.frame.warm()

    def locate(self, lat: float, lon: float) -> str | None:
        """The leaf whose polygon covers the point (the lowest id on a border), or None."""
        return self._index.locate(lat, lon)

    def hits(self, fp: Footprint) -> list[tuple[str, float]]:
        """Leaves the footprint touches, by id, with geodesic metres from its origin (0 inside)."""
        return self._index.hits(fp)

    def hit_arrays(self, fp: Footprint) -> tuple[list[str], NDArray[np.float64]]:
        """`hits()` as the leaf ids in order and their metres as one array."""
        return self._index.hit_arrays(fp)

    def hit_positions(self, fp: Footprint) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """`hits()` as sorted positions in `leaves` and their metres as one array."""
        found, dist = self._index.hit_indices(fp)
        return self._index_pos[found], dist

    def footprint_polygon(self, fp: Footprint) -> BaseGeometry:
        """The footprint as the lon/lat polygon `hits()` intersects (a point for length 0)."""
        # Past 2,000 km it is drawn only as far as the set reaches, which changes no hit.
        return self._index.footprint_polygon(fp)

    def bounds(self) -> tuple[float, float, float, float]:
        """West, south, east, north of all region geometries in degrees (NaN if none)."""
        return self._bounds

    @classmethod
    def from_geojson(
        cls,
        data: Mapping[str, Any] | str | Path,
        *,
        name: str | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> RegionSet:
        """Load a set from a FeatureCollection, JSON text, or a `.geojson`/`.geojson.gz` path."""
        # `mapping` maps canonical property names (`id`, `parent`, `name_en`, `shelter_s`, …) to
        # the file's, e.g. `{"id": "iso_3166_2", "name_en": "name"}`; see `tocsin.geo.geojson`.
        source = "<geojson>"
        if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith("{")):
            path = Path(data)
            source = str(path)
            data = _read_json(path)
            if name is None:
                name = _stem(path)
        elif isinstance(data, str):
            data = _parse_json(data, source)
        if not isinstance(data, Mapping):
            raise RegionSetError(f"{source}: expected a GeoJSON FeatureCollection object")
        if name is None:
            given = data.get("name")
            name = given if isinstance(given, str) and given else "regions"
        return cls(name, regions_from_geojson(data, mapping=mapping, source=source))


def _check_acyclic(name: str, by_id: Mapping[str, Region]) -> None:
    """Raise if any region is its own ancestor."""
    done: set[str] = set()
    for start in by_id:
        path: list[str] = []
        on_path: set[str] = set()
        rid: str | None = start
        while rid is not None and rid not in done:
            if rid in on_path:
                loop = " -> ".join(path[path.index(rid) :] + [rid])
                raise RegionSetError(f"region set {name!r}: parent loop {loop}")
            path.append(rid)
            on_path.add(rid)
            rid = by_id[rid].parent
        done.update(path)


def _stem(path: Path) -> str:
    """File name without `.gz`, `.geojson` or `.json`."""
    stem = path.name
    for suffix in (".gz", ".geojson", ".json"):
        stem = stem.removesuffix(suffix)
    return stem


def _parse_json(text: str | bytes, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RegionSetError(f"{source}: not valid JSON: {exc}") from None


def _read_json(path: Path) -> Any:
    """Parse a JSON file, gunzipping it if its name ends in `.gz`."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise RegionSetError(f"cannot read region file {path}: {exc}") from None
    return _parse_json(raw, str(path))


@cache
def _load_bundled(name: str) -> RegionSet:
    """Build a bundled set once per process; sets are immutable, so sharing it is safe."""
    features: list[Any] = []
    data = resources.files("tocsin.geo") / "data"
    for part in BUNDLED_REGION_SETS[name]:
        raw = gzip.decompress((data / f"{part}.geojson.gz").read_bytes())
        features.extend(_parse_json(raw, part)["features"])
    collection = {"type": "FeatureCollection", "name": name, "features": features}
    return RegionSet(name, regions_from_geojson(collection, source=name))


def load_region_set(name_or_path: str | Path = DEFAULT_REGION_SET) -> RegionSet:
    """A bundled set by name (`ua-oblasts`, `ua-raions`, `ua-hromadas`) or a GeoJSON file."""
    if isinstance(name_or_path, str) and name_or_path in BUNDLED_REGION_SETS:
        return _load_bundled(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(BUNDLED_REGION_SETS)
        raise RegionSetError(
            f"no bundled region set or file {str(name_or_path)!r} (bundled: {known})"
        )
    return RegionSet.from_geojson(path)
