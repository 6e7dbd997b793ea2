"""Pikud HaOref-compatible paths, on a region set of Home Front Command areas.

`/WarningMessages/alert/alerts.json` is sent as the website sends it: UTF-8 with a byte-order
mark and a trailing CRLF, and a body of just those when nothing is in force (clients strip them
before parsing). `/WarningMessages/alert/History/AlertsHistory.json` is plain JSON. On a region
set without Hebrew area labels both answer 404.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response

from tocsin.api.read import reader
from tocsin.outputs.oref import OrefView
from tocsin.service import Service

__all__ = ["install", "router"]

router = APIRouter(tags=["pikud haoref"])
BOM = b"\xef\xbb\xbf"


def install(app: FastAPI, service: Service) -> None:
    """Serve the `oref` output's view (`tocsin.bootstrap`) on `app.state.oref`."""
    app.state.oref = service.outputs["oref"].model
    app.include_router(router)


def _view(request: Request, _service: Service = Depends(reader)) -> OrefView:
    view: OrefView = request.app.state.oref
    if not view.enabled:
        raise HTTPException(404, "the loaded region set has no Home Front Command areas")
    return view


@router.get("/WarningMessages/alert/alerts.json", response_class=Response,
            responses={200: {"description": "JSON after a UTF-8 byte-order mark, then CRLF",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def oref_alerts(view: OrefView = Depends(_view)) -> Response:
    """Areas under alert now, in the most urgent category (an empty document when none)."""
    current = view.current()
    body = b"" if current is None else json.dumps(current, ensure_ascii=False).encode()
    return Response(BOM + body + b"\r\n", media_type="application/json",
                    headers={"Cache-Control": "no-cache"})


@router.get("/WarningMessages/alert/History/AlertsHistory.json")
async def oref_history(request: Request,
                       view: OrefView = Depends(_view)) -> list[dict[str, object]]:
    """Alerts of the last 24 hours, one row per area and start, newest first."""
    service: Service = request.app.state.service
    return view.history(service.clock())
