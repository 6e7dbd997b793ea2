"""The compiled kernel answers as the pure path does: the same leaves, the same floats.

Every test here compares the kernel against GEOS through shapely (the pure path), including
where the kernel must hand a case back: footprints that touch a leaf along an edge or at a
vertex, origins on a boundary, holes, islands and leaves that have collapsed to a point.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.geo import load_region_set
from tocsin.geo.index import LeafIndex
from tocsin.geo.kernel import leafcore
from tocsin.geo.model import Footprint

pytestmark = pytest.mark.skipif(
    leafcore is None, reason="SKIPPED LOUDLY: no compiled kernels (no C compiler, or TOCSIN_PURE=1)"
)

HROMADAS = load_region_set("ua-hromadas")
INDEX = HROMADAS._index  # noqa: SLF001 - the index is what the kernel serves


@contextlib.contextmanager
def pure(index: LeafIndex) -> Iterator[None]:
    """The index with its kernel taken away, as on an installation built without a compiler."""
    core = index._core  # noqa: SLF001
    index._core = None  # noqa: SLF001
    try:
        yield
    finally:
        index._core = core  # noqa: SLF001


def both(index: LeafIndex, fp: Footprint) -> None:
    found, dist = index.hit_indices(fp)
    with pure(index):
        slow_found, slow_dist = index.hit_indices(fp)
    assert np.array_equal(found, slow_found)
    assert dist.dtype == slow_dist.dtype == np.float64
    assert np.array_equal(dist.view(np.int64), slow_dist.view(np.int64))  # bit for bit


def test_the_bundled_sets_have_it() -> None:
    from tocsin.geo.kernel import fieldcore

    assert INDEX._core is not None  # noqa: SLF001
    assert fieldcore is not None


@settings(max_examples=300, deadline=None)
@given(st.floats(44.0, 53.0), st.floats(21.0, 41.0), st.floats(0.0, 360.0),
       st.floats(1_000.0, 2_000_000.0),
       st.sampled_from([5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 170.0, 180.0]))
def test_cones_and_discs_over_the_hromadas(lat: float, lon: float, heading: float,
                                           length: float, half: float) -> None:
    both(INDEX, Footprint(lat, lon, length, None if half == 180.0 else heading, half))


@pytest.mark.parametrize("name", ["ua-oblasts", "ua-raions"])
@settings(max_examples=40, deadline=None)
@given(lat=st.floats(44.0, 53.0), lon=st.floats(21.0, 41.0), heading=st.floats(0.0, 360.0),
       length=st.floats(1_000.0, 900_000.0))
def test_coarser_sets(name: str, lat: float, lon: float, heading: float, length: float) -> None:
    index = load_region_set(name)._index  # noqa: SLF001
    both(index, Footprint(lat, lon, length, heading, 30.0))
    both(index, Footprint(lat, lon, length, None))


# --- hand-made leaves, where the kernel must hand cases back -----------------------------------

SHELL = [(0, 0), (10, 0), (10, 10), (10, 10), (0, 10), (0, 0)]  # a repeated vertex
HOLE = [(3, 3), (7, 3), (7, 7), (3, 7), (3, 3)]
LEAVES = [
    shapely.Polygon(SHELL, [HOLE]),
    shapely.MultiPolygon([shapely.box(20, 0, 25, 5), shapely.box(30, 0, 35, 5)]),
    shapely.box(-8, -8, -2, -2),
    shapely.Polygon([(40, 40), (60, 40), (40, 40.000001)]),  # a sliver
    shapely.Polygon([(0, 20), (12, 20), (6, 30)]),
]
# Planar test leaves: the frame is taken from their extent as if they were degrees, which
# is all the index needs; the kernel is then asked about planar rings directly.
SMALL = LeafIndex([f"L{i}" for i in range(len(LEAVES))],
                  [shapely.affinity.scale(g, 0.01, 0.01, origin=(0, 0)) for g in LEAVES])
PLANAR = SMALL._planar  # noqa: SLF001
CORNERS = shapely.get_coordinates(PLANAR)


def ring_of(coords: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    xy = np.asarray(coords, dtype=np.float64)
    return xy[:, 0].copy(), xy[:, 1].copy()


def geos_meets(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    polygon = shapely.polygons(np.column_stack((x, y)))
    return np.flatnonzero(shapely.intersects(polygon, PLANAR))


def test_rings_that_touch_cross_or_hold_leaves() -> None:
    assert SMALL._core is not None  # noqa: SLF001
    a, b, c = CORNERS[0], CORNERS[1], CORNERS[2]
    mid = (a + b) / 2.0
    cases = [
        [tuple(a), tuple(a + (0.0, -5e3)), tuple(a + (-5e3, 0.0))],  # a vertex touches a corner
        [tuple(mid), tuple(mid + (3e3, -5e3)), tuple(mid + (-3e3, -5e3))],  # touches an edge
        [tuple(a), tuple(b), tuple(b + (0.0, -4e3)), tuple(a + (0.0, -4e3))],  # shares an edge
        [tuple(a + (-1e3, -1e3)), tuple(c + (1e3, 1e3)), tuple(a + (-1e3, 2e3))],  # crosses
        [tuple(p) for p in CORNERS[20:23]],  # from a hole's or another leaf's own vertices
        [(-1e9, -1e9), (1e9, -1e9), (0.0, 1e9)],  # holds everything
        [(5e5, 5e5), (5e5 + 1.0, 5e5), (5e5, 5e5 + 1.0)],  # far from all
    ]
    x, y = ring_of(cases[0])
    unsure = SMALL._core.cover(x, y)[1]  # noqa: SLF001
    assert 0 in np.frombuffer(unsure, dtype=np.intp)  # a touch is GEOS's to judge
    for coords in cases:
        x, y = ring_of(coords)
        found = SMALL._cover_ring(x, y)  # noqa: SLF001
        assert np.array_equal(found, geos_meets(x, y)), coords


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(CORNERS) - 1), st.floats(-3e3, 3e3),
                          st.floats(-3e3, 3e3), st.booleans()), min_size=3, max_size=7))
def test_rings_through_leaf_vertices(picks: list[tuple[int, float, float, bool]]) -> None:
    # vertices on (or near) the leaves' own vertices: touching is the common case here
    coords = [(float(CORNERS[i][0] + (dx if off else 0.0)),
               float(CORNERS[i][1] + (dy if off else 0.0))) for i, dx, dy, off in picks]
    x, y = ring_of(coords)
    polygon = shapely.polygons(np.column_stack((x, y)))
    if not polygon.is_valid:
        return  # footprints are simple polygons; GEOS itself has no one answer for others
    found = SMALL._cover_ring(x, y)  # noqa: SLF001
    assert np.array_equal(found, geos_meets(x, y)), coords


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(CORNERS) - 1), st.floats(0.0, 2.0 * math.pi),
       st.sampled_from([1e-12, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-3]), st.booleans(),
       st.floats(10.0, 5e3))
def test_rings_that_just_miss_or_just_reach_a_leaf_vertex(
    i: int, angle: float, gap: float, outside: bool, size: float
) -> None:
    # A triangle whose edge passes a leaf vertex a hair's breadth away (down to 1e-12 m, below
    # the spacing of the coordinates themselves), on either side: each sign the kernel
    # decides there must be the one GEOS's robust predicates give.
    v = CORNERS[i]
    t = np.array([math.cos(angle), math.sin(angle)])
    n = np.array([-t[1], t[0]])
    base = v + (gap if outside else -gap) * n  # the edge's line, off the vertex by `gap`
    coords = [tuple(base - size * t), tuple(base + size * t), tuple(base + size * n)]
    x, y = ring_of([(float(a), float(b)) for a, b in coords])
    found = SMALL._cover_ring(x, y)  # noqa: SLF001
    assert np.array_equal(found, geos_meets(x, y)), (coords, gap, outside)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(CORNERS) - 1), st.floats(-2e3, 2e3), st.floats(-2e3, 2e3),
       st.booleans())
def test_distances_on_and_off_boundaries(i: int, dx: float, dy: float, on: bool) -> None:
    x, y = float(CORNERS[i][0]), float(CORNERS[i][1])
    if not on:
        x, y = x + dx, y + dy
    found = np.arange(len(PLANAR), dtype=np.intp)
    ours = SMALL._planar_distances(np.array([x, y]), found)  # noqa: SLF001
    geos = shapely.distance(PLANAR, shapely.points(x, y))
    assert np.array_equal(ours, geos), (x, y, ours, geos)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_every_hromada_distance_is_geoss(fx: float, fy: float) -> None:
    x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds(INDEX._planar))  # noqa: SLF001
    x = x0 - 3e5 + fx * (x1 - x0 + 6e5)
    y = y0 - 3e5 + fy * (y1 - y0 + 6e5)
    found = np.arange(len(INDEX), dtype=np.intp)
    ours = INDEX._planar_distances(np.array([x, y]), found)  # noqa: SLF001
    geos = shapely.distance(INDEX._planar, shapely.points(x, y))  # noqa: SLF001
    assert np.array_equal(ours, geos)


def test_an_origin_on_a_shared_border_is_zero_in_both_leaves() -> None:
    # two hromadas' common vertex: inside neither, on both, so GEOS says 0 to each
    coords, owner = shapely.get_coordinates(INDEX._planar, return_index=True)  # noqa: SLF001
    for k in range(0, len(coords), 997):
        x, y = coords[k]
        near = INDEX._tree.query(shapely.points(x, y), predicate="intersects")  # noqa: SLF001
        assert owner[k] in near
        ours = INDEX._planar_distances(np.array([x, y]), np.sort(near))  # noqa: SLF001
        assert np.array_equal(ours, np.zeros(near.size))


# --- what the type refuses -----------------------------------------------------------------------


def test_bad_arrays_are_refused_by_name() -> None:
    assert leafcore is not None
    f = np.zeros(1)
    with pytest.raises(ValueError, match="start"):
        leafcore.LeafTable(f, f, f, f, f, f, f, f, f, np.zeros(2), 1.0)  # floats as offsets
    with pytest.raises(ValueError, match="box"):
        leafcore.LeafTable(f, f, np.zeros(32), f, f, f, f, f, f, np.array([0, 1]), 1.0)
    with pytest.raises(ValueError, match="offsets"):
        leafcore.LeafTable(np.zeros(4), np.zeros(16), np.zeros(32), f, f, f, f, f, f,
                           np.array([1, 0]), 1.0)
    core = SMALL._core  # noqa: SLF001
    assert core is not None
    with pytest.raises(ValueError, match="3 vertices"):
        core.cover(np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="3 vertices"):
        core.cover(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64))
    with pytest.raises(IndexError):
        core.distances(0.0, 0.0, np.array([len(PLANAR)], dtype=np.intp))
    with pytest.raises(ValueError, match="intp"):
        core.distances(0.0, 0.0, np.array([0.0]))


# --- the scale correction, written out ------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e9, 1e14, allow_nan=False), min_size=1, max_size=50))
def test_the_scale_table_reads_as_numpys_interp(squared: list[float]) -> None:
    frame = INDEX.frame
    table = frame._rho2  # noqa: SLF001
    assert table is not None
    x = np.array(squared + table[:: 97].tolist(), dtype=np.float64)  # rows hit exactly too
    want = np.interp(x, table, frame._inv_k)  # noqa: SLF001
    assert np.array_equal(frame.inv_k(x), want)
    assert [frame.inv_k_at(float(v)) for v in x] == want.tolist()


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_scale_factors_are_plain_float_steps(dx: float, dy: float) -> None:
    # the same steps in Python floats (one rounding each, never fused): what every CPU gives;
    # `r @ r` through a BLAS differs from this in about one case in six on this machine
    frame = INDEX.frame
    half, end = INDEX._half[:300], INDEX._end[:300]  # noqa: SLF001
    origin = np.array([dx, dy]) + frame._apex  # noqa: SLF001
    rx, ry = float(origin[0] - frame._apex[0]), float(origin[1] - frame._apex[1])  # noqa: SLF001
    start = frame.inv_k_at(rx * rx + ry * ry) * (1.0 / 6.0)
    want = []
    for (hx, hy), e in zip(half.tolist(), end.tolist(), strict=True):
        mx, my = hx + rx * 0.5, hy + ry * 0.5
        want.append(frame.inv_k_at(mx * mx + my * my) * (4.0 / 6.0) + e + start)
    assert frame.scale_factors(origin, half, end).tolist() == want
