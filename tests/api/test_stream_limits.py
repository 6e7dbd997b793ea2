"""Limits that hold against hostile or broken clients: stalled and lagging streams are dropped
with a reason and resume without loss; X-Forwarded-For is believed only from trusted proxies;
failed keys are rate-limited; buckets and open streams per client are bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from tests.api.helpers import (
    LVIV_HROMADA,
    NEAR_KHARKIV,
    Api,
    SSEClient,
    detection,
    event,
    wait_until,
)
from tocsin.api.limits import RateLimiter, TrustedProxies, parse_networks

pytestmark = pytest.mark.anyio
Starter = Callable[..., AbstractAsyncContextManager[Api]]


class StalledClient(SSEClient):
    """A client that stops reading after its first event: its next write blocks until the
    server gives up on it; it reads again from then on (so it sees the last comment)."""

    def __init__(self, api: Api, headers: dict[str, str] | None = None) -> None:
        super().__init__(api.app, "/api/v1/stream", {}, headers or {})
        self.stalled = asyncio.Event()
        self._stall_done = False

    async def _send(self, message: dict[str, Any]) -> None:
        if (message["type"] == "http.response.body" and self.events.qsize() > 0
                and not self._stall_done):
            self._stall_done = True
            self.stalled.set()
            await asyncio.Event().wait()  # never set: only the server's drop ends this
        await super()._send(message)


def drone(track: str, t: float = 1.0) -> dict[str, object]:
    return detection(track, t, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230)


def lviv(action: str, t: float) -> dict[str, object]:
    """An operator raising or clearing one hromada: always exactly one transition."""
    return event("operator_alert", t, regions=[LVIV_HROMADA], alert_type="air_raid",
                 action=action, operator="duty-officer")


def dropped(api: Api, reason: str) -> float:
    value: float = api.app.state.metrics.streams.dropped.labels(reason)._value.get()
    return value


async def resumed_ids(api: Api, after: int) -> list[int]:
    async with api.stream(headers={"Last-Event-ID": str(after)}) as again:
        return [e.id for e in await again.take(api.transition_seqs()[-1])]


async def test_a_client_whose_write_blocks_is_dropped_with_a_reason_and_resumes(
        start: Starter) -> None:
    async with start(stream_write_timeout_s=0.3) as api:
        stalled = StalledClient(api)
        async with stalled, api.stream() as healthy:
            await api.post(drone("A1"))
            await wait_until(lambda: stalled.events.qsize() > 0, what="the first events")
            await api.post(lviv("raise", 2.0))
            await asyncio.wait_for(stalled.stalled.wait(), 10)
            # the healthy stream is not held up by the stalled one
            await healthy.take(api.transition_seqs()[-1])
            await asyncio.wait_for(stalled.finished.wait(), 10)
            assert dropped(api, "write-timeout") == 1
            assert any("a write blocked over 0.3 s" in c and "Last-Event-ID" in c
                       for c in stalled.comments), stalled.comments
            got = stalled.pending()
            assert got, "the first event was received before the stall"
        assert await resumed_ids(api, got[-1].id) == api.transition_seqs(got[-1].id)
        assert not api.app.state.hub.streams


async def test_a_client_further_behind_than_the_buffer_is_dropped_and_resumes(
        start: Starter) -> None:
    async with start(stream_buffer_bytes=4000, stream_write_timeout_s=60) as api:
        stalled = StalledClient(api)
        async with stalled:
            await api.post(drone("L0"))
            await wait_until(lambda: stalled.events.qsize() > 0, what="the first events")
            await api.post(lviv("raise", 2.0))
            await asyncio.wait_for(stalled.stalled.wait(), 10)
            for i in range(3, 33):  # well over 4,000 bytes of transitions
                await api.post(lviv("clear" if i % 2 else "raise", i))
            await asyncio.wait_for(stalled.finished.wait(), 10)
            assert dropped(api, "lagging") == 1 and dropped(api, "write-timeout") == 0
            assert any("more than 4000 bytes behind" in c for c in stalled.comments)
            got = stalled.pending()
        assert await resumed_ids(api, got[-1].id) == api.transition_seqs(got[-1].id)
        metrics = (await api.client.get("/metrics")).text
        assert 'tocsin_streams_dropped_total{reason="lagging"} 1.0' in metrics
        assert "process_resident_memory_bytes" in metrics
        assert 'tocsin_http_responses_total{status="202"}' in metrics


async def test_open_streams_per_client_are_bounded(start: Starter) -> None:
    async with start(stream_max_per_client=2) as api:
        async with api.stream() as one, api.stream():
            async with api.stream() as third:
                assert third.status == 429
                assert b"at most 2 open streams" in third.body
            # a key is a client of its own
            async with api.stream(headers=api.auth("reader")) as keyed:
                assert keyed.status == 200
            await one.disconnect()
            async with api.stream() as again:
                assert again.status == 200
        metrics = (await api.client.get("/metrics")).text
        assert 'tocsin_http_responses_total{status="429"} 1.0' in metrics


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
        start: Starter) -> None:
    async with start(rate_limit=0.01, rate_burst=5) as api:
        codes = [(await api.client.get("/api/v1/levels",
                                       headers={"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"})
                  ).status_code for i in range(40)]
        assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    async with start(rate_limit=0.01, rate_burst=5, trusted_proxies="127.0.0.0/8") as api:
        codes = [(await api.client.get("/api/v1/levels",
                                       headers={"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"})
                  ).status_code for i in range(40)]
        assert set(codes) == {200}, "each forwarded client has a bucket of its own"
        # a client that forges a hop in front of the proxy's gets the proxy's view of it
        forged = {"X-Forwarded-For": "10.9.9.9, 10.0.0.1"}
        codes = [(await api.client.get("/api/v1/levels", headers=forged)).status_code
                 for _ in range(6)]
        assert codes[-1] == 429


async def test_failed_keys_are_rate_limited_per_address(start: Starter) -> None:
    async with start(auth_fail_rate=0.01, auth_fail_burst=3) as api:
        bad = {"Authorization": "Bearer tk_guess"}
        codes = [(await api.client.get("/api/v1/levels", headers=bad)).status_code
                 for _ in range(6)]
        assert codes == [401, 401, 401, 429, 429, 429]
        r = await api.client.get("/api/v1/levels", headers=bad)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert "failed authentication" in r.json()["detail"]
        async with api.stream(headers=bad) as stream:
            assert stream.status == 429
        # requests without a key are not charged with the failures, and a valid key from the
        # same address (a neighbour behind one NAT) is never locked out by them
        assert (await api.client.get("/api/v1/levels")).status_code == 200
        assert (await api.client.get("/api/v1/levels",
                                     headers=api.auth("reader"))).status_code == 200


async def test_rate_limit_buckets_are_pruned(start: Starter) -> None:
    async with start(rate_buckets=50, trusted_proxies="127.0.0.1/32") as api:
        for i in range(300):
            r = await api.client.get("/healthz")  # not limited; only to keep the loop honest
            r = await api.client.get("/api/v1/levels",
                                     headers={"X-Forwarded-For": f"10.1.{i // 250}.{i % 250}"})
            assert r.status_code == 200
        assert len(api.app.state.limiter) <= 50


def test_buckets_forget_the_oldest_and_refilled_first() -> None:
    limiter = RateLimiter(rate=1000.0, burst=2, max_buckets=10)
    for i in range(1000):
        limiter.check(f"ip:{i}")
    assert len(limiter) <= 10
    slow = RateLimiter(rate=0.001, burst=1, max_buckets=3)
    for who in ("a", "b", "c", "d"):
        assert slow.check(who) == 0
    assert len(slow) == 3
    assert slow.check("d") > 0  # the newest is kept, the oldest ("a") forgotten
    assert slow.check("a") == 0


def test_trusted_proxies_parse_and_resolve() -> None:
    proxies = TrustedProxies(parse_networks("10.0.0.0/8, ::1"))
    scope = {"client": ("10.1.2.3", 5000),
             "headers": [(b"x-forwarded-for", b"203.0.113.9, 10.0.0.7")]}
    assert proxies.client(scope) == "203.0.113.9"
    assert proxies.client({"client": ("198.51.100.1", 1), "headers": scope["headers"]}) \
        == "198.51.100.1"
    assert proxies.client({"client": ("::1", 1), "headers": [(b"x-forwarded-for", b"junk")]}) \
        == "::1"
    with pytest.raises(ValueError, match="'nonsense'"):
        parse_networks("10.0.0.0/8,nonsense")


async def test_bad_stream_queries_name_the_field(api: Api) -> None:
    for query, field in (({"since": "-1"}, "since"), ({"lat": "91", "lon": "0"}, "lat"),
                         ({"lat": "x", "lon": "0"}, "lat"), ({"lon": "3"}, "lat")):
        async with api.stream(query) as bad:
            assert bad.status == 422, query
            assert f'"field": "{field}"' in bad.body.decode(), (query, bad.body)
    assert (await api.client.post("/api/v1/stream")).status_code == 405
    await wait_until(lambda: not api.app.state.hub.streams, what="no streams left")


def test_big_batches_are_sent_in_shared_slices_from_any_point() -> None:
    from tocsin.api.sse import SEND_LIMIT, Frame, Ring, Stream, StreamHub

    envs = [{"seq": s, "type": "alert_started", "region": f"R{s % 3}", "pad": "x" * 900}
            for s in range(10, 400)]
    frame = Frame(envs)
    assert len(frame.slices) > 3 and all(len(sl[2]) < SEND_LIMIT + 2000 for sl in frame.slices)
    ring = Ring(1 << 20)  # both frames stay
    ring.push(envs[:150])
    ring.push(envs[150:])
    hub = StreamHub.__new__(StreamHub)
    hub.ring = ring
    for pos in (0, 9, 10, 11, 57, 159, 160, 398, 399):
        for leaves in (None, {"R1"}):
            stream = Stream(lambda _m: None, pos, leaves)  # type: ignore[arg-type, return-value]
            stream.cursor = ring.first_after(pos)
            got = b""
            while chunk := hub._collect(stream):
                assert len(chunk) < 2 * SEND_LIMIT + 2000
                got += chunk
            ids = [int(line[4:]) for line in got.decode().split("\n") if line.startswith("id: ")]
            want = [e["seq"] for e in envs if e["seq"] > pos
                    and (leaves is None or e["region"] in leaves)]
            assert ids == want, (pos, leaves)
