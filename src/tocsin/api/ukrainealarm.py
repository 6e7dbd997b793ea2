"""An api.ukrainealarm.com v3-compatible read API under `/api/v3` (for `uasiren` and Home
Assistant's `ukraine_alarm` integration, pointed at this server).

`/api/v3/alerts/status` answers `{"lastActionIndex": N}`; N changes exactly when the answer of
`/api/v3/alerts` changes (it is the log seq of the latest such change), so a client that polls
the index fetches the alerts only when there is something new.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request

from tocsin.api.read import reader
from tocsin.outputs.ukrainealarm import UkraineAlarmView
from tocsin.service import Service

__all__ = ["install", "router"]

router = APIRouter(tags=["ukrainealarm"])


class _Index:
    """The `lastActionIndex`: moves when the digest of the alerts answer moves."""

    def __init__(self) -> None:
        self.digest = b""
        self.index = 0

    def of(self, view: UkraineAlarmView) -> int:
        alerts = json.dumps(view.alerts(), sort_keys=True).encode()
        digest = hashlib.blake2b(alerts, digest_size=16).digest()
        if digest != self.digest:
            self.digest = digest
            self.index = max(self.index + 1, view.rollup.last_seq)
        return self.index


def install(app: FastAPI, service: Service) -> None:
    """Serve the ukrainealarm view over the alerts.in.ua roll-up (install `compat` first)."""
    app.state.ukrainealarm = UkraineAlarmView(app.state.alertsinua)
    app.state.ukrainealarm_index = _Index()
    app.include_router(router)


def _view(request: Request, _service: Service = Depends(reader)) -> UkraineAlarmView:
    view: UkraineAlarmView = request.app.state.ukrainealarm
    return view


@router.get("/api/v3/regions")
async def ua_regions(view: UkraineAlarmView = Depends(_view)) -> Any:
    """Every region by ukrainealarm's ids: states, their districts and communities."""
    return view.regions()


@router.get("/api/v3/alerts")
async def ua_alerts(view: UkraineAlarmView = Depends(_view)) -> list[dict[str, Any]]:
    """Each region with an alert of its own in force, and those alerts."""
    return view.alerts()


@router.get("/api/v3/alerts/status")
async def ua_status(request: Request,
                    view: UkraineAlarmView = Depends(_view)) -> dict[str, int]:
    """`lastActionIndex`, which changes whenever the alerts answer does."""
    return {"lastActionIndex": request.app.state.ukrainealarm_index.of(view)}


@router.get("/api/v3/alerts/{region_id}")
async def ua_region_alerts(region_id: str,
                           view: UkraineAlarmView = Depends(_view)) -> list[dict[str, Any]]:
    """One region with the alerts that cover it (its own or a whole region's above it)."""
    if not view.known(region_id):
        raise HTTPException(404, f"unknown region id {region_id!r}")
    return view.alerts_of(region_id)
