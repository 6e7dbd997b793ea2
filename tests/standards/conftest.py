"""Fixtures of the standards tests: a running service per test, driven in-process."""

from __future__ import annotations

from tests.api.fixtures import anyio_backend, clock, start

__all__ = ["anyio_backend", "clock", "start"]
