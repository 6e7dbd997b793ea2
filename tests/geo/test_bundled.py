"""The bundled Ukrainian region sets: counts, hierarchy, ids and spot checks of `locate()`."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tocsin.errors import TocsinError, UnknownRegion
from tocsin.geo import DEFAULT_REGION_SET, Footprint, RegionSet, load_region_set

KATOTTG = re.compile(r"UA\d{17}")
KYIV_CITY = "UA80000000000093317"
SEVASTOPOL = "UA85000000000065278"
KYIV_OBLAST = "UA32000000000030281"
REPO = Path(__file__).resolve().parents[2]


def bundled_features(name: str) -> list[dict[str, Any]]:
    """Features of one bundled file, straight from the package data."""
    blob = (resources.files("tocsin.geo") / "data" / f"{name}.geojson.gz").read_bytes()
    features: list[dict[str, Any]] = json.loads(gzip.decompress(blob))["features"]
    return features


@pytest.mark.parametrize(
    ("name", "count"), [("ua-oblasts", 27), ("ua-raions", 139), ("ua-hromadas", 1769)]
)
def test_file_feature_counts(name: str, count: int) -> None:
    assert len(bundled_features(name)) == count


def test_set_sizes(hromadas: RegionSet, raions: RegionSet, oblasts: RegionSet) -> None:
    assert DEFAULT_REGION_SET == "ua-hromadas"
    assert len(hromadas.regions) == 27 + 139 + 1769
    assert len(hromadas.leaves) == 1769
    assert len(raions.regions) == 27 + 139
    assert len(raions.leaves) == 139
    assert len(oblasts.regions) == 27
    assert oblasts.leaves == tuple(sorted(oblasts.regions))


def test_named_sets_are_cached(hromadas: RegionSet) -> None:
    assert load_region_set("ua-hromadas") is hromadas
    assert load_region_set() is hromadas


def test_insertion_order_is_coarse_first(hromadas: RegionSet) -> None:
    levels = [r.level for r in hromadas.regions.values()]
    assert levels == ["oblast"] * 27 + ["raion"] * 139 + ["hromada"] * 1769


def test_ids_are_katottg_or_cod(hromadas: RegionSet) -> None:
    cod = sorted(rid for rid in hromadas.regions if rid.startswith("cod:"))
    assert cod == [
        "cod:UA3200",
        "cod:UA3200000",
        "cod:UA8000",
        "cod:UA8000000",
        "cod:UA8500",
        "cod:UA8500000",
    ]
    for rid in hromadas.regions:
        assert rid.startswith("cod:") or KATOTTG.fullmatch(rid), rid


def test_special_units_hang_where_documented(hromadas: RegionSet) -> None:
    parents = {rid: hromadas.get(rid).parent for rid in hromadas.regions if rid.startswith("cod:")}
    assert parents == {
        "cod:UA3200": KYIV_OBLAST,
        "cod:UA3200000": "cod:UA3200",
        "cod:UA8000": KYIV_CITY,
        "cod:UA8000000": "cod:UA8000",
        "cod:UA8500": SEVASTOPOL,
        "cod:UA8500000": "cod:UA8500",
    }
    assert hromadas.get(KYIV_CITY).level == "oblast"
    assert hromadas.get(SEVASTOPOL).level == "oblast"


def test_every_chain_ends_at_an_oblast(hromadas: RegionSet) -> None:
    depth = {"oblast": 1, "raion": 2, "hromada": 3}
    for rid, region in hromadas.regions.items():
        chain = hromadas.chain(rid)
        assert chain[0] is region
        assert chain[-1].level == "oblast"
        assert chain[-1].parent is None
        assert [r.level for r in chain] == ["hromada", "raion", "oblast"][3 - depth[region.level] :]


def test_parents_are_in_the_coarser_file() -> None:
    for name, coarser in (("ua-raions", "ua-oblasts"), ("ua-hromadas", "ua-raions")):
        ids = {f["properties"]["id"] for f in bundled_features(coarser)}
        for feature in bundled_features(name):
            assert feature["properties"]["parent"] in ids
    assert all(f["properties"]["parent"] is None for f in bundled_features("ua-oblasts"))


def test_alerts_uids(hromadas: RegionSet) -> None:
    assert hromadas.get(KYIV_CITY).alerts_uid == 31
    assert hromadas.get(SEVASTOPOL).alerts_uid == 30
    assert hromadas.get(KYIV_OBLAST).alerts_uid == 14
    uids = [r.alerts_uid for r in hromadas.regions.values() if r.alerts_uid is not None]
    assert len(uids) == len(set(uids)) == 27 + 126 + 1469


def test_names(hromadas: RegionSet) -> None:
    kharkiv = hromadas.get("UA63000000000041885")
    assert kharkiv.names == {"uk": "Харківська", "en": "Kharkivska"}
    assert kharkiv.name == "Kharkivska"
    assert hash(kharkiv.names) == hash(type(kharkiv.names)(dict(kharkiv.names)))
    assert all(r.names.get("uk") and r.names.get("en") for r in hromadas.regions.values())


def test_every_region_has_a_polygon(hromadas: RegionSet) -> None:
    # The two Crimean hromadas the simplified source lost get one in the build (see
    # test_coverage.py); nothing is left that can be alerted but never located.
    assert not [r.id for r in hromadas.regions.values() if r.geometry.is_empty]
    hit = {rid for rid, _ in hromadas.hits(Footprint(45.3, 34.2, 400_000.0, None))}
    assert {"UA01080390000062037", "UA01160470000074732"} <= hit


def test_children_and_leaves_under(hromadas: RegionSet) -> None:
    assert hromadas.children("cod:UA8000") == ("cod:UA8000000",)
    assert hromadas.leaves_under(KYIV_CITY) == ("cod:UA8000000",)
    assert hromadas.leaves_under("cod:UA8000000") == ("cod:UA8000000",)
    oblast_ids = [rid for rid, r in hromadas.regions.items() if r.level == "oblast"]
    union = [leaf for rid in oblast_ids for leaf in hromadas.leaves_under(rid)]
    assert sorted(union) == list(hromadas.leaves)
    kyiv_oblast = hromadas.leaves_under(KYIV_OBLAST)
    assert len(kyiv_oblast) == 70
    assert "cod:UA3200000" in kyiv_oblast
    assert list(kyiv_oblast) == sorted(kyiv_oblast)
    for raion in hromadas.children(KYIV_OBLAST):
        assert set(hromadas.children(raion)) <= set(kyiv_oblast)


def test_unknown_region(hromadas: RegionSet) -> None:
    with pytest.raises(UnknownRegion) as caught:
        hromadas.get("UA99")
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, TocsinError)
    assert "UA99" in str(caught.value)
    for method in (hromadas.chain, hromadas.children, hromadas.leaves_under):
        with pytest.raises(UnknownRegion):
            method("nowhere")


@pytest.mark.parametrize(
    ("lat", "lon", "oblast", "oblast_en"),
    [
        (50.45, 30.52, KYIV_CITY, "Kyiv"),
        (49.99, 36.23, "UA63000000000041885", "Kharkivska"),
        (49.84, 24.03, "UA46000000000026241", "Lvivska"),
        (46.48, 30.73, "UA51000000000030770", "Odeska"),
    ],
)
def test_locate_cities(
    hromadas: RegionSet, lat: float, lon: float, oblast: str, oblast_en: str
) -> None:
    leaf = hromadas.locate(lat, lon)
    assert leaf is not None
    assert leaf in hromadas.leaves
    chain = hromadas.chain(leaf)
    assert [r.level for r in chain] == ["hromada", "raion", "oblast"]
    assert chain[-1].id == oblast
    assert chain[-1].names["en"] == oblast_en


def test_locate_kyiv_centre_is_the_city_unit(hromadas: RegionSet) -> None:
    assert hromadas.locate(50.45, 30.52) == "cod:UA8000000"


@pytest.mark.parametrize(("lat", "lon"), [(43.5, 32.0), (44.0, 35.5), (0.0, 0.0), (-45.0, 170.0)])
def test_locate_outside_is_none(hromadas: RegionSet, lat: float, lon: float) -> None:
    assert hromadas.locate(lat, lon) is None


def test_locate_rejects_nan(hromadas: RegionSet) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        hromadas.locate(float("nan"), 30.0)


def test_locate_coarser_sets(raions: RegionSet, oblasts: RegionSet) -> None:
    assert oblasts.locate(49.99, 36.23) == "UA63000000000041885"
    leaf = raions.locate(49.99, 36.23)
    assert leaf is not None and raions.get(leaf).level == "raion"
    assert raions.chain(leaf)[-1].id == "UA63000000000041885"


def test_locate_on_a_shared_border_takes_the_lowest_id(hromadas: RegionSet) -> None:
    a = hromadas.get("UA63120270000028556")
    neighbours = [
        rid
        for rid in hromadas.leaves
        if rid != a.id and hromadas.get(rid).geometry.intersects(a.geometry)
    ]
    assert neighbours
    shared = a.geometry.boundary.intersection(hromadas.get(neighbours[0]).geometry)
    point = shared.representative_point()
    covering = sorted(
        rid for rid in hromadas.leaves if hromadas.get(rid).geometry.intersects(point)
    )
    assert len(covering) >= 2
    assert hromadas.locate(point.y, point.x) == covering[0]


def test_bounds(hromadas: RegionSet) -> None:
    west, south, east, north = hromadas.bounds()
    assert 22.0 < west < 22.2 and 44.3 < south < 44.4
    assert 40.2 < east < 40.3 and 52.3 < north < 52.4


def test_attribution_is_shipped() -> None:
    text = (resources.files("tocsin.geo") / "data" / "ATTRIBUTION.md").read_text("utf-8")
    assert "OCHA / SSPE Kartographia, via HDX" in text
    assert "CC BY-IGO" in text
    assert "2024-04-16" in text
    for cod in ("cod:UA3200", "cod:UA8000000", "cod:UA8500"):
        assert cod in text


def test_bundled_data_is_what_the_build_script_writes(shared_data: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "build_regions", REPO / "scripts" / "build_regions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = shared_data / "ua_admin_boundaries"
    assert module.main(["--source", str(source), "--out", str(tmp_path)]) == 0
    data = resources.files("tocsin.geo") / "data"
    for name in ("ua-oblasts.geojson.gz", "ua-raions.geojson.gz", "ua-hromadas.geojson.gz"):
        assert (tmp_path / name).read_bytes() == (data / name).read_bytes(), name

    # Other build scripts keep their own sections of ATTRIBUTION.md; compare this one's.
    def section(text: str) -> str:
        return text.partition(module.BEGIN)[2].partition(module.END)[0]

    built = section((tmp_path / "ATTRIBUTION.md").read_text("utf-8"))
    assert built
    assert built == section((data / "ATTRIBUTION.md").read_text("utf-8"))
