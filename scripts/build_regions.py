"""Build the bundled Ukrainian region sets in `src/tocsin/geo/data/` from the COD-AB files.

Run from the repository root:

    python scripts/build_regions.py [--source ../shared/data/ua_admin_boundaries]

Reads the three COD-AB layers and `admin_units_crosswalk.csv`, gives every unit its KATOTTG
code (or a stable `cod:` id for the three COD-only units) and links each unit to its parent one
level up. The hromada layer, simplified upstream without topology, leaves gaps and overlaps;
it is repaired into a coverage of the country outline (`tocsin.geo.coverage`: overlaps cut,
each gap merged into the hromada of the same oblast sharing the longest border with it),
simplified as one coverage, and the raions and oblasts are built as unions of their hromadas so
that the hierarchy nests exactly. Writes one gzipped, canonical GeoJSON FeatureCollection per
level (coordinates on a 1e-5 degree grid, exterior rings counter-clockwise) and writes (or
refreshes) its section of `ATTRIBUTION.md` between markers, leaving other sections of that file
alone. The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from tocsin.geo.coverage import check_coverage, outline_of, repair_coverage

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "ua_admin_boundaries"
OUT = REPO / "src" / "tocsin" / "geo" / "data"

# (level name, COD layer file, COD admin level number, expected feature count)
LAYERS = (
    ("oblast", "cod_ab_adm1_oblasts.geojson", 1, 27),
    ("raion", "cod_ab_adm2_raions.geojson", 2, 139),
    ("hromada", "cod_ab_adm3_hromadas.geojson", 3, 1769),
)
OUTPUT_NAMES = {"oblast": "ua-oblasts", "raion": "ua-raions", "hromada": "ua-hromadas"}
# 5 decimals is ~1 m on the ground, far finer than the simplified source lines.
GRID = 1e-5
DECIMALS = 5
VALID_ON = "2024-04-16"
SIZE_BUDGET = 2 * 1024 * 1024
# Visvalingam-Whyatt tolerance of the coverage simplification, in degrees (about the square
# root of the largest triangle removed): ~0.0003 deg is ~30 m, far below a hromada's size.
TOLERANCE = 0.0003
SIMPLIFY_BOUNDARY = True
BEGIN = "<!-- ua-regions: begin -->"
END = "<!-- ua-regions: end -->"


def fail(message: str) -> None:
    """Stop the build with `message`."""
    sys.exit(f"build_regions: {message}")


def read_crosswalk(path: Path) -> dict[str, dict[str, str]]:
    """Map COD P-code to its crosswalk row."""
    by_pcode: dict[str, dict[str, str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            pcode = row["cod_pcode"]
            if not pcode:
                continue
            if pcode in by_pcode:
                fail(f"P-code {pcode} appears twice in {path.name}")
            by_pcode[pcode] = row
    return by_pcode


def region_id(pcode: str, crosswalk: dict[str, dict[str, str]]) -> str:
    """Return the KATOTTG code for `pcode`, or `cod:<pcode>` for COD-only units."""
    row = crosswalk.get(pcode)
    if row is not None and row["katottg"]:
        return row["katottg"]
    # Chornobyl Exclusion Zone, Kyiv and Sevastopol exist at ADM2/ADM3 in COD-AB but have
    # no KATOTTG raion/hromada code; the P-code is stable across COD releases.
    return f"cod:{pcode}"


def round_coords(obj: Any) -> Any:
    """Round every coordinate in a GeoJSON coordinate array."""
    if isinstance(obj, float | int):
        return round(float(obj), DECIMALS)
    return [round_coords(item) for item in obj]


def canonical_geometry(geom: BaseGeometry) -> dict[str, Any]:
    """A grid-snapped polygon as GeoJSON, exterior rings counter-clockwise (RFC 7946)."""
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        fail(f"a tiled unit came out as {geom.geom_type}{' (empty)' if geom.is_empty else ''}")
    out = dict(mapping(shapely.orient_polygons(geom, exterior_cw=False)))
    return {"type": out["type"], "coordinates": round_coords(out["coordinates"])}


def fill_missing(
    geoms: list[BaseGeometry], hromadas: list[dict[str, Any]], raion_shapes: dict[str, Any],
    outline: BaseGeometry,
) -> list[str]:
    """Give each hromada without a polygon the largest uncovered piece of its COD raion."""
    missing = [i for i, g in enumerate(geoms) if g.is_empty]
    if not missing:
        return []
    covered = shapely.union_all(
        shapely.set_precision([g for g in geoms if not g.is_empty], GRID), grid_size=GRID
    )
    gaps = shapely.difference(outline, covered, grid_size=GRID)
    notes = []
    for i in missing:
        props = hromadas[i]["properties"]
        raion = shapely.set_precision(raion_shapes[props["parent"]], GRID)
        pieces = shapely.get_parts(shapely.intersection(gaps, raion, grid_size=GRID))
        pieces = [p for p in pieces if p.geom_type == "Polygon" and p.area > 0]
        if not pieces:
            fail(f"hromada {props['cod_pcode']} has no polygon and its raion has no gap")
        best = max(pieces, key=lambda p: (p.area, p.wkb))
        geoms[i] = best
        gaps = shapely.difference(gaps, best, grid_size=GRID)
        point = best.representative_point()
        notes.append(
            f"`{props['cod_pcode']}` {props['name_en']}: {area_km2(best):.1f} km² around "
            f"{point.y:.3f} N {point.x:.3f} E"
        )
    return notes


def area_km2(geom: BaseGeometry) -> float:
    """Approximate ground area of a lon/lat polygon."""
    lat = geom.centroid.y
    return float(geom.area * (111.195**2) * math.cos(math.radians(lat)))


def tile(
    layers: dict[str, list[dict[str, Any]]], shapes: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Repair the hromadas into a coverage of the country; build raions and oblasts from them.

    `shapes` holds the COD geometries of each level by id. Replaces every feature's geometry
    with canonical GeoJSON and returns figures for the attribution and the summary.
    """
    hromadas = layers["hromada"]
    geoms = [f["geometry"] for f in hromadas]
    # The country: whatever the oblast or hromada layer claims, holes filled (Ukraine has no
    # enclaves, so every hole is a sliver between simplified outlines).
    outline = outline_of(list(shapes["oblast"].values()) + [g for g in geoms if not g.is_empty],
                         GRID)
    before = check_coverage(geoms, outline=outline, grid=GRID, min_area_m2=0.0)
    notes = fill_missing(geoms, hromadas, shapes["raion"], outline)
    raion_of = {f["properties"]["id"]: f["properties"]["parent"] for f in layers["raion"]}
    oblast_of = [raion_of[f["properties"]["parent"]] for f in hromadas]
    zones = [
        (shapes["oblast"][oid], [i for i, o in enumerate(oblast_of) if o == oid])
        for oid in sorted(shapes["oblast"])
    ]
    tiled = np.array(repair_coverage(geoms, outline=outline, zones=zones, grid=GRID), dtype=object)
    if shapely.is_empty(tiled).any() or not shapely.coverage_is_valid(tiled):
        fail("the repaired hromadas are not a clean coverage")
    after = check_coverage(list(tiled), grid=GRID, min_area_m2=0.0)
    if not after.ok:
        fail(f"repair left {len(after.gaps)} gaps and {len(after.overlaps)} overlaps")
    simple = shapely.coverage_simplify(tiled, TOLERANCE, simplify_boundary=SIMPLIFY_BOUNDARY)
    if not shapely.coverage_is_valid(simple) or not shapely.is_valid(simple).all():
        fail("simplification broke the coverage")
    for feature, geom in zip(hromadas, simple, strict=True):
        feature["geometry"] = canonical_geometry(geom)
    raion_ids = [f["properties"]["parent"] for f in hromadas]
    for level, parent_of in (("raion", raion_ids), ("oblast", oblast_of)):
        members: dict[str, list[int]] = {}
        for i, parent in enumerate(parent_of):
            members.setdefault(parent, []).append(i)
        for feature in layers[level]:
            union = shapely.coverage_union_all(simple[members[feature["properties"]["id"]]])
            feature["geometry"] = canonical_geometry(union)
    return {
        "gaps": len(before.gaps),
        "gap_km2": sum(d.area_m2 for d in before.gaps) / 1e6,
        "overlaps": len(before.overlaps),
        "overlap_km2": sum(d.area_m2 for d in before.overlaps) / 1e6,
        "missing": notes,
    }


def build_layer(
    level: str,
    path: Path,
    adm: int,
    crosswalk: dict[str, dict[str, str]],
) -> list[dict[str, Any]]:
    """Turn one COD-AB layer into canonical features sorted by P-code."""
    data = json.loads(path.read_text(encoding="utf-8"))
    features: list[dict[str, Any]] = []
    for feature in data["features"]:
        props = feature["properties"]
        pcode = props[f"ADM{adm}_PCODE"]
        row = crosswalk.get(pcode)
        uid = row["alerts_in_ua_uid"] if row is not None else ""
        parent = None if adm == 1 else region_id(props[f"ADM{adm - 1}_PCODE"], crosswalk)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "id": region_id(pcode, crosswalk),
                    "name_uk": props[f"ADM{adm}_UA"],
                    "name_en": props[f"ADM{adm}_EN"],
                    "parent": parent,
                    "level": level,
                    "alerts_uid": int(uid) if uid else None,
                    "cod_pcode": pcode,
                },
                "geometry": shape(feature["geometry"]),
            }
        )
    # P-code order keeps each oblast's units together and puts `cod:` units in their oblast.
    features.sort(key=lambda f: f["properties"]["cod_pcode"])
    return features


def check(layers: dict[str, list[dict[str, Any]]], crosswalk: dict[str, dict[str, str]]) -> None:
    """Check counts, id format, uniqueness and that every parent is one level up."""
    seen: dict[str, str] = {}
    coarser = None
    for level, _file, _adm, expected in LAYERS:
        features = layers[level]
        if len(features) != expected:
            fail(f"{level}: {len(features)} features, expected {expected}")
        for feature in features:
            props = feature["properties"]
            rid = props["id"]
            if not (rid.startswith("cod:") or (len(rid) == 19 and rid.startswith("UA"))):
                fail(f"{level} {props['cod_pcode']}: bad id {rid!r}")
            if rid in seen:
                fail(f"id {rid} used twice")
            parent = props["parent"]
            if coarser is None:
                if parent is not None:
                    fail(f"oblast {rid} has a parent")
            elif seen.get(parent) != coarser:
                fail(f"{level} {rid}: parent {parent!r} is not in the coarser file")
            row = crosswalk.get(props["cod_pcode"])
            if row is not None and row["katottg"] and row["parent_katottg"] != (parent or ""):
                fail(f"{rid}: COD parent {parent} differs from KATOTTG {row['parent_katottg']}")
            seen[rid] = level
        coarser = level
    parents = Counter(f["properties"]["parent"] for f in layers["hromada"] + layers["raion"])
    for level in ("oblast", "raion"):
        childless = [
            f["properties"]["id"] for f in layers[level] if not parents[f["properties"]["id"]]
        ]
        if childless:
            fail(f"{level}s without children: {childless}")


def encode(name: str, features: list[dict[str, Any]]) -> bytes:
    """Serialise a FeatureCollection, one feature per line, gzipped without a timestamp."""
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    head = json.dumps({"type": "FeatureCollection", "name": name}, ensure_ascii=False)[:-1]
    text = head + ', "features": [\n' + ",\n".join(lines) + "\n]}\n"
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    return buffer.getvalue()


ATTRIBUTION = """\
# Bundled region sets: origin and licence

`ua-oblasts.geojson.gz` ({oblast} features), `ua-raions.geojson.gz` ({raion}) and
`ua-hromadas.geojson.gz` ({hromada}) are generated by `scripts/build_regions.py`. Do not edit
them by hand; change the script and run it again.

## Origin

- Boundaries: OCHA "Ukraine – Subnational Administrative Boundaries" (COD-AB, HDX dataset
  `cod-ab-ukr`), boundary source State Scientific Production Enterprise "Kartographia", release
  `ukr_admbnda_*_sspe_20240416` (`validOn` {valid_on}). The raion and hromada layers are the
  simplified copies published by REACH Ukraine (`REACH-WoU/Reach_DB_browser`, `www/geodata/`,
  commit `1c27071bafeae8d6091d306098b9db81f59e1971`).
- Licence: Creative Commons Attribution for Intergovernmental Organisations (CC BY-IGO 3.0),
  as listed in the HDX metadata. Attribution: **"OCHA / SSPE Kartographia, via HDX"**.
- Codes: KATOTTG (Кодифікатор адміністративно-територіальних одиниць та територій
  територіальних громад), official classifier of the Ministry for Communities and Territories
  Development of Ukraine, edition of 16 May 2025.
- alerts.in.ua uids: from the project's crosswalk (`admin_units_crosswalk.csv`), which joins KATOTTG
  to COD P-codes by code prefix (exact) and to the alerts.in.ua location list by normalised
  Ukrainian name within the matched parent, trying former names for renamed hromadas. The same
  numbers are the api.ukrainealarm.com `regionId`s.

## Changes made

- The hromada layer is repaired into a coverage of the country: every point inside the country
  outline lies in exactly one hromada. The outline is everything the COD oblast or hromada layer
  covers, with holes filled (Ukraine has no enclaves). As published, the hromadas leave
  {gaps} gaps ({gap_km2:.0f} km²) and {overlaps} overlaps ({overlap_km2:.0f} km²) inside it. All
  boundaries, the outline and the oblast lines are noded together on a 1e-5 degree grid; each
  face of that arrangement goes to the first hromada (by P-code) that covers it, so an overlap
  is cut from the later one, and each face no hromada covers goes to the hromada of the same
  oblast (by the COD oblast layer) that shares the longest border with it.
- The hromadas are then simplified as one coverage (`shapely.coverage_simplify`,
  Visvalingam-Whyatt, tolerance {tolerance} degrees), so neighbours stay edge-matched and no gap
  or overlap comes back. Raions and oblasts are not taken from their own COD layers: each is the
  union of its hromadas, so the hierarchy nests exactly. Their COD layers supply only ids,
  names, and (oblasts) the lines that keep a gap inside its oblast.
- Coordinates are on the 1e-5 degree grid, written with 5 decimals; exterior rings run
  counter-clockwise and holes clockwise (RFC 7946).
- Properties replaced by the canonical set: `id`, `name_uk`, `name_en`, `parent`, `level`,
  `alerts_uid`, `cod_pcode`. Names are the COD names (`ADMn_UA`, `ADMn_EN`; English without
  "oblast"/"raion"/"hromada", e.g. "Kharkivska").
- Features sorted by COD P-code.
- `tocsin regions check FILE` runs the same check (and with `--repair`, the same repair) on any
  region file.

## Ids and hierarchy

- `id` is the 19-character KATOTTG code (e.g. `UA01020030000085835`), found from the COD P-code
  (a prefix of the KATOTTG code) through the crosswalk's `cod_pcode` → `katottg` columns.
- `parent` is the id of the unit one level up in these files: hromada → raion → oblast; oblasts
  have `null`. Kyiv (`UA80000000000093317`) and Sevastopol (`UA85000000000065278`) are cities with
  special status and have level `oblast`.
- Three COD units have no KATOTTG raion or hromada code and get stable ids from their P-code:

  | id | unit | parent |
  |---|---|---|
  | `cod:UA3200` | Chornobyl Exclusion Zone (raion level) | `UA32000000000030281` (Kyivska) |
  | `cod:UA3200000` | Chornobyl Exclusion Zone (hromada level) | `cod:UA3200` |
  | `cod:UA8000` | Kyiv (raion level) | `UA80000000000093317` (Kyiv) |
  | `cod:UA8000000` | Kyiv (hromada level) | `cod:UA8000` |
  | `cod:UA8500` | Sevastopol (raion level) | `UA85000000000065278` (Sevastopol) |
  | `cod:UA8500000` | Sevastopol (hromada level) | `cod:UA8500` |

- `alerts_uid` is the alerts.in.ua uid where one exists ({uids} of {total} units), else `null`:
  Crimea's raions and hromadas and the `cod:` units have none. Kyiv city is 31, so an alert in
  the leaf `cod:UA8000000` rolls up to a region alerts.in.ua knows.

## Known quirks

- Two Crimean hromadas, `UA0108039` Myrnivska and `UA0116047` Shkilnenska (single settlements
  of about 1.0 and 1.4 km² in the COD attributes), have no polygon in the simplified source.
  So that they can be located, drawn and hit, each is given the largest piece of its COD raion
  that no other hromada covers; this is a stand-in, not its real outline:
{missing}
- Names predate the September/October 2024 renaming (e.g. raion "Novomoskovskyi", not
  "Samarivskyi"); join on ids, never names.
- Six Sevastopol hromadas that KATOTTG files under Bakhchysarai raion have no COD polygon and are
  not in the files. Kyiv oblast has 70 hromada-level units (69 hromadas and the Exclusion Zone).
"""


def write_attribution(path: Path, section: str) -> None:
    """Put `section` between this script's markers at the top of `path`, keeping the rest."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
    else:
        # A file from before the markers has this section unmarked, ahead of any other one.
        head, start = "", text.find("<!-- ")
        tail = "\n\n" + text[start:] if start >= 0 else "\n"
    path.write_text(head + BEGIN + "\n" + section + END + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Build the region files and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    source: Path = args.source
    if not source.is_dir():
        fail(f"source directory {source} not found")
    crosswalk = read_crosswalk(source / "admin_units_crosswalk.csv")
    layers = {
        level: build_layer(level, source / file, adm, crosswalk) for level, file, adm, _ in LAYERS
    }
    check(layers, crosswalk)
    shapes = {
        level: {f["properties"]["id"]: f["geometry"] for f in features}
        for level, features in layers.items()
    }
    figures = tile(layers, shapes)
    print(
        f"source hromadas: {figures['gaps']} gaps ({figures['gap_km2']:.0f} km²),"
        f" {figures['overlaps']} overlaps ({figures['overlap_km2']:.0f} km²); repaired"
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for level, features in layers.items():
        name = OUTPUT_NAMES[level]
        blob = encode(name, features)
        (out / f"{name}.geojson.gz").write_bytes(blob)
        total += len(blob)
        print(f"{name}: {len(features)} features, {len(blob) / 1024:.0f} KiB")
    everything = [f for features in layers.values() for f in features]
    counts = {level: len(features) for level, features in layers.items()}
    text = ATTRIBUTION.format(
        valid_on=VALID_ON,
        gaps=figures["gaps"],
        gap_km2=figures["gap_km2"],
        overlaps=figures["overlaps"],
        overlap_km2=figures["overlap_km2"],
        tolerance=TOLERANCE,
        missing="\n".join(f"  - {note}" for note in figures["missing"]),
        uids=sum(f["properties"]["alerts_uid"] is not None for f in everything),
        total=len(everything),
        **counts,
    )
    write_attribution(out / "ATTRIBUTION.md", text)
    print(f"total {total / 1024:.0f} KiB gzipped")
    if total > SIZE_BUDGET:
        fail(f"bundled data is {total} bytes, over the {SIZE_BUDGET} byte budget")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
