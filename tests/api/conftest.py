"""Fixtures of the API tests: a fresh service per test on a tmp data dir, driven in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tests.api.fixtures import anyio_backend, clock, start
from tests.api.helpers import Api

__all__ = ["anyio_backend", "api", "clock", "start"]


@pytest.fixture
async def api(start: Callable[..., AbstractAsyncContextManager[Api]]) -> AsyncIterator[Api]:
    """A running service with default settings and one key per role."""
    async with start() as running_api:
        yield running_api
