"""`tocsin serve` and `tocsin keys`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from tocsin.cli.common import (
    EXIT_CHECK,
    EXIT_INPUT,
    EXIT_OK,
    admin_store,
    err,
)
from tocsin.errors import ValidationError


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API, engine and outputs in one process on the embedded stores."""
    import logging

    import uvicorn

    from tocsin.api import create_app
    from tocsin.api.sse import QuietDrops
    from tocsin.cli.edge import listening_socket, stream_workers
    from tocsin.cli.runner import Server, tune_gc
    from tocsin.config import settings_from_env

    if args.demo:
        from tocsin.demo import check_scenario
        from tocsin.errors import TocsinError

        try:
            check_scenario(args.demo)
        except (TocsinError, OSError, ValueError) as exc:
            err(f"--demo: {exc}")
            return EXIT_INPUT
    if args.speed is not None and not 0 < args.speed <= 1000:
        err(f"--speed: {args.speed} is not in (0, 1000]")
        return EXIT_INPUT
    settings = settings_from_env(
        host=args.host, port=args.port, data_dir=args.data_dir, regions=args.regions,
        policy=args.policy, private=args.private or None, mode=args.mode,
        demo=True if args.demo is not None else None,
        demo_scenario=args.demo or None, demo_speed=args.speed,
        public_url=args.public_url,
        allow_private_webhooks=args.allow_private_webhooks or None,
        log_key=args.log_key, witnesses=args.witnesses,
        mqtt_url=args.mqtt,
        store=args.store, bus=args.bus, node_id=args.node_id, cluster_name=args.cluster_name,
        stream_workers=args.stream_workers, stream_port=args.stream_port,
        trusted_proxies=",".join(args.trusted_proxy) if args.trusted_proxy else None,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        sock = listening_socket(settings.host, settings.port, reuse_port=False,
                                send_buffer=settings.socket_send_buffer)
    except OSError as exc:
        err(f"could not serve on {settings.host}:{settings.port}: {exc}")
        return EXIT_CHECK
    # the workers first: the app registers their doorbells with its other outputs
    with stream_workers(settings, args) as bells:
        app = create_app(settings, doorbells=bells)
        # proxy_headers off: X-Forwarded-For is read by tocsin, and only from trusted_proxies
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                                timeout_graceful_shutdown=10, access_log=False,
                                proxy_headers=False, backlog=4096)
        server = Server(config)
        logging.getLogger("uvicorn.error").addFilter(QuietDrops(app.state.hub))
        service = app.state.service
        original_exit = server.handle_exit

        def handle_exit(sig: int, frame: Any) -> None:
            original_exit(sig, frame)
            if service.closing_loop is not None:
                with contextlib.suppress(RuntimeError):
                    service.closing_loop.call_soon_threadsafe(service.begin_shutdown)

        server.handle_exit = handle_exit
        server.announce = (f"tocsin serving on http://{settings.host}:{settings.port}/ "
                           f"(data in {settings.data_dir})")
        tune_gc()
        server.run(sockets=[sock])
    if not server.started:
        err(f"could not serve on {settings.host}:{settings.port} (see the lines above)")
        return EXIT_CHECK
    return EXIT_OK


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create an API key; prints the key alone on stdout (it is stored hashed)."""
    store = admin_store(args)
    try:
        key, rec = store.create_key(args.role, args.name, args.sources)
    except ValidationError as exc:
        err(str(exc))
        return EXIT_INPUT
    finally:
        store.close()
    print(key)
    sources = ", ".join((rec.name, *rec.sources)) if rec.role != "admin" else "any"
    print(f"created key {rec.id} ({rec.name}, {rec.role}; sources: {sources})", file=sys.stderr)
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace) -> int:
    """List keys: id, name, role, created, revoked, sources."""
    store = admin_store(args)
    try:
        for k in store.list_keys():
            print(f"{k.id}\t{k.name}\t{k.role}\t{k.created_at}\t{k.revoked_at or '-'}\t"
                  f"{','.join(k.sources) or '-'}")
    finally:
        store.close()
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by id or name."""
    store = admin_store(args)
    try:
        done = store.revoke_key(args.key)
    finally:
        store.close()
    if not done:
        err(f"no live key {args.key!r}")
        return EXIT_CHECK
    print(f"revoked {args.key}", file=sys.stderr)
    return EXIT_OK


