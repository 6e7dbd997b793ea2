"""The hot path's direct PROJ calls give pyproj's public answers, bit for bit, both ways.

`tocsin.geo.planar` calls the compiled methods under `Geod.fwd` and `Transformer.transform`
on arrays it owns (a footprint is drawn a few hundred thousand times in a night's replay), and
falls back to the public calls on a pyproj without them. A replay must not depend on which
path ran, so both are held to the public calls' bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.geo import Footprint, load_region_set, planar
from tocsin.geo.footprint import outline
from tocsin.geo.planar import GEOD, geod_fwd_inplace

HROMADAS = load_region_set("ua-hromadas")
FRAME = HROMADAS._index.frame

lons = st.floats(-180.0, 180.0, allow_nan=False)
lats = st.floats(-89.9, 89.9, allow_nan=False)


@pytest.fixture(params=[True, False], ids=["direct", "public"])
def direct(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    monkeypatch.setattr(planar, "_DIRECT", request.param)
    yield request.param


def test_this_pyproj_has_the_direct_calls() -> None:
    # Not a requirement of tocsin (the public calls are the fallback), but the constraints pin
    # a pyproj that has them: if an upgrade drops them, the hot path slows and this says why.
    assert planar._DIRECT


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(lons, lats, st.floats(-720.0, 720.0, allow_nan=False),
                          st.floats(0.0, 2.0e7, allow_nan=False)), min_size=1, max_size=40))
def test_geodesic_direct_is_geod_fwd(points: list[tuple[float, float, float, float]]) -> None:
    lon, lat, az, dist = (np.array(column, dtype=np.float64) for column in zip(*points,
                                                                               strict=True))
    want = GEOD.fwd(lon, lat, az, dist)
    for way in (True, False):
        planar._DIRECT = way
        try:
            x, y, a = lon.copy(), lat.copy(), az.copy()
            geod_fwd_inplace(x, y, a, dist)
        finally:
            planar._DIRECT = True
        assert x.tobytes() == np.asarray(want[0]).tobytes()
        assert y.tobytes() == np.asarray(want[1]).tobytes()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(10.0, 50.0), st.floats(35.0, 60.0)), min_size=1,
                max_size=40))
def test_projection_in_place_is_forward(points: list[tuple[float, float]]) -> None:
    lon, lat = (np.array(column, dtype=np.float64) for column in zip(*points, strict=True))
    want_x, want_y = FRAME.forward(lon, lat)
    for way in (True, False):
        planar._DIRECT = way
        try:
            x, y = lon.copy(), lat.copy()
            FRAME.forward_inplace(x, y)
        finally:
            planar._DIRECT = True
        assert x.tobytes() == want_x.tobytes() and y.tobytes() == want_y.tobytes()


def test_views_are_written_through(direct: bool) -> None:
    """`outline` writes the arc straight after the origin through a view of its arrays."""
    lon, lat = np.full(5, 30.0), np.full(5, 50.0)
    az, dist = np.array([0.0, 90.0, 180.0, 270.0]), np.full(4, 100_000.0)
    geod_fwd_inplace(lon[1:], lat[1:], az, dist)
    want = GEOD.fwd(np.full(4, 30.0), np.full(4, 50.0), [0.0, 90.0, 180.0, 270.0], dist)
    assert lon[0] == 30.0 and lat[0] == 50.0
    assert lon[1:].tobytes() == np.asarray(want[0]).tobytes()
    assert lat[1:].tobytes() == np.asarray(want[1]).tobytes()


@pytest.mark.parametrize("heading", [None, 0.0, 137.5, 359.9])
@pytest.mark.parametrize("half_angle", [10.0, 45.0, 90.0])
def test_footprints_hit_the_same_leaves_both_ways(
    heading: float | None, half_angle: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp = Footprint(lat=48.5, lon=35.0, length_m=190_000.0, heading_deg=heading,
                   half_angle_deg=half_angle)
    got = {}
    for way in (True, False):
        monkeypatch.setattr(planar, "_DIRECT", way)
        lon, lat, _ = outline(fp, fp.length_m)
        pos, dist = HROMADAS.hit_positions(fp)
        got[way] = (lon.tobytes(), lat.tobytes(), pos.tobytes(), dist.tobytes())
    assert got[True] == got[False]
    assert len(np.frombuffer(got[True][2], dtype=np.intp)) > 0
