from __future__ import annotations

import csv
import dataclasses
import io
import re
from importlib import resources
from pathlib import Path

import pytest

import tocsin.threats
from tocsin import model
from tocsin.errors import CatalogError
from tocsin.threats import OBJECT_CLASSES, Catalog, load_catalog
from tocsin.threats.catalog import COLUMNS

KINEMATICS = (Path(__file__).resolve().parents[1] / "data" / "weapon_kinematics"
              / "weapon_kinematics.csv")
ID_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9_]+)*$")
REQUIRED_IDS = (
    "shahed-136 shahed-131 kh-101 kalibr kh-59 kh-22 iskander-m kinzhal zircon s-300 s-300-sam "
    "s-400 pantsir-s1 mig-31k tu-95ms tu-160 tu-22m3 kab"
).split() + [f"default-{c}" for c in OBJECT_CLASSES]


def bundled_bytes() -> bytes:
    return resources.files("tocsin.threats").joinpath("data/weapons.csv").read_bytes()


def bundled_rows() -> list[list[str]]:
    return list(csv.reader(io.StringIO(bundled_bytes().decode("utf-8"), newline="")))


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


def col(name: str) -> int:
    return COLUMNS.index(name)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_bundled_catalog_loads_once(catalog: Catalog) -> None:
    assert len(catalog) == len(list(catalog)) >= len(REQUIRED_IDS)
    assert load_catalog() is catalog


def test_bundled_file_is_utf8_lf_with_the_documented_columns() -> None:
    data = bundled_bytes()
    assert b"\r" not in data
    assert not data.startswith(b"\xef\xbb\xbf")
    rows = bundled_rows()
    assert tuple(rows[0]) == COLUMNS
    assert all(len(r) == len(COLUMNS) for r in rows[1:])
    attribution = resources.files("tocsin.threats").joinpath("data/ATTRIBUTION.md")
    assert "public estimates" in attribution.read_text(encoding="utf-8")


def test_ids_are_lower_case_hyphenated_and_valid_event_weapons(catalog: Catalog) -> None:
    for w in catalog:
        assert ID_RE.match(w.id), w.id
        # A detection must be able to name every row in its `weapon` field.
        model.parse_event(
            {
                "type": "detection",
                "id": "e1",
                "source": "test",
                "time": "2026-01-01T00:00:00Z",
                "track": "t1",
                "object": w.object,
                "weapon": w.id,
                "position": {"lat": 50.0, "lon": 30.0},
            }
        )


def test_required_ids_exist(catalog: Catalog) -> None:
    ids = {w.id for w in catalog}
    assert set(REQUIRED_IDS) <= ids


def test_object_classes_match_the_event_model() -> None:
    assert OBJECT_CLASSES == model.OBJECT_CLASSES


def test_every_class_has_its_default(catalog: Catalog) -> None:
    for cls in OBJECT_CLASSES:
        default = catalog.default_for(cls)
        assert default.id == f"default-{cls}"
        assert default.object == cls


def test_every_row_is_sourced_or_says_it_is_an_assumption(catalog: Catalog) -> None:
    for w in catalog:
        assert w.basis
        if not w.id.startswith("default-"):
            assert w.sources or w.basis.startswith("assumption"), w.id
        assert all(url.startswith(("https://", "http://")) for url in w.sources), w.id


def test_source_urls_come_from_the_kinematics_table(catalog: Catalog) -> None:
    with KINEMATICS.open(encoding="utf-8", newline="") as f:
        known = {row["source_url"] for row in csv.DictReader(f)}
    for w in catalog:
        assert set(w.sources) <= known, (w.id, set(w.sources) - known)


def test_classes_and_profiles_of_key_rows(catalog: Catalog) -> None:
    def kind(weapon_id: str) -> tuple[str, str]:
        w = catalog.get(weapon_id)
        assert w is not None
        return w.object, w.profile

    assert kind("s-300") == ("ballistic_missile", "ballistic")
    for sam in ("s-300-sam", "s-400", "pantsir-s1"):
        assert kind(sam) == ("interceptor", "interceptor")
    for carrier in ("mig-31k", "tu-95ms", "tu-160", "tu-22m3"):
        assert kind(carrier) == ("aircraft", "carrier")
    assert kind("kab") == ("glide_bomb", "glide_bomb")
    assert kind("default-debris")[1] == "debris"
    assert catalog.default_for("debris").cone_deg == 180


def test_carriers_launch_the_documented_weapons(catalog: Catalog) -> None:
    launches = {w.id: w.launches for w in catalog if w.launches}
    assert launches == {
        "mig-31k": ("kinzhal",),
        "tu-95ms": ("kh-101",),
        "tu-160": ("kh-101",),
        "tu-22m3": ("kh-22",),
    }


def test_carrier_reach_comes_from_what_it_launches(catalog: Catalog) -> None:
    kinzhal = catalog.get("kinzhal")
    assert kinzhal is not None
    res = catalog.resolve("mig-31k", "aircraft")
    assert res.weapon.id == "mig-31k"
    assert res.note is None
    assert res.reach_km == kinzhal.range_km
    assert res.reach_speed_kmh == kinzhal.speed_kmh
    assert res.reach_km != res.weapon.range_km


def test_a_carrier_faster_than_its_payload_bounds_eta_by_its_own_speed() -> None:
    base = load_catalog()
    missile, aircraft = base.default_for("cruise_missile"), base.default_for("aircraft")
    slow = dataclasses.replace(missile, id="slow-1", speed_kmh=500, range_km=3000)
    fast = dataclasses.replace(aircraft, id="jet-1", speed_kmh=2000, launches=("slow-1",))
    cat = Catalog([*base, slow, fast])
    res = cat.resolve("jet-1", "aircraft")
    assert (res.reach_speed_kmh, res.reach_km) == (2000, 3000)


def test_non_carriers_reach_their_own_figures(catalog: Catalog) -> None:
    res = catalog.resolve("iskander-m", "ballistic_missile")
    assert (res.reach_speed_kmh, res.reach_km) == (res.weapon.speed_kmh, res.weapon.range_km)


def test_unknown_weapon_falls_back_to_the_class_default_with_a_note(catalog: Catalog) -> None:
    res = catalog.resolve("foo-9", "drone")
    assert res.weapon is catalog.default_for("drone")
    assert res.note is not None
    assert "foo-9" in res.note and "drone" in res.note


def test_no_weapon_falls_back_silently(catalog: Catalog) -> None:
    res = catalog.resolve(None, "glide_bomb")
    assert res.weapon.id == "default-glide_bomb"
    assert res.note is None


def test_a_known_weapon_wins_over_the_detections_object_class(catalog: Catalog) -> None:
    res = catalog.resolve("kinzhal", "cruise_missile")
    assert res.weapon.id == "kinzhal"
    assert res.note is None


def test_an_unknown_object_class_still_resolves(catalog: Catalog) -> None:
    res = catalog.resolve(None, "balloon")
    assert res.weapon.id == "default-unknown"
    assert res.note is not None and "balloon" in res.note


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Geran-2", "shahed-136"),
        ("geran-2", "shahed-136"),
        ("Shahed-136/131", "shahed-136"),
        ("X-101/X-555", "kh-101"),
        ("C-300", "s-300"),
        ("c-400", "s-400"),
        ("X-47 Kinzhal", "kinzhal"),
        ("3M22 Zircon", "zircon"),
        ("KH-101", "kh-101"),
        ("GBU", "kab"),
    ],
)
def test_aliases_match_case_insensitively(catalog: Catalog, name: str, expected: str) -> None:
    w = catalog.get(name)
    assert w is not None and w.id == expected
    assert catalog.resolve(name, "unknown").weapon.id == expected


def test_get_unknown_is_none(catalog: Catalog) -> None:
    assert catalog.get("no-such-weapon") is None


def test_a_copy_of_the_bundled_file_loads_the_same(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "weapons.csv"
    path.write_bytes(bundled_bytes())
    assert list(load_catalog(path)) == list(catalog)
    assert list(load_catalog(str(path))) == list(catalog)


def _broken(tmp_path: Path, edit: str) -> tuple[Path, int, str]:
    """A copy of the bundled CSV with one defect; returns its path, bad line and field."""
    rows = bundled_rows()
    line = 4  # header is line 1, so this is the third weapon (no value spans lines)
    row = rows[line - 1]
    if edit == "duplicate id":
        rows.append(list(rows[1]))
        line, field = len(rows), "id"
    elif edit == "unknown profile":
        row[col("profile")], field = "rocket", "profile"
    elif edit == "non-numeric speed":
        row[col("speed_kmh")], field = "fast", "speed_kmh"
    elif edit == "launches unknown id":
        carrier = next(i for i, r in enumerate(rows) if r[col("launches")])
        rows[carrier][col("launches")] = "kh-999"
        line, field = carrier + 1, "launches"
    elif edit == "unknown object":
        row[col("object")], field = "rocket", "object"
    elif edit == "negative range":
        row[col("range_km")], field = "-5", "range_km"
    elif edit == "cone too wide":
        row[col("cone_deg")], field = "200", "cone_deg"
    elif edit == "bad url":
        row[col("sources")], field = "see wikipedia", "sources"
    elif edit == "bad id":
        row[col("id")], field = "Kh 101", "id"
    elif edit == "alias clash":
        row[col("aliases")], field = "Geran-2", "aliases"
    elif edit == "empty basis":
        row[col("basis")], field = "", "basis"
    else:
        raise AssertionError(edit)
    return write_rows(tmp_path / "weapons.csv", rows), line, field


@pytest.mark.parametrize(
    "edit",
    [
        "duplicate id",
        "unknown profile",
        "non-numeric speed",
        "launches unknown id",
        "unknown object",
        "negative range",
        "cone too wide",
        "bad url",
        "bad id",
        "alias clash",
        "empty basis",
    ],
)
def test_bad_csv_names_line_and_field(tmp_path: Path, edit: str) -> None:
    path, line, field = _broken(tmp_path, edit)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert f"line {line}," in message
    assert repr(field) in message
    assert str(path) in message


def test_missing_default_row_is_an_error(tmp_path: Path) -> None:
    rows = [r for r in bundled_rows() if r[0] != "default-debris"]
    with pytest.raises(CatalogError, match="default-debris"):
        load_catalog(write_rows(tmp_path / "weapons.csv", rows))


def test_missing_column_is_an_error(tmp_path: Path) -> None:
    rows = [r[: col("basis")] for r in bundled_rows()]
    with pytest.raises(CatalogError, match=r"line 1, field 'basis': missing column"):
        load_catalog(write_rows(tmp_path / "weapons.csv", rows))


def test_unreadable_or_undecodable_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "absent.csv")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"id,name\n\xe9\n")
    with pytest.raises(CatalogError, match="not UTF-8"):
        load_catalog(bad)


def test_catalog_built_in_code_names_the_row(catalog: Catalog) -> None:
    rows = list(catalog)
    rows[2] = dataclasses.replace(rows[2], launches=("nope",), profile="carrier")
    with pytest.raises(CatalogError, match=r"row 3 \(id '[a-z0-9-]+'\), field 'launches'"):
        Catalog(rows)


def test_a_carrier_cannot_launch_a_carrier(catalog: Catalog) -> None:
    rows = [
        dataclasses.replace(w, launches=("tu-95ms",)) if w.id == "mig-31k" else w
        for w in catalog
    ]
    with pytest.raises(CatalogError, match="carrier"):
        Catalog(rows)


def test_public_names_are_exported() -> None:
    for name in tocsin.threats.__all__:
        assert hasattr(tocsin.threats, name)
    assert {"Catalog", "Resolved", "Weapon", "load_catalog"} <= set(tocsin.threats.__all__)
