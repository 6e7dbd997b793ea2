"""The siren registry over HTTP, with each siren's status; the MQTT gateway's start and stop."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request

from tocsin.api.auth import Principal, authenticate, require
from tocsin.api.read import reader
from tocsin.outputs.sirens import SirenGateway
from tocsin.service import LeaderOnly, Service

__all__ = ["install", "router", "start", "stop"]

router = APIRouter(prefix="/api/v1", tags=["sirens"])


def install(app: FastAPI, service: Service) -> None:
    """Add the siren routes; make a gateway when the settings name an MQTT broker.

    The gateway runs on one node only (in a cluster, the leader), so each siren fault is
    logged once.
    """
    url = app.state.settings.mqtt_url
    app.state.sirens_output = service.leading(lambda: SirenGateway(service, url)) if url else None
    app.include_router(router)


def _gateway(app: FastAPI) -> SirenGateway | None:
    """The gateway running on this node, if any (a cluster follower has none)."""
    output: LeaderOnly[SirenGateway] | None = app.state.sirens_output
    return None if output is None else output.current


async def start(app: FastAPI) -> None:
    """Start the gateway, if any (after the service has recovered)."""
    output = app.state.sirens_output
    if output is not None:
        await app.state.service.start_output(output)


async def stop(app: FastAPI) -> None:
    """Stop the gateway, if any (before the service closes its log)."""
    output = app.state.sirens_output
    if output is not None:
        await output.stop()


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
