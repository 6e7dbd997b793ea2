"""`GET /api/v1/audit/impacts`: recent impacts in the log, each covered by an alert or silent.

The auditor (`tocsin.audit.coverage.ImpactAuditor`) is fed the log incrementally: each request
reads only the entries logged since the previous one, so the cost over a server's life is one
pass over the log.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from tocsin.api.read import reader
from tocsin.audit.coverage import ImpactAuditor, summarise_impacts
from tocsin.service import Service

__all__ = ["router"]

router = APIRouter(tags=["audit"])


class _Impacts:
    """One auditor per service, caught up under a lock."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.auditor = ImpactAuditor(service.regions.locate)
        self.lock = threading.Lock()

    def catch_up(self) -> ImpactAuditor:
        with self.lock:
            self.auditor.feed(self.service.log.read(self.auditor.last_seq + 1))
        return self.auditor


def _impacts(request: Request, service: Service) -> _Impacts:
    state = request.app.state
    holder = getattr(state, "impact_audit", None)
    if holder is None or holder.service is not service:
        holder = state.impact_audit = _Impacts(service)
    return holder


@router.get("/api/v1/audit/impacts")
async def impacts(
    request: Request,
    limit: int = Query(100, ge=1, le=1000, description="most recent impacts to list"),
    silent_only: bool = Query(False, description="only impacts with no alert in force"),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """Recent impacts, newest first, with the region, whether it was under alert, the lead
    time, and silent impacts marked; `summary` counts every impact in the log."""
    auditor = await asyncio.to_thread(_impacts(request, service).catch_up)
    results = list(auditor.results)
    chosen = [r for r in reversed(results) if r.silent or not silent_only][:limit]
    out = []
    for r in chosen:
        item = r.to_dict()
        item["region_name"] = (service.regions.get(r.region).name
                               if r.region is not None and r.region in service.regions else None)
        out.append(item)
    return {"impacts": out, "summary": summarise_impacts(results)}
