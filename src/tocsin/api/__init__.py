"""The HTTP API (FastAPI): ingest, public read, live stream, admin."""

from tocsin.api.app import create_app

__all__ = ["create_app"]
