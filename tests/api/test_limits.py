"""Body size limit, per-key rate limit and --private mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tests.api.helpers import NEAR_KHARKIV, Api, detection

pytestmark = pytest.mark.anyio
Starter = Callable[..., AbstractAsyncContextManager[Api]]


async def test_bodies_over_the_limit_get_413(start: Starter) -> None:
    async with start(max_body_bytes=2000) as api:
        small = [detection(f"S{i}", 1, *NEAR_KHARKIV) for i in range(2)]
        assert (await api.post(small)).status_code == 202
        big = [detection(f"B{i}", 1, *NEAR_KHARKIV) for i in range(40)]
        r = await api.post(big)
        assert r.status_code == 413
        assert "2000" in r.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            yield b"["
            for _ in range(100):
                yield b'{"id": "x", "type": "detection"},'
            yield b"{}]"

        headers = {**api.auth("sensor"), "Content-Type": "application/json"}
        r = await api.client.post("/api/v1/events", content=chunks(), headers=headers)
        assert r.status_code == 413
        assert api.service.log.find_event(big[0]["source"], big[0]["id"]) is None


async def test_rate_limit_per_key_with_retry_after(start: Starter) -> None:
    async with start(rate_limit=0.5, rate_burst=3) as api:
        codes = [(await api.client.get("/api/v1/levels", headers=api.auth("reader"))).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 200]
        r = await api.client.get("/api/v1/levels", headers=api.auth("reader"))
        assert r.status_code == 429
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 3
        # the budget is per key: another key is not affected
        r = await api.client.get("/api/v1/levels", headers=api.auth("sensor"))
        assert r.status_code == 200
        r = await api.post(detection("D1", 1, *NEAR_KHARKIV), role="reader")
        assert r.status_code == 429


async def test_private_mode_needs_a_key_to_read(start: Starter) -> None:
    async with start(private=True) as api:
        reads = ["/api/v1/alerts/active", "/api/v1/alerts", "/api/v1/regions",
                 "/api/v1/regions/locate?lat=49.84&lon=24.03", "/api/v1/tracks/active",
                 "/api/v1/levels", "/api/v1/stream"]
        for path in reads:
            r = await api.client.get(path)
            assert r.status_code == 401, path
            assert r.headers["WWW-Authenticate"] == "Bearer"
        for path in reads[:-1]:
            for role in ("reader", "sensor", "operator", "admin"):
                r = await api.client.get(path, headers=api.auth(role))
                assert r.status_code == 200, (path, role)
        r = await api.client.get("/api/v1/levels", headers={"Authorization": "Bearer tk_nope"})
        assert r.status_code == 401
        # ops endpoints stay open for probes and scrapers
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await api.client.get(path)).status_code == 200
        async with api.stream(headers=api.auth("reader")) as stream:
            assert stream.status == 200


async def test_public_by_default_but_bad_keys_are_refused(api: Api) -> None:
    assert (await api.client.get("/api/v1/levels")).status_code == 200
    for header in ("Bearer tk_nope", "Basic abc", "Bearer "):
        r = await api.client.get("/api/v1/levels", headers={"Authorization": header})
        assert r.status_code == 401, header
