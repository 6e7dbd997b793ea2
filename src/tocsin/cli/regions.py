"""`tocsin regions check`: gaps and overlaps of a region file, and their repair."""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

from tocsin.cli.common import EXIT_CHECK, EXIT_INPUT, EXIT_OK, err
from tocsin.errors import RegionSetError
from tocsin.geo import BUNDLED_REGION_SETS
from tocsin.geo.coverage import CoverageReport, Defect, SetCoverage, check_region_file

__all__ = ["cmd_regions_check"]


def _read(name: str) -> tuple[dict[str, Any], str]:
    """The FeatureCollection of a bundled set name or a `.geojson`/`.geojson.gz` file."""
    if name in BUNDLED_REGION_SETS:
        from importlib import resources

        data = resources.files("tocsin.geo") / "data"
        features: list[Any] = []
        for part in BUNDLED_REGION_SETS[name]:
            raw = gzip.decompress((data / f"{part}.geojson.gz").read_bytes())
            features.extend(json.loads(raw)["features"])
        return {"type": "FeatureCollection", "name": name, "features": features}, name
    path = Path(name)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise RegionSetError(f"cannot read region file {name}: {exc}") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RegionSetError(f"{name}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RegionSetError(f"{name}: not a GeoJSON FeatureCollection")
    return data, name


def _write(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
    blob = text.encode("utf-8")
    if path.suffix == ".gz":
        blob = gzip.compress(blob, compresslevel=9, mtime=0)
    path.write_bytes(blob)


def _describe(d: Defect, ids: tuple[str, ...]) -> str:
    where = f"{d.lat:.5f} N {d.lon:.5f} E"
    names = [ids[i] for i in d.regions]
    if d.kind == "overlap":
        return f"  overlap {d.area_m2:,.0f} m² at {where}: {names[0]} and {names[1]}"
    around = ", ".join(names) if names else "no region"
    return f"  gap {d.area_m2:,.0f} m² at {where}, next to {around}"


def _print_report(label: str, report: CoverageReport, ids: tuple[str, ...], examples: int) -> None:
    for kind, defects in (("gaps", report.gaps), ("overlaps", report.overlaps)):
        total = sum(d.area_m2 for d in defects) / 1e6
        print(f"{label}{kind}: {len(defects)} ({total:,.3f} km²)")
        for d in defects[:examples]:
            print(_describe(d, ids))
        if len(defects) > examples:
            print(f"  … and {len(defects) - examples} more")


def cmd_regions_check(args: argparse.Namespace) -> int:
    """Report the gaps and overlaps between the leaves of a region set; optionally repair them.

    A gap is part of the territory (everything any region of the file covers, holes filled)
    that no leaf covers; an overlap is an area two leaves share. Only defects of at least
    --min-area square metres are reported. With --repair, overlaps are cut (the earlier leaf in
    the file keeps the area), each gap piece is merged into the leaf of the same root region
    that shares the longest border with it, every parent becomes the union of its leaves, and
    the result is written to --out. Exit 0: no defect (or repaired cleanly); 1: defects found
    (not repaired); 2: bad input.
    """
    if args.repair and not args.out:
        err("regions check: --repair needs --out FILE")
        return EXIT_INPUT
    if args.out and not args.repair:
        err("regions check: --out is only written with --repair")
        return EXIT_INPUT
    if not (args.grid > 0 and args.grid <= 0.01):
        err(f"regions check: --grid must be in (0, 0.01] degrees, got {args.grid}")
        return EXIT_INPUT
    if not args.min_area >= 0:
        err(f"regions check: --min-area must be >= 0, got {args.min_area}")
        return EXIT_INPUT
    data, source = _read(args.file)
    result: SetCoverage = check_region_file(
        data, source=source, grid=args.grid, min_area_m2=args.min_area, repair=args.repair
    )
    print(f"{source}: {len(result.leaves)} leaves checked")
    _print_report("", result.report, result.leaves, args.examples)
    if not args.repair:
        return EXIT_OK if result.report.ok else EXIT_CHECK
    assert result.repaired is not None and result.repaired_report is not None
    out = Path(args.out)
    try:
        _write(out, result.repaired)
    except OSError as exc:
        err(f"regions check: cannot write {out}: {exc}")
        return EXIT_INPUT
    print(f"repaired set written to {out}")
    _print_report("after repair, ", result.repaired_report, result.leaves, args.examples)
    for rid in result.emptied:
        print(f"warning: leaf {rid} lay wholly inside earlier leaves and is now empty",
              file=sys.stderr)
    return EXIT_OK if result.repaired_report.ok else EXIT_CHECK
