"""`create_app`: the HTTP API of one tocsin node, as a FastAPI (Starlette) application.

Nothing runs at import. The lifespan starts the service — which rebuilds the state and its
outputs from the log (`tocsin.bootstrap.compose` lists them) and starts the clock and the
outputs — then the stream hub and the head signer; on shutdown it lets in-flight writes finish
before closing the stores. The routes serve what the outputs keep; none is started here.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tocsin import __version__
from tocsin.api.feed import ServiceFeed
from tocsin.api.limits import install_limits
from tocsin.api.sse import StreamingApp, install_stream
from tocsin.bootstrap import compose, make_service
from tocsin.config import Settings
from tocsin.errors import Conflict, FieldError, TocsinError, ValidationError
from tocsin.service import Service

__all__ = ["create_app"]


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, by header or by counting."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit, send)
                return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(self.limit, send)


class ModeHeader:
    """`X-Tocsin-Mode` on every answer, so even a client that reads no body field sees a drill."""

    def __init__(self, app: ASGIApp, mode: str) -> None:
        self.app = app
        self.header = (b"x-tocsin-mode", mode.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, marked)


class JsonBodies:
    """Read an API body as JSON when the client did not say what it is.

    `curl -d` labels its body `application/x-www-form-urlencoded`; tocsin takes no forms, and
    `/api/v1/events` reads any body as JSON, so every JSON endpoint does the same (the CAP
    import, which takes XML, is left alone).
    """

    _FORM = b"application/x-www-form-urlencoded"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH")
                and scope["path"].startswith("/api/") and scope["path"] != "/api/v1/cap"):
            headers = [(k, v) for k, v in scope.get("headers", ())
                       if not (k == b"content-type" and v.split(b";")[0].strip() == self._FORM)]
            if not any(k == b"content-type" for k, _ in headers):
                headers.append((b"content-type", b"application/json"))
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    body = f'{{"detail":"request body over {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _field_name(loc: Sequence[Any]) -> str:
    """`("body", "regions", 0)` -> `regions[0]`; the request part is left out."""
    parts = list(loc[1:]) if len(loc) > 1 and loc[0] in ("body", "query", "header",
                                                        "path", "cookie") else list(loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or "(body)"


def error_body(exc: TocsinError) -> dict[str, Any]:
    """The JSON of an error answer: field-level detail for validation errors."""
    if isinstance(exc, ValidationError):
        return {
            "detail": "invalid input",
            "errors": [{"field": e.field, "reason": e.reason} for e in exc.errors],
        }
    if isinstance(exc, Conflict):
        return {"detail": str(exc), **exc.details}
    return {"detail": str(exc)}


def create_app(settings: Settings, service: Service | None = None,
               doorbells: Sequence[int] = ()) -> FastAPI:
    """Build the application; `service` may be given by tests, else one is made from settings;
    `doorbells`: the pipes of stream workers to ring on each commit."""
    if settings.demo:  # a drill is marked as an exercise everywhere
        settings = dataclasses.replace(settings, mode="exercise")
    # a service built by hand (tests, tools) gets its outputs from the same root
    svc = (compose(service, doorbells=doorbells) if service is not None
           else make_service(settings, doorbells=doorbells))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from tocsin.api.log import HeadSigner
        from tocsin.demo import DEFAULT_SCENARIO, start_demo

        await svc.start()  # the log, the role and every output
        await app.state.hub.start()  # SSE: follows the `stream` output from here on
        signer = HeadSigner(svc)  # signed tree heads of the log, every sth_interval_s
        await signer.start()
        demo = start_demo(svc, scenario=settings.demo_scenario or DEFAULT_SCENARIO,
                          speed=settings.demo_speed) if settings.demo else None
        try:
            yield
        finally:
            if demo is not None:
                demo.cancel()
            await svc.outputs.stop()  # first: the siren gateway logs its last statuses
            await signer.stop()  # ...which the last head then covers
            await app.state.hub.stop()
            await svc.stop()

    app = StreamingApp(
        title="tocsin",
        version=__version__,
        description="Air-raid warning: ingest detections, read alerts, stream transitions.",
        lifespan=lifespan,
    )
    app.state.service = svc
    app.state.settings = settings
    app.state.admin = svc.admin
    install_limits(app.state, settings)
    app.state.metrics = svc.outputs["metrics"]
    install_stream(app, ServiceFeed(svc), svc.regions, app.state.metrics.streams)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(ModeHeader, mode=settings.mode)
    app.add_middleware(JsonBodies)

    @app.exception_handler(TocsinError)
    async def tocsin_error(_request: Request, exc: TocsinError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=exc.status_hint)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # one error format for the whole API: FastAPI's own checks (query, header, JSON bodies
        # of admin calls) answer like tocsin's, naming each field as `a.b[0]`
        errors = [FieldError("(body)" if e.get("type") == "json_invalid"
                             else _field_name(e.get("loc", ())), str(e.get("msg", "invalid")))
                  for e in exc.errors()]
        return JSONResponse(error_body(ValidationError(errors)), status_code=422)

    from tocsin.api import admin, audit, cluster, ingest, log, read, web

    app.include_router(ingest.router)
    app.include_router(read.router)
    app.include_router(admin.router)
    app.include_router(log.router)
    app.include_router(audit.router)
    app.include_router(cluster.router)
    web.install(app)

    from tocsin.api import cap, compat, oref, sirens, ukrainealarm

    # CAP feed and import, alerts.in.ua and ukrainealarm APIs (the second reads the first),
    # Pikud HaOref's on a set of its areas, sirens
    for standard in (cap, compat, ukrainealarm, oref, sirens):
        standard.install(app, svc)

    from tocsin.api import openapi

    openapi.install(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """Readiness: the state is rebuilt from the log and writes are accepted."""
        if not svc.ready:
            raise HTTPException(503, "recovering from the log")
        return JSONResponse({"status": "ready", "seq": svc.ledger.next_seq - 1})

    return app
