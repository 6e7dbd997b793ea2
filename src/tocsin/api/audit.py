"""`GET /api/v1/audit/impacts`: recent impacts in the log, each covered by an alert or silent;
`GET /api/v1/audit/report`: the after-action report of a stretch of the log as an offline page.

The auditor (`tocsin.audit.coverage.ImpactAuditor`) is fed the log incrementally: each request
reads only the entries logged since the previous one, so the cost over a server's life is one
pass over the log.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from tocsin.api.read import reader
from tocsin.audit.coverage import ImpactAuditor, summarise_impacts
from tocsin.service import Service

__all__ = ["router"]

router = APIRouter(tags=["audit"])
REPORT_MAX_S = 7 * 86_400  # the longest stretch one report covers


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


@router.get("/api/v1/audit/report", response_class=HTMLResponse)
async def after_action(
    start: str | None = Query(None, alias="from", description="RFC 3339 (default: 24 h ago)"),
    end: str | None = Query(None, alias="to", description="RFC 3339 (default: now)"),
    service: Service = Depends(reader),
) -> HTMLResponse:
    """After-action report of [from, to] (at most 7 days): alerts by oblast over time, lead
    times at impacts, silent impacts, siren faults, detection → publish latency; the page that
    `tocsin report` writes."""
    from tocsin.audit.after_action import analyse, render_html
    from tocsin.errors import FieldError, ValidationError
    from tocsin.model import parse_time

    now = service.clock()
    errors: list[FieldError] = []
    times = {}
    for field, text, default in (("from", start, now - timedelta(days=1)), ("to", end, now)):
        try:
            times[field] = parse_time(text) if text is not None else default
        except ValueError as exc:
            errors.append(FieldError(field, str(exc)))
    if errors:
        raise ValidationError(errors)
    lo, hi = times["from"].timestamp(), times["to"].timestamp()
    if not 0 < hi - lo <= REPORT_MAX_S:
        raise ValidationError([FieldError("to", "must be after from, by at most 7 days")])
    regions = service.regions

    def top(region: str) -> str:
        return regions.chain(region)[-1].id if region in regions else region

    def build() -> str:
        report = analyse(service.log.read(), lo, hi, regions.locate, top)
        names = {r.id: r.name for r in regions.regions.values() if r.parent is None}
        s = report.summary(names)
        return render_html(report, names, f"tocsin after-action report, {s['from']} – {s['to']}",
                           top)

    return HTMLResponse(await asyncio.to_thread(build))
