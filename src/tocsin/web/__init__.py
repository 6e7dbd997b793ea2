"""The dashboard: a live map and operator console, static files served by `tocsin serve` at `/`.

Everything the page loads is in `static/` (Leaflet is vendored under `static/vendor/`), so it
works on a machine with no network beyond the tocsin server itself.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC_DIR"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
