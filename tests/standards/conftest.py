"""Fixtures of the standards tests: a running service per test, driven in-process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import Api, FakeClock, running


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


@pytest.fixture
def start(
    tmp_path: Path, clock: FakeClock
) -> Callable[..., AbstractAsyncContextManager[Api]]:
    """`async with start(**settings) as api:` runs a service on this test's data dir."""

    @contextlib.asynccontextmanager
    async def make(data: str = "data", **settings: Any) -> AsyncIterator[Api]:
        async with running(tmp_path / data, clock, **settings) as api:
            yield api

    return make
