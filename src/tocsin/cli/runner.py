"""The uvicorn server as `serve` and `stream-edge` run it: a quiet exit and a tuned collector."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["Server", "tune_gc"]


def tune_gc() -> None:
    """Collect cycles less often in a long-running server with thousands of open streams.

    Each open stream keeps a few hundred objects alive, and a live transition wakes every stream
    at once: with the default first-generation threshold (700) the collector runs hundreds of
    times during one fan-out and promotes in-flight objects until a full collection walks every
    stream's objects. What is loaded at startup (regions, catalog) lives as long as the process,
    so it is frozen out of the collector's walks altogether.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


async def _remember_root_task() -> None:
    """Let anyio find the event loop's root task once, for every connection to come.

    Each call into anyio's worker threads (FastAPI runs every plain `def` dependency there,
    such as the API-key check of a POST) first looks up the root task, and remembers it only in
    the calling context: a request's context is thrown away afterwards, so each request scans
    every task of the process again, 30-70 ms with 10,000 open streams, before the event is even
    read. Called here, before the listening socket is opened, the lookup is remembered in the
    context every connection's context is copied from.
    """
    import anyio.to_thread

    await anyio.to_thread.run_sync(lambda: None)


class Server:
    """uvicorn's server, minus re-raising SIGTERM after a graceful shutdown (exit code 0)."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Quiet(uvicorn.Server):
            announce: str | None = None

            async def startup(self, sockets: Any = None) -> None:
                await _remember_root_task()
                # "serving on" only once the port is bound: uvicorn sets `started` after binding
                await super().startup(sockets)
                if self.started and self.announce:
                    print(self.announce, file=sys.stderr, flush=True)

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                import signal
                import threading

                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                handled = (signal.SIGINT, signal.SIGTERM)
                original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
                try:
                    yield
                finally:
                    for sig, handler in original.items():
                        signal.signal(sig, handler)

        return Quiet(config)
