"""Label points of the bundled regions, computed once at build time (`scripts/build_labels.py`).

The page places a region's name at its pole of inaccessibility (the interior point farthest
from the border, so a name sits inside even a crescent-shaped hromada), taken on the region's
largest part. Computing that for 1,935 regions in a browser would stall the page, so it is
done here and shipped as `static/data/labels.json`, which the service worker can cache too.
"""

from __future__ import annotations

import json
from typing import Any

from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel

from tocsin.geo import RegionSet
from tocsin.web import STATIC_DIR

__all__ = ["LABELS_PATH", "build_labels", "label_point", "labels_json"]

LABELS_PATH = STATIC_DIR / "data" / "labels.json"


def label_point(geometry: BaseGeometry) -> tuple[float, float]:
    """(lon, lat) of the point to print a region's name at."""
    parts = list(getattr(geometry, "geoms", [geometry]))
    largest = max(parts, key=lambda g: g.area)
    # a tolerance of ~100 m: finer moves a label by less than a pixel at the zooms it shows
    p = polylabel(largest, tolerance=0.001)
    if not largest.contains(p):  # degenerate slivers: fall back to a point surely inside
        p = largest.representative_point()
    return p.x, p.y


def build_labels(regions: RegionSet) -> dict[str, Any]:
    """Every region as `[id, level, lat, lon, uk, en]`, coarsest level first, then by id."""
    depth: dict[str, int] = {}
    for r in regions.regions.values():
        d = len(regions.chain(r.id)) - 1
        depth[r.level] = min(d, depth.get(r.level, d))
    levels = sorted(depth, key=lambda lv: (depth[lv], lv))
    rows = []
    for r in sorted(regions.regions.values(), key=lambda r: (levels.index(r.level), r.id)):
        if r.geometry.is_empty:
            continue
        lon, lat = label_point(r.geometry)
        rows.append([r.id, r.level, round(lat, 4), round(lon, 4),
                     r.names.get("uk", r.name), r.names.get("en", r.name)])
    return {"region_set": regions.name, "levels": levels, "labels": rows}


def labels_json(regions: RegionSet) -> bytes:
    """The file's bytes: one label per line, so a rebuild diffs readably."""
    data = build_labels(regions)
    head = json.dumps({k: v for k, v in data.items() if k != "labels"}, ensure_ascii=False)
    lines = ",\n".join(json.dumps(row, ensure_ascii=False, separators=(",", ":"))
                       for row in data["labels"])
    return (head[:-1] + ', "labels": [\n' + lines + "\n]}\n").encode()
