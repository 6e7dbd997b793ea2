"""Loading region sets from GeoJSON: canonical properties, `mapping`, repairs and errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import shapely

from tocsin.errors import RegionSetError
from tocsin.geo import Footprint, Names, Region, RegionSet, load_region_set


def square(x: float, y: float, size: float = 1.0) -> dict[str, Any]:
    """A GeoJSON square with its south-west corner at (x, y)."""
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(geometry: dict[str, Any] | None = None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def collection(*features: dict[str, Any], **members: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features), **members}


def small_set() -> dict[str, Any]:
    """A country of two provinces, one split into two districts."""
    return collection(
        feature(square(0, 0, 2), id="C", name_en="Country", level="country"),
        feature(square(0, 0), id="C-1", parent="C", name_en="West", level="province"),
        feature(square(1, 0), id="C-2", parent="C", name_en="East", level="province"),
        feature(square(1, 0, 0.5), id="C-2a", parent="C-2", shelter_s=30, level="district"),
        feature(square(1.5, 0, 0.5), id="C-2b", parent="C-2", shelter_s=0, alerts_uid=7),
        name="tiny",
    )


def test_canonical_properties() -> None:
    regions = RegionSet.from_geojson(small_set())
    assert regions.name == "tiny"
    assert list(regions.regions) == ["C", "C-1", "C-2", "C-2a", "C-2b"]
    assert regions.leaves == ("C-1", "C-2a", "C-2b")
    assert regions.children("C") == ("C-1", "C-2")
    assert regions.leaves_under("C") == ("C-1", "C-2a", "C-2b")
    assert regions.leaves_under("C-2") == ("C-2a", "C-2b")
    a, b = regions.get("C-2a"), regions.get("C-2b")
    assert (a.shelter_s, a.level, a.alerts_uid) == (30.0, "district", None)
    assert (b.shelter_s, b.level, b.alerts_uid) == (0.0, "region", 7)
    assert [r.id for r in regions.chain("C-2b")] == ["C-2b", "C-2", "C"]
    assert regions.locate(0.25, 1.75) == "C-2b"
    assert regions.bounds() == (0.0, 0.0, 2.0, 2.0)


def test_region_values_are_immutable_and_hashable() -> None:
    region = RegionSet.from_geojson(small_set()).get("C-1")
    assert isinstance(region.names, Names)
    with pytest.raises(AttributeError):
        region.id = "X"  # type: ignore[misc]
    with pytest.raises(TypeError):
        region.names["en"] = "x"  # type: ignore[index]
    assert hash(region) == hash(region)
    assert region == Region("C-1", "province", "C", {"en": "West"}, None, None, region.geometry)


def test_names_and_name_fallback() -> None:
    data = collection(
        feature(square(0, 0), id="a", name_uk="Київ", name_en="Kyiv", name_de="Kiew"),
        feature(square(1, 0), id="b", name="Київ"),
        feature(square(2, 0), id="c", name_he="תל אביב", name_len=7, name_alt="x"),
        feature(square(3, 0), id="d"),
        feature(square(4, 0), id="e", name_zh_hant="基輔"),
    )
    regions = RegionSet.from_geojson(data)
    assert dict(regions.get("a").names) == {"uk": "Київ", "en": "Kyiv", "de": "Kiew"}
    assert regions.get("a").name == "Kyiv"
    # A bare `name` is taken as Ukrainian.
    assert dict(regions.get("b").names) == {"uk": "Київ"}
    assert regions.get("b").name == "Київ"
    # Integers and non-language suffixes are not names.
    assert dict(regions.get("c").names) == {"he": "תל אביב"}
    assert regions.get("c").name == "תל אביב"
    assert regions.get("d").name == "d"
    assert dict(regions.get("e").names) == {"zh_hant": "基輔"}


def test_mapping_renames_properties() -> None:
    data = collection(
        feature(square(0, 0), code="RU-BEL", name="Belgorod", local="Белгород", t=90),
        feature(square(1, 0), code="RU-KRS", name="Kursk", name_en="ignored", up="RU-BEL"),
    )
    mapping = {
        "id": "code",
        "name_en": "name",
        "name_ru": "local",
        "shelter_s": "t",
        "parent": "up",
    }
    regions = RegionSet.from_geojson(data, name="ru", mapping=mapping)
    bel, krs = regions.get("RU-BEL"), regions.get("RU-KRS")
    assert dict(bel.names) == {"en": "Belgorod", "ru": "Белгород"}
    assert bel.shelter_s == 90.0
    # `name` is claimed by the mapping, and the file's own `name_en` is overridden by it.
    assert dict(krs.names) == {"en": "Kursk"}
    assert krs.parent == "RU-BEL"
    assert regions.leaves == ("RU-KRS",)


def test_integer_ids_become_strings() -> None:
    data = collection(feature(square(0, 0), id=4), feature(square(1, 0), id=9, parent=4))
    regions = RegionSet.from_geojson(data)
    assert list(regions.regions) == ["4", "9"]
    assert regions.get("9").parent == "4"


def test_alerts_uid_forms() -> None:
    data = collection(
        feature(square(0, 0), id="a", alerts_uid="31"),
        feature(square(1, 0), id="b", alerts_uid=31.0),
        feature(square(2, 0), id="c", alerts_uid=""),
    )
    regions = RegionSet.from_geojson(data)
    assert [r.alerts_uid for r in regions.regions.values()] == [31, 31, None]


def test_invalid_geometry_is_repaired() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    spike = {
        "type": "Polygon",
        "coordinates": [[[10, 0], [11, 0], [11, 1], [11, 2], [11, 1], [10, 1], [10, 0]]],
    }
    regions = RegionSet.from_geojson(
        collection(feature(bowtie, id="bowtie"), feature(spike, id="spike"))
    )
    fixed = regions.get("bowtie").geometry
    assert fixed.is_valid and fixed.geom_type == "MultiPolygon"
    assert fixed.area == pytest.approx(2.0)
    assert regions.locate(1.0, 0.3) == "bowtie"
    assert regions.locate(0.2, 1.0) is None
    # The collapsed spike is dropped: an area region stays an area.
    assert regions.get("spike").geometry.geom_type == "Polygon"
    assert regions.get("spike").geometry.is_valid


def test_empty_and_missing_geometry() -> None:
    empty = {"type": "GeometryCollection", "geometries": []}
    regions = RegionSet.from_geojson(
        collection(
            feature(square(0, 0), id="root"),
            feature(empty, id="a", parent="root"),
            feature(None, id="b", parent="root"),
        )
    )
    assert regions.leaves == ("a", "b")
    assert regions.get("a").geometry.is_empty and regions.get("b").geometry.is_empty
    assert regions.locate(0.5, 0.5) is None


def test_a_set_with_no_geometry_at_all() -> None:
    regions = RegionSet.from_geojson(collection(feature(None, id="only")))
    assert regions.locate(0.0, 0.0) is None
    assert regions.hits(Footprint(0.0, 0.0, 1_000.0, None)) == []


def test_load_from_paths_and_text(tmp_path: Path) -> None:
    text = json.dumps(small_set())
    plain = tmp_path / "my-regions.geojson"
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / "packed.geojson.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    nameless = tmp_path / "nameless.geojson"
    nameless.write_text(json.dumps({**small_set(), "name": None}), encoding="utf-8")
    assert RegionSet.from_geojson(plain).name == "my-regions"
    assert RegionSet.from_geojson(str(packed), name="x").name == "x"
    assert load_region_set(str(packed)).name == "packed"
    assert load_region_set(nameless).name == "nameless"
    assert RegionSet.from_geojson(text).name == "tiny"
    assert len(load_region_set(str(plain)).regions) == 5


def test_unknown_name_or_path() -> None:
    with pytest.raises(RegionSetError, match="ua-hromadas"):
        load_region_set("ua-villages")


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ([feature(square(0, 0), name="x")], r"feature 0: missing id"),
        ([feature(square(0, 0), id="")], r"feature 0: missing id"),
        (
            [feature(square(0, 0), id="a"), feature(square(1, 0), id="a")],
            r"feature 1: duplicate id 'a' \(also feature 0\)",
        ),
        (
            [feature(square(0, 0), id="a"), feature(square(1, 0), id="b", parent="zz")],
            r"feature 1 \(id 'b'\): parent 'zz' is not in the set",
        ),
        ([feature(square(0, 0), id=1.5)], r"feature 0: id must be a string or an integer"),
        ([feature(square(0, 0), id=True)], r"feature 0: id must be a string or an integer"),
        (
            [feature(square(0, 0), id="a", shelter_s=-1)],
            r"feature 0 \(id 'a'\): shelter_s must be >= 0",
        ),
        (
            [feature(square(0, 0), id="a", shelter_s="90")],
            r"feature 0 \(id 'a'\): shelter_s must be a number",
        ),
        (
            [feature(square(0, 0), id="a", alerts_uid="x1")],
            r"feature 0 \(id 'a'\): alerts_uid must be an integer",
        ),
        ([feature(square(0, 0), id="a", level=3)], r"feature 0 \(id 'a'\): level must be"),
        (
            [feature({"type": "Polygon", "coordinates": "nope"}, id="a")],
            r"feature 0 \(id 'a'\): bad geometry",
        ),
        ([{"type": "Point"}], r"feature 0: not a GeoJSON Feature"),
        (
            [{"type": "Feature", "properties": [1], "geometry": None}],
            r"feature 0: properties must be an object",
        ),
        (
            [feature(None, id="a", parent="b"), feature(None, id="b", parent="a")],
            r"parent loop a -> b -> a",
        ),
        ([], r"has no regions"),
    ],
)
def test_errors_name_the_feature(features: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(RegionSetError, match=message):
        RegionSet.from_geojson(collection(*features), name="bad")


def test_error_on_not_a_collection(tmp_path: Path) -> None:
    with pytest.raises(RegionSetError, match="not a GeoJSON FeatureCollection"):
        RegionSet.from_geojson({"type": "Feature"})
    with pytest.raises(RegionSetError, match="not valid JSON"):
        RegionSet.from_geojson("{oops")
    missing = tmp_path / "missing.geojson"
    with pytest.raises(RegionSetError, match="cannot read region file"):
        RegionSet.from_geojson(missing)
    broken = tmp_path / "broken.geojson.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(RegionSetError, match="cannot read region file"):
        RegionSet.from_geojson(broken)


def test_error_on_bad_mapping() -> None:
    with pytest.raises(RegionSetError, match="mapping key 'identifier'"):
        RegionSet.from_geojson(small_set(), mapping={"identifier": "code"})


def test_direct_construction_checks_too() -> None:
    geometry = shapely.box(0, 0, 1, 1)
    region = Region("a", "x", None, {}, None, None, geometry)
    with pytest.raises(RegionSetError, match="duplicate region id 'a'"):
        RegionSet("s", [region, region])
    orphan = Region("b", "x", "nowhere", {}, None, None, geometry)
    with pytest.raises(RegionSetError, match="'b' has parent 'nowhere'"):
        RegionSet("s", [orphan])
    assert repr(RegionSet("s", [region])) == "<RegionSet 's': 1 regions, 1 leaves>"
