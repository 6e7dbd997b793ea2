"""`tocsin stream-edge`, and the stream workers `tocsin serve --stream-workers N` starts."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

from tocsin.cli.common import EXIT_INPUT, EXIT_OK, err
from tocsin.config import Settings

__all__ = ["cmd_stream_edge", "listening_socket", "stream_workers"]


def listening_socket(host: str, port: int, *, reuse_port: bool,
                     send_buffer: int = 0) -> socket.socket:
    """A bound TCP socket; with `reuse_port`, several processes bind the same port and the
    kernel spreads new connections among them. Accepted connections inherit `send_buffer`
    (SO_SNDBUF), which bounds what a client that reads nothing holds in the kernel."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named, not 0: asyncio sets TCP_NODELAY on a transport only when the socket says it
    # is TCP, and without it a response's body waits for the ACK of its headers (Nagle against
    # the client's delayed ACK: 40 ms on every answer)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if send_buffer > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def cmd_stream_edge(args: argparse.Namespace) -> int:
    """Serve GET /api/v1/stream from the committed log of a tocsin (read-only, any number)."""
    import logging

    import uvicorn

    from tocsin.api.edge import create_edge_app
    from tocsin.api.sse import QuietDrops
    from tocsin.cli.runner import Server, tune_gc
    from tocsin.config import settings_from_env

    if args.wake_fd is not None:
        try:
            if not stat.S_ISFIFO(os.fstat(args.wake_fd).st_mode):
                err(f"--wake-fd: {args.wake_fd} is not a pipe")
                return EXIT_INPUT
        except OSError as exc:
            err(f"--wake-fd: {args.wake_fd} is not an open file descriptor ({exc.strerror})")
            return EXIT_INPUT
    settings = settings_from_env(
        host=args.host, port=args.port, data_dir=args.data_dir, store=args.store,
        private=args.private or None,
        trusted_proxies=",".join(args.trusted_proxy) if args.trusted_proxy else None,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_edge_app(settings, wake_fd=args.wake_fd)
    sock = listening_socket(settings.host, settings.port, reuse_port=args.reuse_port,
                            send_buffer=settings.socket_send_buffer)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10,
                            access_log=False, proxy_headers=False, backlog=4096)
    server = Server(config)
    logging.getLogger("uvicorn.error").addFilter(QuietDrops(app.state.hub))
    original_exit = server.handle_exit
    hub = app.state.hub

    def handle_exit(sig: int, frame: Any) -> None:
        original_exit(sig, frame)
        if hub.loop is not None:  # end the streams, so the graceful shutdown need not wait
            with contextlib.suppress(RuntimeError):
                hub.loop.call_soon_threadsafe(hub.close)

    server.handle_exit = handle_exit
    print(f"tocsin stream edge on http://{settings.host}:{settings.port}/api/v1/stream "
          f"(tailing {settings.store or settings.data_dir})", file=sys.stderr, flush=True)
    tune_gc()
    server.run(sockets=[sock])
    return EXIT_OK


@contextlib.contextmanager
def stream_workers(settings: Settings, args: argparse.Namespace) -> Iterator[list[int]]:
    """Start `settings.stream_workers` edges on `stream_port` for the life of the block; yields
    the write ends of their doorbells (`tocsin.outputs.doorbell`), one pipe per worker."""
    if settings.stream_workers <= 0:
        yield []
        return
    port = settings.stream_port or settings.port + 1
    where = ["--store", settings.store] if settings.store else ["--data-dir",
                                                                 str(settings.data_dir)]
    extra: list[str] = ["--private"] if settings.private else []
    for cidr in filter(None, (c.strip() for c in settings.trusted_proxies.split(","))):
        extra += ["--trusted-proxy", cidr]
    cmd = [sys.executable, "-m", "tocsin", "stream-edge", *where, "--host", settings.host,
           "--port", str(port), "--reuse-port", *extra]
    procs: list[subprocess.Popen[bytes]] = []
    bells: list[int] = []
    try:
        for _ in range(settings.stream_workers):
            ring, bell = os.pipe()
            os.set_blocking(bell, False)
            bells.append(bell)
            try:
                procs.append(subprocess.Popen([*cmd, "--wake-fd", str(ring)], pass_fds=(ring,)))
            finally:
                os.close(ring)
        print(f"tocsin: {len(procs)} stream workers on http://{settings.host}:{port}"
              "/api/v1/stream", file=sys.stderr, flush=True)
        yield bells
    finally:
        _stop_all(procs, lambda p: p.terminate())
        for bell in bells:
            os.close(bell)


def _stop_all(procs: list[subprocess.Popen[bytes]],
              signal: Callable[[subprocess.Popen[bytes]], None]) -> None:
    for proc in procs:
        if proc.poll() is None:
            signal(proc)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
