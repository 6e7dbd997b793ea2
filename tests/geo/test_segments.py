"""The segment pass gives GEOS's own distances, float for float."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.geo import load_region_set
from tocsin.geo.segments import Segments

HROMADAS = load_region_set("ua-hromadas")
INDEX = HROMADAS._index  # noqa: SLF001 - the projected leaves are what the pass measures
PLANAR = INDEX._planar  # noqa: SLF001
SEGMENTS = INDEX._segments  # noqa: SLF001
X0, Y0, X1, Y1 = (float(v) for v in shapely.total_bounds(PLANAR))


def _geos_and_ours(polygons: np.ndarray, segments: Segments, x: float, y: float) -> tuple[
        np.ndarray, np.ndarray]:
    point = shapely.points(x, y)
    inside = np.flatnonzero(shapely.intersects(polygons, point))
    return shapely.distance(polygons, point), segments.distances(x, y, inside)


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_every_hromada_distance_is_geoss(fx: float, fy: float) -> None:
    # from inside the country and from up to 300 km outside it
    x = X0 - 3e5 + fx * (X1 - X0 + 6e5)
    y = Y0 - 3e5 + fy * (Y1 - Y0 + 6e5)
    geos, ours = _geos_and_ours(PLANAR, SEGMENTS, x, y)
    assert np.array_equal(geos, ours)


def test_holes_parts_and_repeated_vertices() -> None:
    shell = [(0, 0), (10, 0), (10, 10), (10, 10), (0, 10), (0, 0)]  # a repeated vertex
    hole = [(3, 3), (7, 3), (7, 7), (3, 7), (3, 3)]
    polygons = np.array([
        shapely.Polygon(shell, [hole]),
        shapely.MultiPolygon([shapely.box(20, 0, 25, 5), shapely.box(30, 0, 35, 5)]),
        shapely.box(-8, -8, -2, -2),
    ], dtype=object)
    segments = Segments(polygons)
    for x, y in [(5, 5), (5, 1), (27.5, 2), (40, 40), (-5, -5), (10, 5), (3.2, 6.9)]:
        geos, ours = _geos_and_ours(polygons, segments, float(x), float(y))
        assert np.array_equal(geos, ours), (x, y, geos, ours)



def test_a_speck_whose_vertices_coincide_is_measured_to_its_point() -> None:
    # a fuzzed region set had a leaf 1e-9 degrees wide: projected, every vertex is one point
    speck = shapely.Polygon([(5, 5), (5, 5), (5, 5), (5, 5)])
    polygons = np.array([shapely.box(0, 0, 1, 1), speck, shapely.box(8, 8, 9, 9)], dtype=object)
    segments = Segments(polygons)
    for x, y in [(5, 5), (6, 7), (0.5, 0.5), (-3, 2)]:
        geos, ours = _geos_and_ours(polygons, segments, float(x), float(y))
        assert np.array_equal(geos, ours), (x, y, geos, ours)

@settings(max_examples=60, deadline=None)
@given(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(1.0, 1.5))
def test_a_disc_past_the_sets_reach_holds_every_leaf(fx: float, fy: float, more: float) -> None:
    from tocsin.geo.model import Footprint

    lat, lon = 48.5 + 5.0 * fy, 31.5 + 10.0 * fx
    probe = Footprint(lat, lon, 1.0, None)
    reach = INDEX._reach(probe)  # noqa: SLF001
    fp = Footprint(lat, lon, reach * more, None)
    found, dist = INDEX.hit_indices(fp)
    polygon, xy, exact = INDEX._planar_footprint(fp)  # noqa: SLF001 - the general path
    slow = INDEX._intersecting(polygon, xy, exact)  # noqa: SLF001
    assert np.array_equal(found, slow)
    assert np.array_equal(dist, INDEX._distances(fp, xy[0], slow))  # noqa: SLF001


@settings(max_examples=200, deadline=None)
@given(st.floats(44.0, 53.0), st.floats(21.0, 41.0), st.floats(0.0, 360.0),
       st.floats(1_000.0, 600_000.0), st.sampled_from([10.0, 15.0, 30.0, 45.0, 60.0, 180.0]))
def test_the_pre_filters_decide_as_geos_does(lat: float, lon: float, heading: float,
                                             length: float, half: float) -> None:
    from tocsin.geo.model import Footprint

    fp = Footprint(lat, lon, length, None if half == 180.0 else heading, half)
    polygon, xy, exact = INDEX._planar_footprint(fp)  # noqa: SLF001
    found = INDEX._intersecting(polygon, xy, exact)  # noqa: SLF001
    geos = INDEX._tree.query(polygon, predicate="intersects")  # noqa: SLF001
    assert np.array_equal(found, np.sort(geos))
