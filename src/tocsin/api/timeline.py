"""A region's recent alerts as a timeline: `GET /api/v1/regions/{id}/recent?days=7`.

The region panel of the map draws the last days of a region as lanes with the hours it spent
under alert. The read is bounded in both directions: at most `MAX_DAYS` back, at most
`MAX_ALERTS` alerts (newest first, `truncated` says when more overlapped the window), so an
oblast with thousands of hromada alerts in a week costs one bounded answer, not the history.

Alert-hours are the length of the union of the alerts' intervals, clipped to the window: an
oblast with ten hromadas under alert for the same hour spent one hour under alert, not ten. An
alert still open counts up to now.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from tocsin.api.read import marked, reader
from tocsin.model import format_time, parse_time
from tocsin.service import Service

__all__ = ["MAX_ALERTS", "MAX_DAYS", "alert_hours", "router"]

router = APIRouter(tags=["read"])

MAX_DAYS = 31
MAX_ALERTS = 2000


def _union_s(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by the union of [start, end) intervals."""
    total = 0.0
    cur_s = cur_e = None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        elif e > cur_e:
            cur_e = e
    if cur_e is not None and cur_s is not None:
        total += cur_e - cur_s
    return total


def alert_hours(records: list[dict[str, Any]], start: datetime, end: datetime,
                days: int) -> dict[str, Any]:
    """Hours under alert in [start, end]: in all, per alert type and per 24-hour slice.

    The slices end at `end` (the last is the 24 hours up to now), so the answer is the same in
    every time zone; the page labels them in local time.
    """
    s0, e0 = start.timestamp(), end.timestamp()
    spans: list[tuple[str, float, float]] = []
    for r in records:
        s = max(s0, parse_time(r["started_at"]).timestamp())
        e = min(e0, parse_time(r["ended_at"]).timestamp() if r["ended_at"] else e0)
        if e > s:
            spans.append((r["alert_type"], s, e))
    by_type: dict[str, float] = {}
    for ty in sorted({ty for ty, _, _ in spans}):
        by_type[ty] = round(_union_s((s, e) for t, s, e in spans if t == ty) / 3600, 2)
    slices = []
    for i in range(days):
        a, b = e0 - (days - i) * 86400, e0 - (days - i - 1) * 86400
        cut = [(max(a, s), min(b, e)) for _, s, e in spans if s < b and e > a]
        slices.append({"start": format_time(datetime.fromtimestamp(a, start.tzinfo)),
                       "end": format_time(datetime.fromtimestamp(b, start.tzinfo)),
                       "alert_hours": round(_union_s(cut) / 3600, 2)})
    return {"alert_hours": round(_union_s((s, e) for _, s, e in spans) / 3600, 2),
            "by_type": by_type, "days": slices}


@router.get("/api/v1/regions/{region_id}/recent")
async def recent(
    region_id: str = Path(..., max_length=64, description="a region id at any level"),
    days: int = Query(7, ge=1, le=MAX_DAYS, description=f"how far back, 1-{MAX_DAYS} days"),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """The last `days` of a region's alerts (its own and its parts'), with alert-hours."""
    if region_id not in service.regions:
        raise HTTPException(404, f"unknown region {region_id!r}")
    end = service.clock()
    start = end - timedelta(days=days)
    leaves = service.leaves_for(region_id, None, None)
    found = service.history.query(start, end, leaves, MAX_ALERTS + 1)
    alerts = found[:MAX_ALERTS]
    return {
        **marked(service),
        "region": region_id,
        "since": format_time(start),
        "until": format_time(end),
        **alert_hours(alerts, start, end, days),
        "alerts": alerts,
        "truncated": len(found) > MAX_ALERTS,
    }
