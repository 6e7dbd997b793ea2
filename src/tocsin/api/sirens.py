"""The siren registry over HTTP, with each siren's status and the MQTT gateway's."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from tocsin.api.admin import admin_service
from tocsin.api.auth import Principal, authenticate, require
from tocsin.api.read import reader
from tocsin.errors import FieldError, ValidationError
from tocsin.outputs.base import LeaderOnly
from tocsin.outputs.sirens import SIREN_ID_RE, SirenGateway
from tocsin.service import Service
from tocsin.store.admin import SirenRecord

__all__ = ["install", "router"]

router = APIRouter(prefix="/api/v1", tags=["sirens"])


def install(app: FastAPI, service: Service) -> None:
    """Add the siren routes, over the `sirens` output when the settings name an MQTT broker
    (`tocsin.bootstrap`: it runs on one node only, so each siren fault is logged once)."""
    app.state.sirens_output = service.outputs.get("sirens")
    app.include_router(router)


def _gateway(app: FastAPI) -> SirenGateway | None:
    """The gateway running on this node, if any (a cluster follower has none)."""
    output: LeaderOnly[SirenGateway] | None = app.state.sirens_output
    return None if output is None else output.current


@router.get("/sirens")
async def sirens(request: Request, service: Service = Depends(reader)) -> dict[str, Any]:
    """Every registered siren with its status: `ok`, `fault`, `offline` or `unknown`."""
    gateway = _gateway(request.app)
    if gateway is not None:
        return {
            "mqtt": "connected" if gateway.connected.is_set() else "disconnected",
            "sirens": [v.to_dict() for v in gateway.views()],
        }
    # No broker: the registry with the statuses logged last (a siren never reported is unknown).
    records = await asyncio.to_thread(service.admin.sirens)
    logged: dict[str, str] = await service.read(lambda e: dict(e.sirens))
    return {
        "mqtt": "off",
        "sirens": [{**r.to_dict(), "status": logged.get(r.id, "unknown")} for r in records],
    }


@router.post("/sirens/{siren_id}/test", status_code=202)
async def test_siren(
    siren_id: str, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    """Send one siren a test (pattern `test`, not retained); its answer shows in its status."""
    require(principal, "operator")
    gateway = _gateway(request.app)
    if gateway is None:
        raise HTTPException(409, "sirens are off on this server (no --mqtt broker)")
    if not gateway.connected.is_set():
        raise HTTPException(503, "not connected to the MQTT broker")
    if not gateway.test([siren_id]):
        raise HTTPException(404, f"no siren {siren_id!r}")
    return {"sent": siren_id}


class SirenIn(BaseModel):
    """A siren to register: its id, where it stands, and a name for people."""

    id: str = Field(description="1-64 of A-Z a-z 0-9 . _ -")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    name: str | None = Field(None, max_length=200)


@router.post("/sirens", status_code=201)
async def put_sirens(body: list[SirenIn],
                     service: Service = Depends(admin_service)) -> dict[str, Any]:
    """Add or replace sirens (admin), all or none: each is located in a leaf region.

    A running gateway picks them up within 5 s, as after `tocsin sirens import`.
    """
    if not body:
        raise ValidationError(FieldError("(body)", "an empty list"))
    if len(body) > 10_000:
        raise ValidationError(FieldError("(body)", "at most 10,000 sirens per request"))
    records, errors, seen = [], [], set()
    for i, siren in enumerate(body):
        if not SIREN_ID_RE.match(siren.id):
            errors.append(FieldError(f"[{i}].id", "must be 1-64 of A-Z a-z 0-9 . _ -"))
            continue
        if siren.id in seen:
            errors.append(FieldError(f"[{i}].id", f"{siren.id!r} is listed twice"))
            continue
        seen.add(siren.id)
        leaf = service.regions.locate(siren.lat, siren.lon)
        if leaf is None:
            errors.append(FieldError(f"[{i}].lat", f"({siren.lat}, {siren.lon}) is in no "
                                                   f"region of {service.regions.name}"))
            continue
        records.append(SirenRecord(siren.id, (siren.name or "").strip() or siren.id,
                                   siren.lat, siren.lon, leaf))
    if errors:
        raise ValidationError(errors)
    await asyncio.to_thread(service.admin.put_sirens, records)
    return {"sirens": [r.to_dict() for r in records]}


@router.delete("/sirens/{siren_id}")
async def delete_siren(siren_id: str,
                       service: Service = Depends(admin_service)) -> dict[str, Any]:
    """Remove a siren from the registry (admin); the gateway forgets it within 5 s."""
    if not await asyncio.to_thread(service.admin.delete_siren, siren_id):
        raise HTTPException(404, f"no siren {siren_id!r}")
    return {"deleted": siren_id}
