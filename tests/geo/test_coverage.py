"""The bundled regions tile the country, nest exactly and are served as RFC 7946 asks;
`tocsin regions check` finds and repairs gaps and overlaps of any region file."""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from tocsin.cli import main
from tocsin.geo import RegionSet
from tocsin.geo.coverage import check_coverage, outline_of, repair_coverage

SAMPLES = 100_000
# Points that lay in no hromada before the layer was repaired, with their oblast.
ONCE_IN_NO_HROMADA = [
    (50.1, 23.9, "UA46000000000026241"),  # Lvivska
    (51.1, 25.4, "UA07000000000024379"),  # Volynska
    (48.05, 37.53, "UA14000000000091971"),  # Donetska
]
CRIMEA = "UA01000000000013043"


def _leaf_geoms(regions: RegionSet) -> np.ndarray:
    out = np.empty(len(regions.leaves), dtype=object)
    out[:] = [regions.get(rid).geometry for rid in regions.leaves]
    return out


def _sample(outline: Any, n: int, seed: int) -> np.ndarray:
    """`n` uniform random (lon, lat) points inside `outline`."""
    rng = np.random.default_rng(seed)
    west, south, east, north = outline.bounds
    shapely.prepare(outline)
    found: list[np.ndarray] = []
    count = 0
    while count < n:
        xy = rng.uniform((west, south), (east, north), size=(2 * n, 2))
        inside = xy[shapely.contains_xy(outline, xy[:, 0], xy[:, 1])]
        found.append(inside)
        count += len(inside)
    return np.concatenate(found)[:n]


def _cover_counts(geoms: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """How many of `geoms` cover each point."""
    points = shapely.points(xy)
    hit_points, _hit_geoms = shapely.STRtree(geoms).query(points, predicate="intersects")
    return np.bincount(hit_points, minlength=len(points))


# --- the bundled layer ---------------------------------------------------------------------------


def test_every_point_of_the_country_is_in_exactly_one_hromada(hromadas: RegionSet) -> None:
    geoms = _leaf_geoms(hromadas)
    outline = outline_of(list(geoms), 1e-5)
    xy = _sample(outline, SAMPLES, seed=12)
    counts = _cover_counts(geoms, xy)
    assert len(counts) == SAMPLES
    assert (counts == 0).sum() == 0, xy[counts == 0][:5]
    assert (counts > 1).sum() == 0, xy[counts > 1][:5]


def test_the_outline_is_the_source_country(hromadas: RegionSet, shared_data: Path) -> None:
    source = shared_data / "ua_admin_boundaries"
    shapes = []
    for name in ("cod_ab_adm1_oblasts.geojson", "cod_ab_adm3_hromadas.geojson"):
        data = json.loads((source / name).read_text(encoding="utf-8"))
        shapes += [shape(f["geometry"]) for f in data["features"]]
    country = outline_of([s for s in shapes if not s.is_empty], 1e-5)
    ours = outline_of(list(_leaf_geoms(hromadas)), 1e-5)
    # Coverage simplification moves the coast and border very little (9e-8 of the area).
    assert shapely.symmetric_difference(country, ours).area < 1e-6 * country.area
    xy = _sample(country, SAMPLES, seed=16)
    counts = _cover_counts(_leaf_geoms(hromadas), xy)
    assert (counts > 1).sum() == 0
    assert (counts == 0).sum() == 0


def test_raions_and_oblasts_are_unions_of_their_hromadas(hromadas: RegionSet) -> None:
    for rid, region in hromadas.regions.items():
        if region.level == "hromada":
            continue
        children = [hromadas.get(c).geometry for c in hromadas.children(rid)]
        union = shapely.coverage_union_all(children)
        assert shapely.symmetric_difference(region.geometry, union).area == 0.0, rid
        assert shapely.covers(region.geometry, union) and shapely.covers(union, region.geometry)


@pytest.mark.parametrize(("lat", "lon", "oblast"), ONCE_IN_NO_HROMADA)
def test_points_that_were_in_gaps_now_locate(
    hromadas: RegionSet, lat: float, lon: float, oblast: str
) -> None:
    leaf = hromadas.locate(lat, lon)
    assert leaf is not None
    chain = hromadas.chain(leaf)
    assert [r.level for r in chain] == ["hromada", "raion", "oblast"]
    assert chain[-1].id == oblast
    assert main(["regions", "locate", str(lat), str(lon)]) == 0


def test_a_siren_in_a_former_gap_is_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hromadas: RegionSet
) -> None:
    csv = tmp_path / "sirens.csv"
    csv.write_text("id,lat,lon,name\ns-gap,50.1,23.9,once in no hromada\n", encoding="utf-8")
    data = tmp_path / "data"
    assert main(["sirens", "import", str(csv), "--data-dir", str(data)]) == 0
    assert "imported 1 sirens in 1 regions" in capsys.readouterr().out
    assert main(["sirens", "list", "--data-dir", str(data)]) == 0
    row = capsys.readouterr().out.split("\t")
    assert row[:2] == ["s-gap", hromadas.locate(50.1, 23.9)]


def _bundled(name: str) -> list[dict[str, Any]]:
    blob = (resources.files("tocsin.geo") / "data" / f"{name}.geojson.gz").read_bytes()
    features: list[dict[str, Any]] = json.loads(gzip.decompress(blob))["features"]
    return features


def _exteriors(geometry: dict[str, Any]) -> list[list[list[float]]]:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry[
        "coordinates"]
    return [polygon[0] for polygon in polygons]


def _interiors(geometry: dict[str, Any]) -> list[list[list[float]]]:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry[
        "coordinates"]
    return [ring for polygon in polygons for ring in polygon[1:]]


def _ccw(ring: list[list[float]]) -> bool:
    return bool(shapely.LinearRing(ring).is_ccw)


@pytest.mark.parametrize("name", ["ua-oblasts", "ua-raions", "ua-hromadas"])
def test_bundled_geometry_is_never_null_and_winds_as_rfc_7946_asks(name: str) -> None:
    for feature in _bundled(name):
        geometry = feature["geometry"]
        assert geometry is not None and geometry["type"] in ("Polygon", "MultiPolygon")
        assert all(_ccw(ring) for ring in _exteriors(geometry)), feature["properties"]["id"]
        assert not any(_ccw(ring) for ring in _interiors(geometry))


def test_the_two_crimean_units_without_a_source_polygon_have_one(hromadas: RegionSet) -> None:
    for rid in ("UA01080390000062037", "UA01160470000074732"):
        region = hromadas.get(rid)
        assert not region.geometry.is_empty
        raion = hromadas.get(region.parent or "")
        assert raion.geometry.covers(region.geometry)
        assert hromadas.chain(rid)[-1].id == CRIMEA
        point = region.geometry.representative_point()
        assert hromadas.locate(point.y, point.x) == rid


def test_a_clockwise_file_is_served_counter_clockwise(tmp_path: Path) -> None:
    ring = [[30.0, 50.0], [30.0, 51.0], [31.0, 51.0], [31.0, 50.0], [30.0, 50.0]]  # clockwise
    assert not _ccw(ring)
    data = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "a"},
         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    regions = RegionSet.from_geojson(data)
    exterior = regions.get("a").geometry.exterior
    assert exterior.is_ccw


# --- the check and repair, on synthetic sets ------------------------------------------------


def _square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _feature(rid: str, geometry: dict[str, Any] | None, parent: str | None = None,
             **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"id": rid, **extra}
    if parent is not None:
        props["parent"] = parent
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _write(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                    encoding="utf-8")
    return path


@pytest.fixture
def gappy(tmp_path: Path) -> Path:
    """Zones P (leaves A, B) and Q (leaf C): a lake in A, a bigger one in C, and a strip in P
    along the zone line that borders C for 1 degree but A and B for only 0.5 each."""
    lake_a = [[30.4, 50.1], [30.6, 50.1], [30.6, 50.3], [30.4, 50.3], [30.4, 50.1]]
    lake_c = [[32.35, 50.35], [32.65, 50.35], [32.65, 50.65], [32.35, 50.65], [32.35, 50.35]]
    return _write(tmp_path / "gappy.geojson", [
        _feature("P", _square(30.0, 50.0, 32.0, 51.0), name_en="West"),
        _feature("Q", _square(32.0, 50.0, 33.0, 51.0), name_en="East"),
        _feature("A", {"type": "Polygon", "coordinates": [
            _square(30.0, 50.0, 31.98, 50.5)["coordinates"][0], lake_a]}, "P", shelter_s=60),
        _feature("B", _square(30.0, 50.5, 31.98, 51.0), "P"),
        _feature("C", {"type": "Polygon", "coordinates": [
            _square(32.0, 50.0, 33.0, 51.0)["coordinates"][0], lake_c]}, "Q"),
    ])


@pytest.fixture
def overlapping(tmp_path: Path) -> Path:
    return _write(tmp_path / "overlap.geojson", [
        _feature("A", _square(30.0, 50.0, 31.02, 51.0)),
        _feature("B", _square(30.98, 50.0, 32.0, 51.0)),
        _feature("C", _square(30.5, 50.4, 30.6, 50.5)),  # wholly inside A
    ])


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_check_reports_gaps_with_area_and_an_example_point(
    gappy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["regions", "check", str(gappy)]) == 1
    out = capsys.readouterr().out
    assert "3 leaves checked" in out
    assert "gaps: 3" in out and "overlaps: 0" in out
    # the lake in C (0.3 x 0.3 degrees) is the largest and is listed first
    lines = [line for line in out.splitlines() if line.startswith("  gap")]
    assert "at 50.5" in lines[0] and lines[0].endswith("next to C")
    assert lines[1].endswith("next to A")  # A's lake
    assert lines[2].endswith("next to C, A, B")  # the strip, longest border first


def test_check_reports_overlaps(overlapping: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regions", "check", str(overlapping), "--examples", "1"]) == 1
    out = capsys.readouterr().out
    assert "overlaps: 2" in out and "gaps: 0" in out
    assert "A and B" in out  # the larger one first
    assert "… and 1 more" in out


def test_min_area_hides_small_defects(
    overlapping: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["regions", "check", str(overlapping), "--min-area", "1e12"]) == 0
    assert "overlaps: 0" in capsys.readouterr().out


def test_repair_fills_gaps_inside_their_zone(
    gappy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fixed.geojson.gz"
    assert main(["regions", "check", str(gappy), "--repair", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "after repair, gaps: 0" in text and "after repair, overlaps: 0" in text
    data = json.loads(gzip.decompress(out.read_bytes()))
    by_id = {f["properties"]["id"]: f for f in data["features"]}
    assert list(by_id) == ["P", "Q", "A", "B", "C"]
    assert by_id["A"]["properties"] == {"id": "A", "parent": "P", "shelter_s": 60}
    geoms = {rid: shape(f["geometry"]) for rid, f in by_id.items()}
    # the strip stays in zone P though it borders C for longer: A and B tie, the first wins
    assert geoms["A"].covers(shapely.Point(31.99, 50.75))
    assert not geoms["C"].covers(shapely.Point(31.99, 50.75))
    assert geoms["A"].covers(shapely.Point(30.5, 50.2))
    assert geoms["C"].covers(shapely.Point(32.5, 50.5))
    # parents are the unions of their leaves
    assert shapely.symmetric_difference(geoms["P"], geoms["A"] | geoms["B"]).area == 0.0
    assert shapely.symmetric_difference(geoms["Q"], geoms["C"]).area == 0.0
    for feature in data["features"]:
        assert all(_ccw(ring) for ring in _exteriors(feature["geometry"]))
    assert main(["regions", "check", str(out)]) == 0
    assert "gaps: 0" in capsys.readouterr().out


def test_repair_cuts_overlaps_first_leaf_keeps(
    overlapping: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fixed.geojson"
    assert main(["regions", "check", str(overlapping), "--repair", "--out", str(out)]) == 0
    assert "C lay wholly inside earlier leaves" in capsys.readouterr().err
    data = _read(out)
    geoms = {f["properties"]["id"]: f["geometry"] for f in data["features"]}
    assert geoms["C"] is None
    a, b = shape(geoms["A"]), shape(geoms["B"])
    assert a.covers(shapely.Point(31.01, 50.5)) and not b.covers(shapely.Point(31.01, 50.5))
    assert shapely.intersection(a, b).area == 0.0
    assert (a | b).equals(shapely.box(30.0, 50.0, 32.0, 51.0))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repair"], "--repair needs --out"),
        (["--out", "x.geojson"], "--out is only written with --repair"),
        (["--grid", "0"], "--grid must be"),
        (["--min-area", "-1"], "--min-area must be"),
    ],
)
def test_bad_options(
    gappy: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["regions", "check", str(gappy), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"type": "Feat', "not valid JSON"),
        ("[1, 2]", "not a GeoJSON FeatureCollection"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}}]}',
         "missing id"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
         '{"id": "a"}, "geometry": {"type": "Polygon", "coordinates": [[[1, 2], [3]]]}}]}',
         "bad geometry"),
        ('{"type": "FeatureCollection", "features": []}', "no regions"),
    ],
)
def test_bad_files_are_a_clear_error(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content, encoding="utf-8")
    assert main(["regions", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_file_and_unwritable_out(
    gappy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["regions", "check", str(tmp_path / "nope.geojson")]) == 2
    assert "cannot read region file" in capsys.readouterr().err
    out = tmp_path / "no-such-dir" / "out.geojson"
    assert main(["regions", "check", str(gappy), "--repair", "--out", str(out)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_the_bundled_set_checks_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regions", "check", "ua-raions"]) == 0
    out = capsys.readouterr().out
    assert "139 leaves checked" in out and "gaps: 0" in out and "overlaps: 0" in out


def test_repair_coverage_is_a_valid_coverage_on_random_boxes() -> None:
    rng = np.random.default_rng(7)
    boxes = []
    for _ in range(60):
        x, y = rng.uniform(0, 1, 2)
        w, h = rng.uniform(0.05, 0.3, 2)
        boxes.append(shapely.box(x, y, x + w, y + h))
    fixed = np.array(repair_coverage(boxes, grid=1e-6), dtype=object)
    kept = fixed[~shapely.is_empty(fixed)]
    assert shapely.coverage_is_valid(kept)
    assert check_coverage(list(kept), grid=1e-6, min_area_m2=0.0).ok
    before = outline_of(boxes, 1e-6)
    assert shapely.symmetric_difference(before, shapely.union_all(kept)).area < 1e-9


def test_a_parent_loop_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "loop.geojson", [
        _feature("A", _square(30.0, 50.0, 31.0, 51.0), "B"),
        _feature("B", _square(31.0, 50.0, 32.0, 51.0), "A"),
    ])
    assert main(["regions", "check", str(path)]) == 2
    assert "parent loop" in capsys.readouterr().err
