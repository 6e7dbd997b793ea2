"""An alerts.in.ua-compatible read API at the server root.

The official clients (e.g. Python `alerts_in_ua`) work unchanged once their base URL points
here: the same paths, JSON shapes, time formats, `Last-Modified` on every 200 and `304` for an
unchanged `If-Modified-Since`, and errors as `{"message": ...}`. Any bearer token is accepted
on a public server (those clients always send one); a `--private` server wants a reader key.

`Last-Modified` moves only when what an answer shows changes: each answer (by path) keeps the
digest of its content and the time that content was first served, so a transition the answer
does not show (another oblast's hromada, a severity inside an alert already listed by oblast)
leaves its date alone and conditional requests keep getting `304` during an attack. The digest is
also the answer's `ETag`. HTTP dates have whole seconds, so a change later in the same second
would hide behind an equal date: while the content is from the current second the date sent is
one second earlier, which makes the next conditional request fetch again; `304` is answered only
when the date the client holds is not older than the content.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from tocsin.api.auth import authenticate, client_of, require
from tocsin.outputs.alertsinua import PERIODS, AlertsInUaView, meta_time
from tocsin.service import Service

__all__ = ["CompatError", "install", "router"]

router = APIRouter(tags=["alerts.in.ua"])

DISCLAIMER = (
    "tocsin: alerts decided by this server's own engine in the alerts.in.ua format; "
    "not data of alerts.in.ua."
)


class CompatError(Exception):
    """An error answered as alerts.in.ua does: `{"message": ...}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class Versions:
    """Per answer: the digest of its content and when that content was first served.

    Keys are request paths of known locations and periods, so their number is bounded by the
    region set; `limit` bounds it anyway (the least recently changed are forgotten first, which
    only costs their clients one full answer).
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, tuple[str, datetime]] = OrderedDict()

    def of(self, key: str, content: bytes, latest: datetime) -> tuple[str, datetime]:
        """The ETag of `content` and when it appeared under `key`.

        `latest` is when the view last took in a change: content can only have changed then,
        so that time (not this request's) dates a content seen for the first time.
        """
        digest = hashlib.blake2b(content, digest_size=12).hexdigest()
        hit = self._seen.get(key)
        if hit is not None and hit[0] == digest:
            return hit
        found = (digest, latest)
        self._seen[key] = found
        self._seen.move_to_end(key)
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return found


def install(app: FastAPI, service: Service) -> None:
    """Serve the `alertsinua` output's view (`tocsin.bootstrap`) on `app.state.alertsinua`."""
    app.state.alertsinua = service.outputs["alertsinua"].model
    app.state.alertsinua_versions = Versions()

    @app.exception_handler(CompatError)
    async def compat_error(_request: Request, exc: CompatError) -> JSONResponse:
        return JSONResponse({"message": exc.message}, status_code=exc.status, headers=exc.headers)

    app.include_router(router)


def compat_reader(request: Request) -> AlertsInUaView:
    """Read access as alerts.in.ua clients ask for it (see the module docstring)."""
    try:
        if request.app.state.settings.private:
            require(authenticate(request), "reader")
        else:
            wait = request.app.state.limiter.check(f"ip:{client_of(request)}")
            if wait:
                raise HTTPException(429, "rate limit exceeded",
                                    headers={"Retry-After": str(max(1, round(wait + 0.5)))})
    except HTTPException as exc:
        raise CompatError(exc.status_code, str(exc.detail), dict(exc.headers or {})) from None
    view: AlertsInUaView = request.app.state.alertsinua
    return view


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _answer(
    request: Request,
    view: AlertsInUaView,
    content: Any,
    wrap: Callable[[Any, datetime], Any] | None = None,
) -> Response:
    """200 with `Last-Modified` and `ETag`, or 304 when the client's copy is current.

    `content` is what the answer shows; `wrap(content, changed)` makes the body around it
    (e.g. adds `meta.last_updated_at`), so dates in the body do not count as changes.
    """
    versions: Versions = request.app.state.alertsinua_versions
    raw = _dumps(content)
    etag, changed = versions.of(request.url.path, raw, view.changed_at)
    now = view.clock().astimezone(UTC)
    changed = changed.astimezone(UTC)
    newest = changed.replace(microsecond=0)
    sent = newest if newest < now.replace(microsecond=0) else newest - timedelta(seconds=1)
    headers = {"Last-Modified": format_datetime(sent, usegmt=True), "Cache-Control": "no-cache",
               "ETag": f'"{etag}"'}
    match = request.headers.get("if-none-match")
    if match is not None:
        if f'"{etag}"' in {t.strip().removeprefix("W/") for t in match.split(",")}:
            return Response(status_code=304, headers=headers)
    else:
        held = _http_date(request.headers.get("if-modified-since"))
        if held is not None and changed <= held <= now:
            return Response(status_code=304, headers=headers)
    body = raw if wrap is None else _dumps(wrap(content, changed))
    return Response(body, media_type="application/json", headers=headers)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return None if dt.tzinfo is None else dt.astimezone(UTC)


def _alerts(view: AlertsInUaView) -> Callable[[Any, datetime], Any]:
    disclaimer = DISCLAIMER if view.notes is None else f"{view.notes}. {DISCLAIMER}"

    def wrap(alerts: Any, changed: datetime) -> dict[str, Any]:
        return {"alerts": alerts, "meta": {"last_updated_at": meta_time(changed)},
                "disclaimer": disclaimer}

    return wrap


@router.get("/v1/alerts/active.json")
async def active_alerts(request: Request,
                        view: AlertsInUaView = Depends(compat_reader)) -> Response:
    """Alerts in force, rolled up to the coarsest location wholly under alert."""
    return _answer(request, view, view.active(), _alerts(view))


@router.get("/v1/regions/{uid}/alerts/{period}.json")
async def region_history(uid: int, period: str, request: Request,
                         view: AlertsInUaView = Depends(compat_reader)) -> Response:
    """Alerts of a location over `day_ago`, `week_ago` or `month_ago`, the open ones included."""
    span = PERIODS.get(period)
    if span is None:
        raise CompatError(400, f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
    found = view.region_history(uid, view.clock() - span)
    if found is None:
        raise CompatError(404, f"unknown location uid {uid}")
    return _answer(request, view, found, _alerts(view))


def _iot(version: int) -> None:
    levels = version == 2

    @router.get(f"/v{version}/iot/active_air_raid_alerts/{{uid}}.json")
    async def location_status(uid: int, request: Request,
                              view: AlertsInUaView = Depends(compat_reader)) -> Response:
        if uid not in view.locations:
            raise CompatError(404, f"unknown location uid {uid}")
        return _answer(request, view, view.status(uid, levels=levels))

    @router.get(f"/v{version}/iot/active_air_raid_alerts_by_oblast.json")
    async def oblast_statuses(request: Request,
                              view: AlertsInUaView = Depends(compat_reader)) -> Response:
        return _answer(request, view, view.by_oblast(levels=levels))

    @router.get(f"/v{version}/iot/active_air_raid_alerts.json")
    async def all_statuses(request: Request,
                           view: AlertsInUaView = Depends(compat_reader)) -> Response:
        return _answer(request, view, view.statuses(levels=levels))

    letters = "R (red), Y (yellow), P or N" if levels else "A, P or N"
    location_status.__doc__ = f"Air-raid status of one location: {letters}."
    oblast_statuses.__doc__ = f"Air-raid status of the 27 oblasts in a fixed order: {letters}."
    all_statuses.__doc__ = f"Air-raid status of every location, indexed by uid: {letters}."


_iot(1)
_iot(2)
