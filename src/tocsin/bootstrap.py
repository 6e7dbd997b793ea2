"""The composition root: which node the settings describe, put together in one place."""

from __future__ import annotations

from tocsin.config import Settings
from tocsin.service import Service

__all__ = ["make_service"]


def make_service(settings: Settings) -> Service:
    """The service the settings describe: a cluster node when they name a bus, else embedded."""
    if settings.bus:
        from tocsin.cluster import cluster_service

        return cluster_service(settings)
    return Service(settings)
