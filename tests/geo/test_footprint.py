"""Footprints and `hits()`: geodesic distances, cone direction, and agreement with the polygon."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import shapely
import shapely.geometry
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS, Geod, Transformer
from shapely.geometry.base import BaseGeometry

from tocsin.geo import Footprint, RegionSet, load_region_set

GEOD = Geod(ellps="WGS84")
KYIV = (50.45, 30.52)
KHARKIV = (49.99, 36.23)
# Degrees (about 10 m): how far the lon/lat outline may stray from the planar polygon.
OUTLINE_TOLERANCE_DEG = 1e-4


def geodesic_to_vertices(geometry: BaseGeometry, lat: float, lon: float) -> float:
    """Brute force: `Geod.inv` from the point to every vertex of the densified geometry."""
    coords = shapely.get_coordinates(shapely.segmentize(geometry, 0.002))
    n = len(coords)
    _, _, dist = GEOD.inv(np.full(n, lon), np.full(n, lat), coords[:, 0], coords[:, 1])
    return float(dist.min())


def geodesic_exact(geometry: BaseGeometry, lat: float, lon: float) -> float:
    """Exact: an azimuthal equidistant plane centred on the point keeps distances from it."""
    crs = CRS.from_dict({"proj": "aeqd", "lat_0": lat, "lon_0": lon, "ellps": "WGS84"})
    forward = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)
    planar = shapely.transform(
        shapely.segmentize(geometry, 0.0005),
        lambda c: np.column_stack(forward.transform(c[:, 0], c[:, 1])),
    )
    return float(shapely.distance(planar, shapely.Point(0.0, 0.0)))


def test_footprint_validation() -> None:
    with pytest.raises(ValueError, match="latitude"):
        Footprint(91.0, 0.0, 1.0, None)
    with pytest.raises(ValueError, match="longitude"):
        Footprint(0.0, math.inf, 1.0, None)
    with pytest.raises(ValueError, match="length"):
        Footprint(0.0, 0.0, -1.0, None)
    with pytest.raises(ValueError, match="heading"):
        Footprint(0.0, 0.0, 1.0, math.nan)
    with pytest.raises(ValueError, match="half-angle"):
        Footprint(0.0, 0.0, 1.0, 0.0, 0.0)
    assert Footprint(0.0, 0.0, 1.0, None).is_disc
    assert Footprint(0.0, 0.0, 1.0, 90.0, 180.0).is_disc
    assert not Footprint(0.0, 0.0, 1.0, 90.0).is_disc


def test_disc_around_a_point_inside(hromadas: RegionSet) -> None:
    hits = hromadas.hits(Footprint(*KYIV, 10_000.0, None))
    ids = [rid for rid, _ in hits]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    distances = dict(hits)
    assert distances["cod:UA8000000"] == 0.0
    assert all(0.0 <= d <= 10_010.0 for d in distances.values())
    assert sum(d == 0.0 for d in distances.values()) == 1


def test_zero_length_footprint_is_the_origin(hromadas: RegionSet) -> None:
    fp = Footprint(*KHARKIV, 0.0, 45.0)
    leaf = hromadas.locate(*KHARKIV)
    assert hromadas.hits(fp) == [(leaf, 0.0)]
    assert hromadas.footprint_polygon(fp).geom_type == "Point"


@pytest.mark.parametrize(
    ("lat", "lon"),
    [KYIV, KHARKIV, (46.48, 30.73), (48.3, 25.9), (51.5, 39.2), (55.75, 37.62), (41.5, 47.0)],
)
def test_distances_match_geodesic_brute_force(hromadas: RegionSet, lat: float, lon: float) -> None:
    # Moscow and the Caspian coast are far outside the set: the scale correction must hold.
    hits = hromadas.hits(Footprint(lat, lon, 2_000_000.0, None))
    assert hits
    for rid, dist in hits[:: max(1, len(hits) // 12)]:
        geometry = hromadas.get(rid).geometry
        exact = geodesic_exact(geometry, lat, lon)
        assert dist == pytest.approx(exact, rel=0.001, abs=5.0), rid
        brute = geodesic_to_vertices(geometry, lat, lon)
        assert dist == pytest.approx(brute, rel=0.005, abs=150.0), rid


@pytest.mark.parametrize("name", ["ua-raions", "ua-oblasts"])
def test_distances_on_coarser_sets(name: str) -> None:
    regions = load_region_set(name)
    lat, lon = 52.0, 41.0
    for rid, dist in regions.hits(Footprint(lat, lon, 1_500_000.0, None)):
        exact = geodesic_exact(regions.get(rid).geometry, lat, lon)
        assert dist == pytest.approx(exact, rel=0.001, abs=5.0), rid


def test_cone_points_where_it_says(hromadas: RegionSet) -> None:
    target = hromadas.get(hromadas.locate(*KHARKIV) or "")
    west, _, east, _ = target.geometry.bounds
    lat, lon = KHARKIV[0], west - 0.2
    assert not target.geometry.intersects(shapely.Point(lon, lat))
    away = {rid for rid, _ in hromadas.hits(Footprint(lat, lon, 50_000.0, 270.0, 30.0))}
    towards = dict(hromadas.hits(Footprint(lat, lon, 50_000.0, 90.0, 30.0)))
    assert target.id not in away
    assert target.id in towards
    assert 10_000.0 < towards[target.id] < 20_000.0
    # Only leaves at the apex itself are in both.
    assert all(towards[rid] < 2_000.0 for rid in away & set(towards))
    # Narrow cones do not spill sideways either.
    north = {rid for rid, _ in hromadas.hits(Footprint(lat, lon, 50_000.0, 0.0, 5.0))}
    assert target.id not in north


def test_half_angle_180_is_a_disc(hromadas: RegionSet) -> None:
    disc = hromadas.hits(Footprint(*KHARKIV, 80_000.0, None))
    assert hromadas.hits(Footprint(*KHARKIV, 80_000.0, 123.0, 180.0)) == disc
    assert hromadas.hits(Footprint(*KHARKIV, 80_000.0, 123.0, 270.0)) == disc
    wide = {rid for rid, _ in hromadas.hits(Footprint(*KHARKIV, 80_000.0, 0.0, 150.0))}
    assert wide < {rid for rid, _ in disc}


def test_outline_reaches_length(hromadas: RegionSet) -> None:
    lat, lon = KYIV
    polygon = hromadas.footprint_polygon(Footprint(lat, lon, 200_000.0, 45.0, 30.0))
    coords = shapely.get_coordinates(polygon)
    n = len(coords)
    _, _, dist = GEOD.inv(np.full(n, lon), np.full(n, lat), coords[:, 0], coords[:, 1])
    # The apex is the origin; the rim stays between the true arc and 0.1 % beyond it.
    assert dist.min() == pytest.approx(0.0, abs=0.01)
    assert dist.max() <= 200_000.0 * 1.001
    az, _, _ = GEOD.inv(np.full(n, lon), np.full(n, lat), coords[:, 0], coords[:, 1])
    rim = dist > 150_000.0
    assert np.all((az[rim] % 360.0 > 14.9) & (az[rim] % 360.0 < 75.1))


def test_every_region_within_reach_is_hit(hromadas: RegionSet) -> None:
    lat, lon = 48.5, 35.0
    wider = dict(hromadas.hits(Footprint(lat, lon, 330_000.0, None)))
    hit = dict(hromadas.hits(Footprint(lat, lon, 300_000.0, None)))
    assert set(hit) <= set(wider)
    assert {rid for rid, d in wider.items() if d < 299_000.0} <= set(hit)
    assert all(d <= 300_000.0 * 1.001 for d in hit.values())
    assert all(hit[rid] == wider[rid] for rid in hit)


def test_huge_and_faraway_footprints(hromadas: RegionSet) -> None:
    with_shape = sum(not hromadas.get(rid).geometry.is_empty for rid in hromadas.leaves)
    everything = hromadas.hits(Footprint(*KYIV, 10_000_000.0, None))
    assert len(everything) == with_shape == 1769  # every hromada has a polygon
    assert len(hromadas.hits(Footprint(*KYIV, 2_000_000.0, None))) == with_shape
    # From over the Caspian Sea, 2,100 km covers Kharkiv (1,384 km) but not Uzhhorod (2,279).
    far = dict(hromadas.hits(Footprint(42.0, 50.0, 2_100_000.0, 290.0, 40.0)))
    assert hromadas.locate(*KHARKIV) in far
    assert hromadas.locate(48.62, 22.3) not in far
    assert hromadas.hits(Footprint(-33.9, 151.2, 100_000.0, None)) == []


@pytest.fixture(scope="module")
def lonlat_leaves(hromadas: RegionSet) -> tuple[list[str], shapely.STRtree]:
    ids = [rid for rid in hromadas.leaves if not hromadas.get(rid).geometry.is_empty]
    return ids, shapely.STRtree([hromadas.get(rid).geometry for rid in ids])


footprints = st.builds(
    Footprint,
    lat=st.floats(43.0, 54.0),
    lon=st.floats(20.0, 42.0),
    length_m=st.one_of(st.just(0.0), st.floats(1.0, 800_000.0)),
    heading_deg=st.one_of(st.none(), st.floats(-360.0, 720.0)),
    half_angle_deg=st.floats(0.5, 200.0),
)


@settings(max_examples=150, deadline=None, database=None)
@given(fp=footprints)
def test_hits_agree_with_the_polygon(
    hromadas: RegionSet, lonlat_leaves: tuple[list[str], shapely.STRtree], fp: Footprint
) -> None:
    hits = hromadas.hits(fp)
    ids = [rid for rid, _ in hits]
    assert ids == sorted(set(ids))
    assert set(ids) <= set(hromadas.leaves)
    polygon = hromadas.footprint_polygon(fp)
    grown = polygon.buffer(OUTLINE_TOLERANCE_DEG)
    for rid, dist in hits:
        assert hromadas.get(rid).geometry.intersects(grown), rid
        assert 0.0 <= dist <= fp.length_m * 1.001 + 10.0
    if fp.length_m > 1_000.0:
        shrunk = polygon.buffer(-OUTLINE_TOLERANCE_DEG)
        leaf_ids, tree = lonlat_leaves
        must = {leaf_ids[i] for i in tree.query(shrunk, predicate="intersects")}
        assert must <= set(ids)
    origin = shapely.Point(fp.lon, fp.lat)
    for rid, dist in hits:
        geometry = hromadas.get(rid).geometry
        if dist == 0.0:
            assert geometry.distance(origin) < OUTLINE_TOLERANCE_DEG
        elif geometry.contains(origin.buffer(OUTLINE_TOLERANCE_DEG)):
            pytest.fail(f"{rid} holds the origin but is {dist} m away")


def test_a_set_across_the_equator_uses_exact_distances() -> None:
    # No conic projection fits both hemispheres: the frame falls back to an azimuthal one and
    # every distance goes through `Geod.inv`.
    cells = [
        {
            "type": "Feature",
            "properties": {"id": f"{x}:{y}"},
            "geometry": shapely.geometry.mapping(shapely.box(x, y, x + 1, y + 1)),
        }
        for x in range(30, 34)
        for y in range(-2, 2)
    ]
    regions = RegionSet.from_geojson({"type": "FeatureCollection", "features": cells})
    assert not regions._index.frame.conic
    lat, lon = 0.5, 31.5
    hits = dict(regions.hits(Footprint(lat, lon, 200_000.0, None)))
    assert hits["31:0"] == 0.0
    for rid, dist in hits.items():
        assert dist == pytest.approx(
            geodesic_exact(regions.get(rid).geometry, lat, lon), rel=1e-4, abs=1.0
        ), rid
    assert regions.locate(-1.5, 33.5) == "33:-2"


def test_queries_from_many_threads_agree(hromadas: RegionSet) -> None:
    rng = np.random.default_rng(5)
    footprints = [
        Footprint(float(lat), float(lon), float(length), float(heading))
        for lat, lon, length, heading in zip(
            rng.uniform(45.0, 52.0, 300),
            rng.uniform(23.0, 40.0, 300),
            rng.uniform(1_000.0, 300_000.0, 300),
            rng.uniform(0.0, 360.0, 300),
            strict=True,
        )
    ]

    def work(fp: Footprint) -> tuple[list[tuple[str, float]], str | None]:
        return hromadas.hits(fp), hromadas.locate(fp.lat, fp.lon)

    serial = [work(fp) for fp in footprints]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(work, footprints)) == serial
