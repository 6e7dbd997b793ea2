"""CAP 1.2 (OASIS Common Alerting Protocol) out and in, as pure functions.

Out: `alert_message` maps one tocsin alert to a `CapMessage`; `encode` writes it as UTF-8 XML and
checks the result against the bundled CAP 1.2 schema, so tocsin never publishes invalid CAP;
`atom_feed` lists published messages; `sign_detached` signs the exact bytes for an HTTP header.
In: `parse` reads a message from another authority (plain, wrapped in EDXL-DE, or carrying an
XML-DSig signature) and `areas_shapes` turns its areas into shapely geometries.

tocsin severity to CAP, for every alert type (a Cancel is the all-clear):

| tocsin      | urgency   | severity | certainty | responseType |
|-------------|-----------|----------|-----------|--------------|
| `imminent`  | Immediate | Extreme  | Observed  | Shelter      |
| `alert`     | Immediate | Severe   | Likely    | Shelter      |
| `pre_alert` | Expected  | Severe   | Possible  | Shelter      |
| Cancel      | Past      | Minor    | Observed  | AllClear     |

Alert type to CAP category: `air_raid` and `artillery_shelling` are Safety, `urban_fights` is
Security, `chemical` and `nuclear` are CBRNE.

Conventions: times are strings in CAP's form `2026-11-25T03:00:00+00:00` (an offset, never `Z`);
CAP values hold coordinates as (lat, lon), shapely geometries as (lon, lat); surrounding whitespace
of element text is not significant (feeds indent it) and line breaks are normalised to `\\n`, as
XML itself does.
"""

from __future__ import annotations

from tocsin.outputs.cap.codec import encode, parse, parse_all, validate
from tocsin.outputs.cap.feed import atom_feed, sign_detached, verify_detached
from tocsin.outputs.cap.geometry import areas_shapes, cap_polygons
from tocsin.outputs.cap.mapping import alert_message
from tocsin.outputs.cap.model import (
    CAP_NS,
    CapArea,
    CapError,
    CapInfo,
    CapMessage,
    CapResource,
    Ring,
    cap_time,
)

__all__ = [
    "CAP_NS",
    "CapArea",
    "CapError",
    "CapInfo",
    "CapMessage",
    "CapResource",
    "Ring",
    "alert_message",
    "areas_shapes",
    "atom_feed",
    "cap_polygons",
    "cap_time",
    "encode",
    "parse",
    "parse_all",
    "sign_detached",
    "validate",
    "verify_detached",
]
