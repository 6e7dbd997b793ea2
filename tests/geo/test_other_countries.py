"""Region sets from other countries' files, loaded unchanged through `mapping`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tocsin.geo import Footprint, RegionSet

# Pikud HaOref area ids with well-known places and their shelter times.
SDEROT, ABU_GOSH, EILAT = "248", "511", "4"


@pytest.fixture(scope="module")
def israel(shared_data: Path) -> RegionSet:
    """Home Front Command areas, with shelter times, from the pikud-haoref-api files."""
    folder = shared_data / "israel_home_front_command"
    polygons = json.loads(gzip.decompress((folder / "pikud_haoref_polygons.json.gz").read_bytes()))
    cities = {
        str(c["id"]): c
        for c in json.loads((folder / "pikud_haoref_cities.json").read_text("utf-8"))
    }
    features = []
    for area, vertices in polygons.items():
        city = cities.get(area, {})
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "area": area,
                    "countdown": city.get("countdown"),
                    "name": city.get("name"),
                    "english": city.get("name_en"),
                    "zone_en": city.get("zone_en"),
                },
                # The source lists [lat, lng]; GeoJSON wants [lng, lat].
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[lng, lat] for lat, lng in vertices]],
                },
            }
        )
    mapping = {
        "id": "area",
        "shelter_s": "countdown",
        "name_he": "name",
        "name_en": "english",
    }
    data = {"type": "FeatureCollection", "features": features}
    return RegionSet.from_geojson(data, name="il-oref", mapping=mapping)


def test_israel_areas(israel: RegionSet) -> None:
    assert len(israel.regions) == 1420
    assert len(israel.leaves) == 1420
    assert israel.get(SDEROT).shelter_s == 15.0
    assert israel.get(ABU_GOSH).shelter_s == 90.0
    assert israel.get(ABU_GOSH).name == "Abu Gosh"
    assert israel.get(ABU_GOSH).names["he"] == "אבו גוש"
    # 68 polygons have no entry in the area list: no names, no shelter time.
    unnamed = [r for r in israel.regions.values() if not r.names]
    assert len(unnamed) == 68
    assert all(r.shelter_s is None and r.name == r.id for r in unnamed)
    assert all(r.geometry.is_valid for r in israel.regions.values())


def test_israel_locate_each_area(israel: RegionSet) -> None:
    for rid in (SDEROT, ABU_GOSH, EILAT):
        point = israel.get(rid).geometry.centroid
        assert israel.locate(point.y, point.x) == rid
    wrong = []
    for rid, region in israel.regions.items():
        point = region.geometry.representative_point()
        if israel.locate(point.y, point.x) != rid:
            wrong.append(rid)
    assert wrong == []


def test_israel_hits(israel: RegionSet) -> None:
    centre = israel.get(SDEROT).geometry.centroid
    hits = dict(israel.hits(Footprint(centre.y, centre.x, 5_000.0, None)))
    assert hits[SDEROT] == 0.0
    assert 1 < len(hits) < 40
    assert all(0.0 <= d <= 5_010.0 for d in hits.values())


@pytest.fixture(scope="module")
def russia_files(shared_data: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = shared_data / "ru_admin_boundaries"
    subjects = json.loads((folder / "ne_50m_admin1_russia.geojson").read_text("utf-8"))
    districts = json.loads(
        (folder / "osm_border_regions_municipal_units_simplified.geojson").read_text("utf-8")
    )
    return subjects, districts


def test_russian_subjects(russia_files: tuple[dict[str, Any], dict[str, Any]]) -> None:
    subjects, _ = russia_files
    mapping = {"id": "iso_3166_2", "name_ru": "name_ru", "name_en": "name_en"}
    regions = RegionSet.from_geojson(subjects, mapping=mapping)
    assert len(regions.regions) == len(regions.leaves) == 83
    assert regions.locate(50.60, 36.59) == "RU-BEL"
    assert regions.get("RU-BEL").names["ru"] == "Белгородская область"
    # Chukotka is split at the antimeridian: both halves are found.
    assert regions.locate(66.0, 172.0) == "RU-CHU"
    assert regions.locate(66.0, -172.0) == "RU-CHU"
    assert regions.locate(66.0, 188.0) == "RU-CHU"
    assert regions.hits(Footprint(66.0, 179.9, 100_000.0, None)) == [("RU-CHU", 0.0)]
    west, _, east, _ = regions.bounds()
    assert west < -179.0 and east > 179.0


def test_russian_border_districts(russia_files: tuple[dict[str, Any], dict[str, Any]]) -> None:
    subjects, districts = russia_files
    features = [
        {
            "type": "Feature",
            "properties": {"key": f["properties"]["iso_3166_2"], "ru": f["properties"]["name_ru"]},
            "geometry": f["geometry"],
        }
        for f in subjects["features"]
    ]
    for f in districts["features"]:
        props = f["properties"]
        key = f"{props['region_iso']}:{props['district']}"
        features.append(
            {
                "type": "Feature",
                "properties": {"key": key, "ru": props["district"], "up": props["region_iso"]},
                "geometry": f["geometry"],
            }
        )
    data = {"type": "FeatureCollection", "name": "ru-border", "features": features}
    regions = RegionSet.from_geojson(data, mapping={"id": "key", "parent": "up", "name_ru": "ru"})
    assert len(regions.regions) == 83 + 220
    # Six subjects are split into districts; the other 77 are leaves themselves.
    assert len(regions.leaves) == 77 + 220
    assert len(regions.leaves_under("RU-BEL")) == 22
    leaf = regions.locate(50.60, 36.59)
    assert leaf == "RU-BEL:Белгород"
    assert [r.id for r in regions.chain(leaf)] == ["RU-BEL:Белгород", "RU-BEL"]
    # A drone 20 km out of Belgorod heading for Kharkiv hits no Russian district ahead of it.
    ahead = {rid for rid, _ in regions.hits(Footprint(50.45, 36.6, 60_000.0, 200.0, 20.0))}
    assert all(rid.startswith("RU-BEL") for rid in ahead)
    behind = dict(regions.hits(Footprint(50.45, 36.6, 30_000.0, 20.0, 20.0)))
    assert "RU-BEL:Белгород" in behind
