"""The dashboard's side of the API: the page itself, and the few reads only a map needs.

- `/` and `/static/…`: the dashboard (no CDN, no tile server; Leaflet is vendored); `/sw.js`,
  its service worker, and `/manifest.webmanifest`, which make it installable and let it open
  while the server is briefly unreachable.
- `GET /api/v1/info`: version, mode (a drill says `exercise`), the region set and its levels.
- `GET /api/v1/map/regions?level=L`: one level of the region set as compact GeoJSON, simplified
  once per process and sent gzipped; the region set never changes while a server runs.
- `GET /api/v1/incidents`: the latest `silent_impact` and `siren_fault` transitions, so a page
  opened after an incident still shows it (the stream only brings what happens next).
- `GET /api/v1/whoami`: the name and role of the key a console was given.
- `POST /api/v1/stream/ticket`: a single-use ticket that opens the stream on a `--private`
  server (see `tocsin.api.tickets`).
- `GET /api/v1/regions/{id}/recent?days=7`: a region's last days of alerts with alert-hours,
  for the region panel's timeline (see `tocsin.api.timeline`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import shapely
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from shapely.geometry import mapping
from starlette.concurrency import run_in_threadpool

from tocsin import __version__
from tocsin.api.auth import Principal, authenticate
from tocsin.api.read import reader
from tocsin.geo import RegionSet
from tocsin.model import ALERT_TYPES, SEVERITIES, format_time
from tocsin.outputs.incidents import IncidentLog
from tocsin.service import Service
from tocsin.web import STATIC_DIR

__all__ = ["install", "levels_of", "region_layer", "router"]

router = APIRouter(tags=["dashboard"])

_POLYGONAL = ("Polygon", "MultiPolygon")


def install(app: FastAPI) -> None:
    """Add the dashboard routes and its static files to `app`."""
    from tocsin.api import tickets, timeline

    app.include_router(router)
    app.include_router(tickets.router)
    app.include_router(timeline.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The dashboard page."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> FileResponse:
    """The page's service worker, served from the root so that its scope is the whole page."""
    return FileResponse(STATIC_DIR / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})


@router.get("/manifest.webmanifest", include_in_schema=False)
async def manifest() -> FileResponse:
    """The web app manifest (installing the page on a phone's home screen)."""
    return FileResponse(STATIC_DIR / "manifest.webmanifest",
                        media_type="application/manifest+json",
                        headers={"Cache-Control": "no-cache"})


# --- region layers ----------------------------------------------------------------------------


@lru_cache(maxsize=8)
def levels_of(regions: RegionSet) -> tuple[tuple[str, int], ...]:
    """The levels of a set, coarsest first (by depth in the hierarchy), with region counts."""
    depth: dict[str, int] = {}
    count: dict[str, int] = {}
    for r in regions.regions.values():
        d = len(regions.chain(r.id)) - 1
        depth[r.level] = min(d, depth.get(r.level, d))
        count[r.level] = count.get(r.level, 0) + 1
    return tuple((lv, count[lv]) for lv in sorted(depth, key=lambda lv: (depth[lv], lv)))


def _tolerance(geoms: Iterable[Any]) -> float:
    """A simplification tolerance in degrees: about 1/50 of a typical region's width.

    Small enough that a region keeps its shape at the zoom where its level is shown, large
    enough that the finest Ukrainian level (1,769 hromadas) stays a few hundred kilobytes.
    """
    areas = sorted(float(g.area) for g in geoms if not g.is_empty)
    if not areas:
        return 0.0
    typical = areas[len(areas) // 2] ** 0.5
    return float(min(0.02, max(0.001, typical / 50.0)))


def _simplify(geoms: list[Any], tolerance: float) -> list[Any]:
    """Simplify a level as one coverage when possible, so neighbours keep a shared border."""
    if tolerance <= 0:
        return geoms
    out = list(geoms)
    idx = [i for i, g in enumerate(geoms) if g.geom_type in _POLYGONAL and not g.is_empty]
    coverage = getattr(shapely, "coverage_simplify", None)  # shapely >= 2.1
    done = False
    if coverage is not None and idx:
        try:
            simplified = coverage([geoms[i] for i in idx], tolerance)
            if not any(shapely.is_empty(simplified)):
                for i, g in zip(idx, simplified, strict=True):
                    out[i] = g
                done = True
        except (shapely.errors.GEOSException, TypeError, ValueError):
            done = False  # not a clean coverage (overlaps, gaps): simplify one by one
    for i, g in enumerate(geoms):
        if g.is_empty or (done and i in idx):
            continue
        s = shapely.simplify(g, tolerance, preserve_topology=True)
        out[i] = g if s.is_empty else s
    return out


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, float | int):
        return round(float(value), digits)
    return [_rounded(v, digits) for v in value]


@lru_cache(maxsize=16)
def region_layer(regions: RegionSet, level: str) -> tuple[bytes, bytes, str]:
    """One level as GeoJSON: (body, gzipped body, ETag); built once per set and level."""
    members = [r for r in regions.regions.values() if r.level == level]
    tolerance = _tolerance(r.geometry for r in members)
    digits = 3 if tolerance >= 0.003 else 4
    geoms = _simplify([r.geometry for r in members], tolerance)
    features = []
    for r, g in zip(members, geoms, strict=True):
        geometry = None
        # Snapping drops islands smaller than the grid (plain rounding left them as zero-area
        # rings); coverage simplification returns clockwise shells, RFC 7946 wants them
        # anticlockwise.
        g = shapely.orient_polygons(shapely.set_precision(g, 10.0**-digits), exterior_cw=False)
        if not g.is_empty:
            m = mapping(g)
            geometry = {"type": m["type"], "coordinates": _rounded(m["coordinates"], digits)}
        features.append({
            "type": "Feature",
            "id": r.id,
            "geometry": geometry,
            "properties": {
                "id": r.id, "level": r.level, "parent": r.parent, "names": dict(r.names),
                "alerts_uid": r.alerts_uid, "leaves": len(regions.leaves_under(r.id)),
            },
        })
    body = json.dumps(
        {"type": "FeatureCollection", "name": f"{regions.name}:{level}",
         "simplified_deg": tolerance, "features": features},
        ensure_ascii=False, separators=(",", ":"),
    ).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return body, gzip.compress(body, compresslevel=6, mtime=0), etag


@router.get(
    "/api/v1/map/regions",
    responses={200: {"content": {"application/geo+json": {}},
                     "description": "a FeatureCollection of one level"}},
)
async def map_regions(
    request: Request,
    level: str | None = Query(None, description="a level of the set (default: the coarsest)"),
    service: Service = Depends(reader),
) -> Response:
    """One level of the loaded region set, simplified for display, with ids, names and parents."""
    levels = [lv for lv, _ in levels_of(service.regions)]
    if level is None:
        level = levels[0]
    if level not in levels:
        raise HTTPException(404, f"no level {level!r} in this region set (levels: "
                                 f"{', '.join(levels)})")
    body, packed, etag = await run_in_threadpool(region_layer, service.regions, level)
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="application/geo+json", headers=headers)
    return Response(body, media_type="application/geo+json", headers=headers)


# --- info -------------------------------------------------------------------------------------


@router.get("/api/v1/info")
async def info(request: Request, service: Service = Depends(reader)) -> dict[str, Any]:
    """What this server is: version, mode (`exercise` during a drill), region set, log size."""
    settings = request.app.state.settings
    regions = service.regions
    return {
        "name": "tocsin",
        "version": __version__,
        "mode": settings.mode,
        "demo": settings.demo,
        "region_set": regions.name,
        "levels": [{"level": lv, "count": n} for lv, n in levels_of(regions)],
        "leaves": len(regions.leaves),
        "bounds": list(regions.bounds()),
        "log_size": service.ledger.next_seq - 1,
        "time": format_time(service.clock()),
        "alert_types": list(ALERT_TYPES),
        "severities": list(SEVERITIES),
    }


@router.get("/api/v1/whoami")
async def whoami(principal: Principal = Depends(authenticate)) -> dict[str, Any]:
    """The key a request carries: its name (recorded with every event it sends) and role."""
    if principal.key is None:
        raise HTTPException(401, "no key given", headers={"WWW-Authenticate": "Bearer"})
    return {"id": principal.key.id, "name": principal.key.name, "role": principal.key.role}


# --- incidents --------------------------------------------------------------------------------


@router.get("/api/v1/incidents")
async def incidents(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """The latest silent impacts and siren faults, newest first."""
    log: IncidentLog = service.outputs["incidents"].model
    return {"incidents": log.latest(limit)}
