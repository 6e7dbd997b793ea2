"""Webhook targets an admin must not be able to point inside, one error text for every failed
connection, and the documented receiver that refuses replays, run on real deliveries."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import KHARKIV_OBLAST, Api, wait_until
from tests.api.test_webhooks import FAST_RETRIES, Receiver, deliveries, drone, subscribe
from tests.servers import free_port
from tocsin.outputs.webhooks import CONNECT_FAILED, sign

pytestmark = pytest.mark.anyio
Starter = Callable[..., AbstractAsyncContextManager[Api]]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
STRICT = {k: v for k, v in FAST_RETRIES.items() if k != "allow_private_webhooks"}

INSIDE = [
    "http://127.0.0.1:5432/", "http://0x7f000001/", "http://2130706433/", "http://127.1/",
    "http://localhost:8080/", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/",
    "http://192.168.0.1/", "http://172.16.5.4/", "http://[::1]:8080/", "http://[fe80::1]/",
    "http://224.0.0.1/", "http://0.0.0.0/", "http://100.64.0.1/", "http://[::ffff:127.0.0.1]/",
]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def test_inside_targets_are_refused_unless_allowed(start: Starter) -> None:
    async with start(**STRICT) as api:
        for url in INSIDE:
            r = await api.client.post("/api/v1/subscriptions", headers=api.auth("admin"),
                                      json={"url": url, "regions": [KHARKIV_OBLAST]})
            assert r.status_code == 422, url
            assert r.json()["errors"][0]["field"] == "url", url
            assert "non-public" in r.json()["errors"][0]["reason"], url
        for url in ("ftp://example.org/", "not a url", "http:///x"):
            r = await api.client.post("/api/v1/subscriptions", headers=api.auth("admin"),
                                      json={"url": url, "regions": [KHARKIV_OBLAST]})
            assert r.status_code == 422, url
        # a name that does not resolve now is checked at delivery instead
        await subscribe(api, "https://hooks.tocsin.invalid/x", regions=[KHARKIV_OBLAST])
    async with start("allowed", **FAST_RETRIES) as api:
        await subscribe(api, "http://127.0.0.1:5432/", regions=[KHARKIV_OBLAST])


async def test_checked_again_at_delivery(start: Starter, receiver: Receiver) -> None:
    async with start(**FAST_RETRIES) as api:  # allowed when subscribing...
        sub = await subscribe(api, receiver.url.replace("127.0.0.1", "localhost"),
                              regions=[KHARKIV_OBLAST])
    async with start(**STRICT) as api:  # ...but no more: each attempt resolves and checks
        await api.post(drone("D1"))
        await wait_until(lambda: len(api.service.admin.deliveries(sub["id"])) >= 2,
                         what="refused attempts")
        log = await deliveries(api, sub["id"])
        assert all(d["status"] is None and d["error"].startswith("refused: localhost is or "
                                                                  "resolves to a non-public")
                   for d in log)
    assert receiver.all() == []


class _Silent:
    """A TCP service that is not an HTTP server: accepts, then closes or never answers."""

    def __init__(self, mode: str) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.mode = mode
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "close":
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


async def test_one_error_text_for_every_connection_failure(start: Starter) -> None:
    closed, resets, hangs = free_port(), _Silent("close"), _Silent("hang")
    try:
        async with start(**FAST_RETRIES, webhook_timeout_s=0.3) as api:
            subs = [await subscribe(api, f"http://127.0.0.1:{port}/hook",
                                    regions=[KHARKIV_OBLAST])
                    for port in (closed, resets.port, hangs.port)]
            await api.post(drone("D1"))
            for sub in subs:
                await wait_until(lambda s=sub: len(api.service.admin.deliveries(s["id"])) >= 2,
                                 what="failed attempts")
            errors = {d["error"] for sub in subs for d in await deliveries(api, sub["id"])}
            assert errors == {CONNECT_FAILED}  # a closed port looks like any other failure
    finally:
        resets.close()
        hangs.close()


def _doc_receiver() -> dict[str, Any]:
    """The receiver snippet of docs/api.md, run as written."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### Verifying the signature"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOCS), "exec"), scope)  # noqa: S102 - our own docs
    return scope


async def test_the_documented_receiver_takes_each_delivery_once_and_refuses_replays(
    start: Starter, receiver: Receiver
) -> None:
    async with start(**FAST_RETRIES) as api:
        sub = await subscribe(api, receiver.url, regions=[KHARKIV_OBLAST])
        await api.post(drone("D1"))
        await wait_until(lambda: len(receiver.ok()) >= 2, what="deliveries")
    docs = _doc_receiver()
    mine = docs["Receiver"](sub["secret"])
    got = receiver.ok()
    for r in got:
        delivery = mine.accept(r.body, r.headers["X-Tocsin-Signature"])
        assert delivery is not None and delivery["transition"]["seq"] == r.json[
            "transition"]["seq"]
    first = got[0]
    # the same delivery again (a retry, or a replay within the window): not processed twice
    assert mine.accept(first.body, first.headers["X-Tocsin-Signature"]) is None
    # captured and replayed later: the signed timestamp gives it away
    old = sign(sub["secret"], first.body, int(time.time()) - 3600)
    with pytest.raises(ValueError, match="stale"):
        docs["Receiver"](sub["secret"]).accept(first.body, old)
    # a changed timestamp breaks the signature
    t, v1 = first.headers["X-Tocsin-Signature"].split(",")
    forged = f"t={int(t.removeprefix('t=')) + 1},{v1}"
    with pytest.raises(ValueError, match="bad signature"):
        docs["Receiver"](sub["secret"]).accept(first.body, forged)
    with pytest.raises(ValueError, match="bad signature"):
        docs["Receiver"]("another-secret").accept(first.body,
                                                  first.headers["X-Tocsin-Signature"])
