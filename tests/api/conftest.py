"""Fixtures of the API tests: a fresh service per test on a tmp data dir, driven in-process."""

from __future__ import annotations

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
    """A clock the test moves by hand (the ticker never fires on its own)."""
    return FakeClock()


@pytest.fixture
def start(
    tmp_path: Path, clock: FakeClock
) -> Callable[..., AbstractAsyncContextManager[Api]]:
    """`async with start(**settings) as api:` runs a service on this test's data dir."""

    def make(**settings: Any) -> AbstractAsyncContextManager[Api]:
        return running(tmp_path / "data", clock, **settings)

    return make


@pytest.fixture
async def api(start: Callable[..., AbstractAsyncContextManager[Api]]) -> AsyncIterator[Api]:
    """A running service with default settings and one key per role."""
    async with start() as running_api:
        yield running_api
