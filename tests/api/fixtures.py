"""Fixtures of the tests that drive a service in-process (the API and standards tests): a fresh
service per test on a tmp data dir and a hand-moved clock. Each `conftest.py` imports them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import Api, FakeClock, running

__all__ = ["anyio_backend", "clock", "start"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand (the ticker never fires on its own)."""
    return FakeClock()


@pytest.fixture
def start(
    tmp_path: Path, clock: FakeClock
) -> Callable[..., AbstractAsyncContextManager[Api]]:
    """`async with start(**settings) as api:` runs a service on this test's data dir
    (`start("other", ...)`: on another data dir of the test)."""

    @contextlib.asynccontextmanager
    async def make(data: str = "data", **settings: Any) -> AsyncIterator[Api]:
        async with running(tmp_path / data, clock, **settings) as api:
            yield api

    return make
