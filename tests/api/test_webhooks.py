"""Webhooks against a real local receiver: retries, signatures, stable ids, restarts."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.api.helpers import (
    KHARKIV,
    KHARKIV_OBLAST,
    LVIV_HROMADA,
    LVIV_OBLAST,
    NEAR_KHARKIV,
    Api,
    detection,
    event,
    wait_until,
)
from tests.servers import free_port
from tocsin.outputs.webhooks import CONNECT_FAILED, verify

pytestmark = pytest.mark.anyio
Starter = Callable[..., AbstractAsyncContextManager[Api]]
# the receivers here listen on loopback, which only allow_private_webhooks permits
FAST_RETRIES = {"webhook_base_backoff_s": 0.02, "webhook_max_backoff_s": 0.2,
                "allow_private_webhooks": True}


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and what it answered."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on a local port: answers 503 while `down`, else 200."""

    def __init__(self, port: int = 0) -> None:
        self.down = False
        self.got: list[Received] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    # the sender went away mid-request (a test's service stopping while a
                    # delivery was on the wire): no delivery arrived, so none is counted
                    return
                status = 503 if outer.down else 200
                with outer._lock:
                    outer.got.append(Received(dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def ok(self) -> list[Received]:
        with self._lock:
            return [r for r in self.got if r.status == 200]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.got)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def drone(track: str, t: float = 1.0) -> dict[str, object]:
    return detection(track, t, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230)


def matching(api: Api, region: str, after: int = 0) -> list[int]:
    leaves = set(api.service.regions.leaves_under(region))
    return [e.seq for e in api.service.log.read(after + 1)
            if e.kind == "transition" and e.obj()["region"] in leaves]


async def subscribe(api: Api, url: str, **spec: Any) -> dict[str, Any]:
    r = await api.client.post("/api/v1/subscriptions", json={"url": url, **spec},
                              headers=api.auth("admin"))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def deliveries(api: Api, sub_id: str) -> list[dict[str, Any]]:
    r = await api.client.get(f"/api/v1/subscriptions/{sub_id}/deliveries",
                             params={"limit": 10000}, headers=api.auth("admin"))
    assert r.status_code == 200
    rows: list[dict[str, Any]] = r.json()["deliveries"]
    return rows[::-1]  # oldest first


async def test_retries_until_the_receiver_is_up_then_delivers_everything(
    start: Starter, receiver: Receiver
) -> None:
    receiver.down = True
    async with start(**FAST_RETRIES) as api:
        sub = await subscribe(api, receiver.url, regions=[KHARKIV_OBLAST],
                              alert_types=["air_raid"])
        await api.post(drone("D1"))
        await api.post(event("operator_alert", 2, regions=[LVIV_HROMADA],
                             alert_type="air_raid", action="raise", operator="duty-officer"))
        expected = matching(api, KHARKIV_OBLAST)
        assert expected
        await wait_until(lambda: len(receiver.all()) >= 3, what="three refused attempts")
        receiver.down = False
        await wait_until(lambda: {r.json["transition"]["seq"] for r in receiver.ok()}
                         >= set(expected), what="every matching transition")

        ok = receiver.ok()
        assert sorted({r.json["transition"]["seq"] for r in ok}) == expected
        assert [r.json["transition"]["seq"] for r in ok] == sorted(
            r.json["transition"]["seq"] for r in ok), "delivered in log order"
        for r in receiver.all():
            body = r.json
            seq = body["transition"]["seq"]
            assert r.headers["Content-Type"] == "application/json"
            assert r.headers["X-Tocsin-Delivery"] == body["delivery"] == f"{sub['id']}:{seq}"
            assert r.headers["X-Tocsin-Event"] == body["transition"]["type"]
            assert body["subscription"] == sub["id"]
            signature = r.headers["X-Tocsin-Signature"]
            t, v1 = (p.split("=", 1)[1] for p in signature.split(","))
            good = hmac.new(sub["secret"].encode(), f"{t}.".encode() + r.body,
                            hashlib.sha256).hexdigest()
            assert hmac.compare_digest(good, v1)
            assert verify(sub["secret"], r.body, signature) == int(t)
            with pytest.raises(ValueError, match="bad signature"):
                verify("wrong-secret", r.body, signature)
            t = body["transition"]
            assert t["cause_time"] and t["decided_at"] and t["published_at"]
        # the refused attempts and the final one carry one delivery id and one body
        first = expected[0]
        tries = [r for r in receiver.all() if r.json["transition"]["seq"] == first]
        assert [r.status for r in tries][-1] == 200 and len(tries) >= 4
        assert len({r.headers["X-Tocsin-Delivery"] for r in tries}) == 1
        assert len({r.body for r in tries}) == 1

        log = await deliveries(api, sub["id"])
        of_first = [d for d in log if d["seq"] == first]
        assert [d["attempt"] for d in of_first] == list(range(1, len(of_first) + 1))
        assert [d["status"] for d in of_first] == [503] * (len(of_first) - 1) + [200]
        assert all(d["error"] == "HTTP 503" for d in of_first[:-1])
        assert of_first[-1]["error"] is None
        assert {d["seq"] for d in log if d["status"] == 200} == set(expected)
        await wait_until(lambda: _cursor(api, sub["id"]) == api.service.ledger.next_seq - 1,
                         what="the cursor to reach the end of the log")
        metrics = (await api.client.get("/metrics")).text
        assert 'tocsin_webhook_deliveries_total{outcome="failed"}' in metrics


def _cursor(api: Api, sub_id: str) -> int:
    sub = api.service.admin.get_subscription(sub_id)
    assert sub is not None
    return sub.cursor


async def test_restart_resumes_from_the_cursor(start: Starter) -> None:
    port = free_port()  # nothing listens here yet: connections are refused
    url = f"http://127.0.0.1:{port}/hook"
    async with start(**FAST_RETRIES) as api:
        sub = await subscribe(api, url, regions=[KHARKIV_OBLAST])
        await api.post(drone("D1"))
        before_restart = matching(api, KHARKIV_OBLAST)
        await wait_until(lambda: len(api.service.admin.deliveries(sub["id"])) >= 2,
                         what="failed attempts")
        failed = await deliveries(api, sub["id"])
        assert all(d["status"] is None and d["error"] == CONNECT_FAILED for d in failed)
        assert {d["seq"] for d in failed} == {before_restart[0]}
    receiver = Receiver(port)
    try:
        async with start(**FAST_RETRIES) as api:
            await wait_until(lambda: {r.json["transition"]["seq"] for r in receiver.ok()}
                             >= set(before_restart), what="the backlog after the restart")
            seq = await api.seq()
            # from elsewhere in the oblast: a second drone over D1's hromadas is no news
            await api.post(detection("D2", 5.0, 49.71, 37.61, weapon="shahed-136",
                                     heading_deg=180))
            after_restart = matching(api, KHARKIV_OBLAST, seq)
            assert after_restart
            everything = before_restart + after_restart
            await wait_until(lambda: {r.json["transition"]["seq"] for r in receiver.ok()}
                             >= set(everything), what="transitions after the restart")
            got = receiver.ok()
            assert sorted({r.json["transition"]["seq"] for r in got}) == everything
            assert got[0].headers["X-Tocsin-Delivery"] == f"{sub['id']}:{before_restart[0]}"
            for r in got:
                assert verify(sub["secret"], r.body, r.headers["X-Tocsin-Signature"])
            log = await deliveries(api, sub["id"])
            first = [d for d in log if d["seq"] == before_restart[0]]
            assert first[-1]["status"] == 200 and first[0]["status"] is None
    finally:
        receiver.close()


async def test_only_matching_transitions_are_sent(start: Starter, receiver: Receiver) -> None:
    async with start(**FAST_RETRIES) as api:
        near = await subscribe(api, receiver.url, point={"lat": KHARKIV[0], "lon": KHARKIV[1]},
                               radius_km=15)
        await subscribe(api, receiver.url, regions=[LVIV_OBLAST])
        await subscribe(api, receiver.url, regions=[KHARKIV_OBLAST], alert_types=["chemical"])
        gone = await subscribe(api, receiver.url, regions=[KHARKIV_OBLAST])
        r = await api.client.delete(f"/api/v1/subscriptions/{gone['id']}",
                                    headers=api.auth("admin"))
        assert r.status_code == 200
        await api.post(drone("D1"))
        leaves = {api.service.regions.locate(*KHARKIV)} | {
            leaf for leaf, _ in api.service.regions.hits(_disc(KHARKIV, 15))}
        expected = [e.seq for e in api.service.log.read()
                    if e.kind == "transition" and e.obj()["region"] in leaves]
        assert expected
        await wait_until(lambda: len(receiver.ok()) >= len(expected), what="point deliveries")
        await wait_until(lambda: all(_cursor(api, s.id) == api.service.ledger.next_seq - 1
                                     for s in api.service.admin.subscriptions(active_only=True)),
                         what="every cursor at the end of the log")
        got = receiver.ok()
        assert {r.json["subscription"] for r in got} == {near["id"]}
        assert sorted(r.json["transition"]["seq"] for r in got) == expected


def _disc(point: tuple[float, float], km: float) -> Any:
    from tocsin.geo import Footprint

    return Footprint(point[0], point[1], km * 1000.0, None, 180.0)
