"""Random GeoJSON through `RegionSet.from_geojson`: a set, or a clear `RegionSetError`.

Invalid rings (too short, unclosed, self-crossing), rings across the antimeridian, coordinates
out of range or not finite, empty and missing geometries, wrong geometry types, missing,
duplicate and ill-typed ids, parents that are absent or form loops, and documents that are not
FeatureCollections at all. Whatever the input, loading either gives a set whose `locate()` and
`hits()` work, or raises `RegionSetError` naming the problem; never another exception.
"""

from __future__ import annotations

import json
import math
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from tocsin.errors import RegionSetError
from tocsin.geo import Footprint, RegionSet

pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning",
    # shapely warns (RuntimeWarning) on some degenerate input while computing; a warning is
    # not the failure this suite looks for
    "ignore::RuntimeWarning",
)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

finite_lon = st.floats(-180, 180, allow_nan=False)
finite_lat = st.floats(-90, 90, allow_nan=False)
wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
                 st.just("12"), st.none(), st.booleans())
position = st.one_of(
    st.tuples(finite_lon, finite_lat).map(list),
    st.tuples(st.floats(170, 190), st.floats(-5, 5)).map(list),  # around the antimeridian
    st.lists(wild, min_size=0, max_size=4),  # wrong arity or types
)


@st.composite
def ring(draw: st.DrawFn) -> list[Any]:
    kind = draw(st.sampled_from(["square", "bowtie", "antimeridian", "random", "short",
                                 "unclosed", "pole", "spike"]))
    x = draw(st.floats(-170, 170))
    y = draw(st.floats(-80, 80))
    d = draw(st.sampled_from([0.0, 1e-9, 0.01, 1.0, 20.0]))
    if kind == "square":
        return [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]
    if kind == "bowtie":
        return [[x, y], [x + d, y + d], [x + d, y], [x, y + d], [x, y]]
    if kind == "antimeridian":
        return [[179.0, y], [-179.0, y], [-179.0, y + 1], [179.0, y + 1], [179.0, y]]
    if kind == "short":
        return [[x, y], [x, y]]
    if kind == "unclosed":
        return [[x, y], [x + 1, y], [x + 1, y + 1]]
    if kind == "pole":
        return [[-180, 85], [0, 90], [180, 85], [-180, 85]]
    if kind == "spike":
        return [[x, y], [x + 1, y], [x + 2, y], [x + 1, y], [x, y + 1], [x, y]]
    pts = draw(st.lists(position, min_size=0, max_size=8))
    return pts + pts[:1] if draw(st.booleans()) else pts


@st.composite
def geometry(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "empty",
                                 "null", "GeometryCollection", "garbage", "holes"]))
    if kind == "Polygon":
        return {"type": "Polygon", "coordinates": [draw(ring())]}
    if kind == "holes":
        return {"type": "Polygon", "coordinates": draw(st.lists(ring(), min_size=1, max_size=3))}
    if kind == "MultiPolygon":
        return {"type": "MultiPolygon",
                "coordinates": [[draw(ring())] for _ in range(draw(st.integers(0, 3)))]}
    if kind == "Point":
        return {"type": "Point", "coordinates": draw(position)}
    if kind == "LineString":
        return {"type": "LineString", "coordinates": draw(st.lists(position, max_size=4))}
    if kind == "empty":
        return {"type": draw(st.sampled_from(["Polygon", "MultiPolygon"])), "coordinates": []}
    if kind == "null":
        return None
    if kind == "GeometryCollection":
        return {"type": "GeometryCollection", "geometries": [draw(geometry())]}
    return draw(st.one_of(st.just("POLYGON"), st.integers(), st.just({}),
                          st.just({"type": "Polygon"}), st.just({"type": "Circle",
                                                                 "coordinates": [0, 0]}),
                          st.just({"type": "Polygon", "coordinates": "0 0"}),
                          st.just({"type": "Polygon", "coordinates": [[["a", "b"]]]})))


ids = st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3), st.none(), st.just(""),
                st.booleans(), st.floats(allow_nan=True), st.lists(st.integers(), max_size=1))


@st.composite
def feature(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 30)) == 0:
        return draw(st.one_of(st.none(), st.integers(), st.just({"type": "Point"}),
                              st.just({"type": "Feature", "properties": "x"})))
    props: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        props["id"] = draw(ids)
    if draw(st.booleans()):
        props["parent"] = draw(ids)
    if draw(st.booleans()):
        props["name_en"] = draw(st.one_of(st.text(max_size=5), st.integers()))
    if draw(st.booleans()):
        props["shelter_s"] = draw(wild)
    if draw(st.booleans()):
        props["alerts_uid"] = draw(wild)
    if draw(st.booleans()):
        props["level"] = draw(st.one_of(st.text(max_size=4), st.integers(), st.none()))
    out: dict[str, Any] = {"type": "Feature", "properties": props}
    if draw(st.integers(0, 9)):
        out["geometry"] = draw(geometry())
    return out


collection = st.one_of(
    st.builds(lambda fs: {"type": "FeatureCollection", "features": fs},
              st.lists(feature(), max_size=6)),
    st.sampled_from([{}, [], {"type": "FeatureCollection"}, {"type": "Feature"},
                     {"type": "FeatureCollection", "features": {}}, "null", "{", "[1, 2]"]),
)


def exercise(regions: RegionSet) -> None:
    """A loaded set must answer the engine's questions without failing."""
    regions.locate(0.0, 0.0)
    for rid in regions.leaves[:3]:
        geom = regions.regions[rid].geometry
        if geom.is_empty:
            continue
        point = geom.representative_point()
        if not (math.isfinite(point.x) and math.isfinite(point.y)):
            continue
        lat, lon = max(-89.0, min(89.0, point.y)), point.x
        assert regions.locate(lat, lon) is None or regions.locate(lat, lon) in regions.leaves
        for fp in (Footprint(lat, lon, 50_000.0, 90.0, 30.0),
                   Footprint(lat, lon, 3_000_000.0, None, 180.0)):
            for leaf, dist in regions.hits(fp):
                assert leaf in regions.regions and dist >= 0.0
            regions.footprint_polygon(fp)


@FUZZ
@given(collection)
def test_random_geojson_loads_or_raises_region_set_error(data: Any) -> None:
    text = data if isinstance(data, str) else None
    try:
        regions = RegionSet.from_geojson(text if text is not None else data, name="fuzz")
    except RegionSetError as exc:
        assert str(exc), "a RegionSetError says what is wrong"
        return
    exercise(regions)


@FUZZ
@given(st.lists(feature(), max_size=6))
def test_the_same_through_json_text(features: list[Any]) -> None:
    doc = {"type": "FeatureCollection", "features": features}
    try:
        text = json.dumps(doc, allow_nan=True)
    except (TypeError, ValueError):
        return
    try:
        regions = RegionSet.from_geojson(text, name="fuzz")
    except RegionSetError:
        return
    exercise(regions)


@pytest.mark.parametrize(("features", "message"), [
    ([{"type": "Feature", "properties": {}, "geometry": None}], "missing id"),
    ([{"type": "Feature", "properties": {"id": True}, "geometry": None}], "id must be"),
    ([{"type": "Feature", "properties": {"id": "a"},
       "geometry": {"type": "Polygon", "coordinates": [[["x", 1]]]}}], "bad geometry"),
    ([{"type": "Feature", "properties": {"id": "a"},
       "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}], "bad geometry"),
    ([{"type": "Feature", "properties": {"id": "a", "parent": "b"}, "geometry": None}],
     "parent 'b' is not in the set"),
    ([{"type": "Feature", "properties": {"id": "a"},
       "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, math.nan],
                                                        [0, 0]]]}}], "not a finite number"),
])
def test_clear_messages(features: list[Any], message: str) -> None:
    with pytest.raises(RegionSetError, match=message):
        RegionSet.from_geojson({"type": "FeatureCollection", "features": features})


@pytest.mark.parametrize("geometry", [
    # an empty part inside a multi-polygon (GEOS crashed segmentizing it)
    {"type": "MultiPolygon", "coordinates": [[[]], [[[-180, 85], [0, 90], [180, 85],
                                                      [-180, 85]]]]},
    {"type": "GeometryCollection", "geometries": [
        {"type": "MultiPolygon", "coordinates": [[[]], [[[0, 0], [1, 0], [1, 1], [0, 0]]]]}]},
    # a set hugging the equator (its conic frame was degenerate)
    {"type": "Polygon", "coordinates": [[[0, 0], [1e-9, 0], [1e-9, 1e-9], [0, 1e-9], [0, 0]]]},
    # across the antimeridian
    {"type": "Polygon", "coordinates": [[[179, 60], [-179, 60], [-179, 61], [179, 61],
                                         [179, 60]]]},
])
def test_found_by_fuzzing_now_load(geometry: dict[str, Any]) -> None:
    regions = RegionSet.from_geojson({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "a"}, "geometry": geometry}]})
    exercise(regions)


@pytest.mark.parametrize("hole", [
    [[0.0, 1.0], [1e-09, 1.0], [1e-09, 1.000000001], [0.0, 1.000000001], [0.0, 1.0]],
    [[1.0, 0.0], [1.000000001, 0.0], [1.000000001, 1e-09], [1.0, 1e-09], [1.0, 0.0]],
])
def test_a_shell_collapsed_to_a_point_beside_a_tiny_hole_loads_or_is_refused_by_name(
        hole: list[list[float]]) -> None:
    # found by the fuzzer: GEOS's default repair gives up on it ("mixed dimension")
    doc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"id": "a"},
        "geometry": {"type": "Polygon", "coordinates": [[[0.0, 0.0]] * 5, hole]}}]}
    try:
        regions = RegionSet.from_geojson(json.dumps(doc), name="fuzz")
    except RegionSetError as exc:
        assert "feature" in str(exc) or "'a'" in str(exc)
        return
    exercise(regions)
