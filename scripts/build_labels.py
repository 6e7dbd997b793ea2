"""Write `src/tocsin/web/static/data/labels.json`: where the map prints each region's name.

Run from the repository root after the bundled regions change:

    python scripts/build_labels.py

Reads the bundled region set (`src/tocsin/geo/data`), so the labels carry the same names and
ids as the regions the server loads. Byte-for-byte reproducible; a test checks the committed
file matches what this writes.
"""

from __future__ import annotations

from tocsin.geo import load_region_set
from tocsin.web.labels import LABELS_PATH, labels_json


def main() -> None:
    LABELS_PATH.parent.mkdir(parents=True, exist_ok=True)
    data = labels_json(load_region_set())
    LABELS_PATH.write_bytes(data)
    print(f"wrote {LABELS_PATH.name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
