"""A stream edge: `GET /api/v1/stream` served from a committed log by a process of its own.

An edge writes nothing and decides nothing. It tails the log the writer commits to (the SQLite
file in WAL mode on this machine, or a cluster's PostgreSQL log from anywhere) and fans it out
with the same hub, the same resume rules and the same limits as the main process, so any number
of edges can stand behind a load balancer and a client may reconnect to any of them with
`Last-Event-ID`: no gap, no repeat.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Gauge

from tocsin import __version__
from tocsin.api.feed import TailFeed
from tocsin.api.limits import install_limits
from tocsin.api.metrics import StreamMetrics
from tocsin.api.sse import StreamingApp, install_stream
from tocsin.config import Settings
from tocsin.errors import TocsinError
from tocsin.geo import load_region_set
from tocsin.store import open_admin, open_log

__all__ = ["create_edge_app"]


def create_edge_app(settings: Settings, *, poll_s: float = 0.02,
                    wake_fd: int | None = None) -> StreamingApp:
    """The app of one stream edge on the log `settings` name (`store`, else `data_dir`); with
    `wake_fd`, the log is read when the writer rings that pipe (see `TailFeed`)."""
    where = settings.store or settings.data_dir
    if settings.store is None and not (Path(settings.data_dir) / "tocsin.db").exists():
        raise TocsinError(f"{settings.data_dir} holds no log (tocsin.db): start `tocsin serve` "
                          "on it first")
    log = open_log(where)
    region_set = log.get_meta("regions")
    if region_set is None:
        log.close()
        raise TocsinError(f"{where}: the log names no region set; start `tocsin serve` first")
    regions = load_region_set(region_set)
    admin = open_admin(settings.store, settings.data_dir)
    feed = TailFeed(log, poll_s=poll_s, wake_fd=wake_fd)

    @contextlib.asynccontextmanager
    async def lifespan(app: StreamingApp) -> AsyncIterator[None]:
        await hub.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await hub.stop()
            log.close()
            admin.close()

    app = StreamingApp(title="tocsin stream edge", version=__version__, lifespan=lifespan,
                       description="Live transitions (SSE) tailed from the committed log.")
    app.state.settings = settings
    app.state.admin = admin
    app.state.ready = False
    install_limits(app.state, settings)
    metrics = StreamMetrics(CollectorRegistry())
    position = Gauge("tocsin_edge_log_seq", "Last log seq this edge has read",
                     registry=metrics.registry)
    position.set_function(lambda: float(feed.position))
    hub = install_stream(app, feed, regions, metrics)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str | int]:
        """Liveness, and which process answered (edges share a port)."""
        return {"status": "ok", "pid": os.getpid()}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """Ready once the edge follows the log; `seq` is how far it has read."""
        if not app.state.ready or hub.closing:
            raise HTTPException(503, "not following the log")
        return JSONResponse({"status": "ready", "seq": feed.position, "edge": True})

    @app.get("/metrics", tags=["ops"])
    async def prometheus() -> Response:
        """This edge's streams, drops, responses and process figures."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
