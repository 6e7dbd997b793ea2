"""Public read endpoints: alerts, history, regions, tracks, levels, metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from shapely.geometry import mapping

from tocsin.api.auth import Principal, authenticate, require
from tocsin.engine.core import Engine, from_us
from tocsin.errors import FieldError, ValidationError
from tocsin.geo import Region
from tocsin.model import format_time, parse_time
from tocsin.modes import notice
from tocsin.service import Service

__all__ = ["marked", "reader", "router"]

router = APIRouter(tags=["read"])


def reader(request: Request, principal: Principal = Depends(authenticate)) -> Service:
    """The service, after checking read access (public unless the server is --private)."""
    if request.app.state.settings.private:
        require(principal, "reader")
    service: Service = request.app.state.service
    return service


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type (RFC 7946)."""

    media_type = "application/geo+json"


def marked(service: Service) -> dict[str, Any]:
    """The deployment mode of an answer: `mode`, and `notice` in words during a drill."""
    mode = service.settings.mode
    return {"mode": mode, "notice": notice(mode)}


def _filter(service: Service, region: str | None, lat: float | None,
            lon: float | None) -> set[str] | None:
    if (lat is None) != (lon is None):
        raise ValidationError(FieldError("lat" if lat is None else "lon",
                                         "lat and lon go together"))
    if region is not None and region not in service.regions:
        raise HTTPException(404, f"unknown region {region!r}")
    return service.leaves_for(region, lat, lon)


Lat = Query(None, ge=-90, le=90, description="latitude of a point (with lon)")
Lon = Query(None, ge=-180, le=180, description="longitude of a point (with lat)")


@router.get("/api/v1/alerts/active")
async def active_alerts(
    region: str | None = Query(None, description="a region id at any level"),
    lat: float | None = Lat, lon: float | None = Lon,
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """Alerts in force now (including those in their hold time)."""
    leaves = _filter(service, region, lat, lon)
    alerts = await service.read(Engine.active_alerts)
    if leaves is not None:
        alerts = [a for a in alerts if a["region"] in leaves]
    return {**marked(service), "alerts": alerts}


@router.get("/api/v1/alerts")
async def alert_history(
    since: str | None = Query(None, description="RFC 3339"),
    until: str | None = Query(None, description="RFC 3339"),
    region: str | None = None,
    limit: int = Query(1000, ge=1, le=10000),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """Alerts that overlap [since, until], newest first."""
    bounds = []
    for name, value in (("since", since), ("until", until)):
        try:
            bounds.append(parse_time(value) if value else None)
        except ValueError as exc:
            raise ValidationError(FieldError(name, str(exc))) from exc
    leaves = _filter(service, region, None, None)
    return {**marked(service),
            "alerts": service.history.query(bounds[0], bounds[1], leaves, limit)}


def _region_json(r: Region, *, geometry: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id, "level": r.level, "parent": r.parent, "name": r.name,
        "names": dict(r.names), "alerts_uid": r.alerts_uid, "shelter_s": r.shelter_s,
    }
    if geometry:
        out["geometry"] = mapping(r.geometry) if not r.geometry.is_empty else None
    return out


@router.get("/api/v1/regions")
async def regions(level: str | None = None, service: Service = Depends(reader)) -> dict[str, Any]:
    """Every region of the loaded set (no geometry)."""
    return {
        "set": service.regions.name,
        "regions": [_region_json(r) for r in service.regions.regions.values()
                    if level is None or r.level == level],
    }


@router.get("/api/v1/regions/locate")
async def locate(lat: float = Query(..., ge=-90, le=90), lon: float = Query(..., ge=-180, le=180),
                 service: Service = Depends(reader)) -> dict[str, Any]:
    """The chain of regions containing a point, finest first."""
    leaf = service.regions.locate(lat, lon)
    if leaf is None:
        raise HTTPException(404, f"({lat}, {lon}) is in no loaded region")
    return {"chain": [_region_json(r) for r in service.regions.chain(leaf)]}


@router.get("/api/v1/regions/{region_id}")
async def region(region_id: str, geometry: bool = True,
                 service: Service = Depends(reader)) -> dict[str, Any]:
    """One region with its parent chain and children."""
    if region_id not in service.regions:
        raise HTTPException(404, f"unknown region {region_id!r}")
    r = service.regions.get(region_id)
    out = _region_json(r, geometry=geometry)
    out["chain"] = [x.id for x in service.regions.chain(region_id)]
    out["children"] = list(service.regions.children(region_id))
    return out


def _tracks(engine: Engine) -> dict[str, Any]:
    features = []
    now = engine.clock_us or 0
    for tr in sorted(engine.tracks.values(), key=lambda t: t.id):
        horizon = engine.policy.horizon(tr.profile)
        fp, _ = tr.footprint(now, horizon.pre_alert_s)
        poly = engine.regions.footprint_polygon(fp)
        lat, lon = tr.position_at(now)
        features.append({
            "type": "Feature",
            "id": tr.id,
            "geometry": mapping(poly),
            "properties": {
                "track": tr.id, "object": tr.object, "weapon": tr.weapon_id,
                "profile": tr.profile, "affiliation": tr.affiliation,
                "position": {"lat": lat, "lon": lon}, "heading_deg": tr.heading_deg,
                "speed_kmh": round(tr.speed_mps * 3.6, 1),
                "last_news": format_time(from_us(tr.last_news)),
                "regions": int(tr.cov_pos.size),
                "eta_s": round(max(0.0, float(tr.cov_eta.min()) - (now - tr.t_cov) / 1e6), 1)
                if tr.cov_eta.size else None,
            },
        })
    return {"type": "FeatureCollection", "features": features}


@router.get("/api/v1/tracks/active", response_class=GeoJSONResponse,
            responses={200: {"content": {"application/geo+json": {}}}})
async def tracks(service: Service = Depends(reader)) -> GeoJSONResponse:
    """Live tracks with their current footprints, as GeoJSON (`application/geo+json`)."""
    result: dict[str, Any] = await service.read(_tracks)
    result.update(marked(service))  # foreign members, as RFC 7946 allows
    return GeoJSONResponse(result)


@router.get("/api/v1/levels")
async def levels(service: Service = Depends(reader)) -> dict[str, Any]:
    """Standing threat levels (regions at level 0 are left out)."""
    items = await service.read(lambda e: sorted(e.levels.items()))
    return {**marked(service), "levels": [{"region": r, "level": lv} for r, lv in items]}


@router.get("/metrics", tags=["ops"], response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    return Response(await request.app.state.metrics.render_async(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
