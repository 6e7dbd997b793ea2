"""The public record over HTTP: key, heads, entries and proofs checked against an independent
implementation; log indexes on envelopes; imported history and impacts in the read API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audit.test_merkle import ref_mth, ref_path, ref_proof
from tests.record.conftest import KHARKIV, LVIV, T0, at, impact, operator
from tocsin.api import create_app
from tocsin.audit import (
    canonical_json,
    from_json,
    key_id,
    leaf_hash,
    public_key_raw,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)
from tocsin.cli import main
from tocsin.config import Settings
from tocsin.outputs.base import ReadModel
from tocsin.service import Service
from tocsin.store.admin import ROLES
from tocsin.store.history import HistoryAlert, HistoryStore
from tocsin.verify import verify_remote

pytestmark = pytest.mark.anyio
LVIV_HROMADA = "UA46060250000025047"
LVIV_RAION = "UA46060000000042587"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    """A wall clock moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Running:
    """A service on a data directory, driven in-process."""

    def __init__(self, service: Service, client: httpx.AsyncClient, key: str) -> None:
        self.service = service
        self.clock: Clock = service.clock  # type: ignore[assignment]
        self.client = client
        self.key = key

    async def post(self, *events: dict[str, Any]) -> None:
        body: Any = list(events) if len(events) > 1 else events[0]
        r = await self.client.post("/api/v1/events", json=body,
                                   headers={"Authorization": f"Bearer {self.key}"})
        assert r.status_code in (200, 201, 202), r.text

    async def get(self, path: str, status: int = 200, **params: Any) -> Any:
        r = await self.client.get(path, params=params)
        assert r.status_code == status, r.text
        return r.json()


@contextlib.asynccontextmanager
async def running(data_dir: Path, regions: str = "ua-oblasts", **kw: Any) -> AsyncIterator[Running]:
    settings = Settings(data_dir=data_dir, regions=regions, sth_interval_s=3600, **kw)
    service = Service(settings, clock=Clock())
    app = create_app(settings, service)
    key = service.admin.create_key("admin", "admin-key")[0]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as c:
            yield Running(service, c, key)
        # let the webhook supervisor take its last wake-up before it is cancelled: on Python
        # 3.11 `asyncio.wait_for` swallows a cancel that lands just after its inner await ends
        await asyncio.sleep(0.05)


async def _leaf_inputs(api: Running, size: int, page: int = 1000) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < size:
        got = (await api.get("/api/v1/log/entries", start=len(out), end=size - 1))["entries"]
        assert got and len(got) <= page
        for item in got:
            data = base64.b64decode(item["leaf_input"])
            assert item["index"] == len(out) and item["seq"] == len(out) + 1
            assert canonical_json(item["entry"]) == data
            out.append(data)
    return out


async def test_key_heads_entries_and_proofs_match_an_independent_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tocsin.api.log.MAX_ENTRIES", 7)  # make paging visible
    async with running(tmp_path / "d") as api:
        key = await api.get("/api/v1/log/key")
        raw_key = public_key_raw(api.service.log_key)
        assert key == {"algorithm": "Ed25519", "public_key": base64.b64encode(raw_key).decode(),
                       "key_id": key_id(raw_key)}
        first = from_json(await api.get("/api/v1/log/sth"))  # signed at start: the empty log
        assert first.tree_size == 0 and verify_tree_head(raw_key, first)

        await api.post(operator("raise", LVIV, 1))
        await api.post(impact(5, 49.84, 24.03), impact(6, 49.99, 36.23))
        api.clock.now = T0 + timedelta(seconds=10)
        mid = await api.service.sign_head()
        assert mid is not None
        await api.post(operator("clear", LVIV, 30), operator("raise", KHARKIV, 31))
        api.clock.now = T0 + timedelta(seconds=40)
        head = await api.service.sign_head()
        assert head is not None and head.tree_size == api.service.log.max_seq() > mid.tree_size
        assert from_json(await api.get("/api/v1/log/sth")) == head
        assert verify_tree_head(raw_key, head)

        data = await _leaf_inputs(api, head.tree_size, page=7)
        assert ref_mth(data) == head.root_hash
        assert ref_mth(data[: mid.tree_size]) == mid.root_hash
        hashes = [leaf_hash(d) for d in data]
        for size in (mid.tree_size, head.tree_size):
            for index in range(size):
                got = await api.get("/api/v1/log/proof/inclusion", index=index, tree_size=size)
                path = [base64.b64decode(p) for p in got["audit_path"]]
                assert path == ref_path(index, data[:size])
                assert verify_inclusion(hashes[index], index, size, path, ref_mth(data[:size]))
        default = await api.get("/api/v1/log/proof/inclusion", index=3)
        assert default["tree_size"] == head.tree_size
        for first_size in range(0, head.tree_size + 1, 3):
            got = await api.get("/api/v1/log/proof/consistency", first=first_size,
                                second=head.tree_size)
            path = [base64.b64decode(p) for p in got["consistency_path"]]
            assert path == ref_proof(first_size, data)
            assert verify_consistency(first_size, head.tree_size, ref_mth(data[:first_size]),
                                      head.root_hash, path)

        heads = (await api.get("/api/v1/log/sths"))["sths"]
        assert [h["tree_size"] for h in heads] == [0, mid.tree_size, head.tree_size]
        later = (await api.get("/api/v1/log/sths", since=at(5)))["sths"]
        assert later == heads[1:]


async def test_bad_parameters_are_refused_with_field_and_reason(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as api:
        await api.post(operator("raise", LVIV, 1))
        head = await api.service.sign_head()
        assert head is not None
        n = head.tree_size
        await api.post(operator("clear", LVIV, 2))  # logged, not yet under a signed head

        async def refused(path: str, field: str, **params: Any) -> str:
            body = await api.get(path, 422, **params)
            assert body["errors"][0]["field"] == field, body
            reason: str = body["errors"][0]["reason"]
            return reason

        assert "larger than the latest signed tree head" in await refused(
            "/api/v1/log/proof/inclusion", "tree_size", index=0, tree_size=n + 1)
        assert "not below tree_size" in await refused(
            "/api/v1/log/proof/inclusion", "index", index=n, tree_size=n)
        assert "larger than the latest" in await refused(
            "/api/v1/log/proof/consistency", "second", first=1, second=n + 1)
        assert "larger than second" in await refused(
            "/api/v1/log/proof/consistency", "first", first=n, second=n - 1)
        assert "below start" in await refused("/api/v1/log/entries", "end", start=3, end=2)
        total = api.service.log.max_seq()
        assert "beyond the log" in await refused("/api/v1/log/entries", "start", start=total,
                                                 end=total + 5)
        await refused("/api/v1/log/sths", "since", since="yesterday")
        assert (await api.get("/api/v1/log/entries", 422, start=-1, end=2))["errors"][0][
            "field"] == "start"
        # entries past the last head are served (a head covers them within sth_interval_s)
        tail = (await api.get("/api/v1/log/entries", start=n, end=total + 10))["entries"]
        assert [e["index"] for e in tail] == list(range(n, total))


async def test_envelopes_carry_their_log_index(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as api:
        published: list[Any] = []

        class Tap:  # an output of the simplest kind: it keeps what it is given
            def apply_many(self, envelopes: Any) -> None:
                published.extend(envelopes)

        api.service.outputs.add(ReadModel("tap", Tap()))
        await api.post(operator("raise", LVIV, 1), operator("clear", LVIV, 2))
        assert published and all(e["log_index"] == e["seq"] - 1 for e in published)
        backlog = api.service.backlog(0, None)
        assert [e["log_index"] for e in backlog] == [e["log_index"] for e in published]


async def test_a_restart_keeps_the_tree_and_signs_what_was_left(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as api:
        await api.post(operator("raise", LVIV, 1))
        root = api.service.merkle.tree.root()
        size = api.service.merkle.size
    async with running(tmp_path / "d") as api:
        assert api.service.merkle.size == size and api.service.merkle.tree.root() == root
        sth = await api.get("/api/v1/log/sth")
        assert sth["tree_size"] == size  # signed on the way down, not again on the way up
        assert len((await api.get("/api/v1/log/sths"))["sths"]) == 2
        await api.post(operator("clear", LVIV, 2))
        assert api.service.merkle.size == api.service.log.max_seq() > size


async def test_imported_history_is_served_with_live_alerts(tmp_path: Path) -> None:
    data = tmp_path / "d"
    store = HistoryStore(data / "tocsin.db")
    past = datetime(2023, 5, 1, 12, tzinfo=UTC)
    s = int(past.timestamp())
    store.add([
        HistoryAlert(LVIV, "oblast", s, s + 600),
        HistoryAlert(LVIV_RAION, "raion", s + 1000, s + 1600),
        HistoryAlert(LVIV_HROMADA, "hromada", s + 2000, s + 2600),
        HistoryAlert(KHARKIV, "oblast", s + 3000, s + 3600),
    ])
    store.close()
    async with running(data, regions="ua-hromadas") as api:
        await api.post(operator("raise", LVIV_HROMADA, 1))

        async def history(**params: Any) -> list[tuple[str, str | None]]:
            alerts = (await api.get("/api/v1/alerts", **params))["alerts"]
            return [(a["region"], a.get("source")) for a in alerts]

        official = "official-history"
        assert await history() == [
            (LVIV_HROMADA, None), (KHARKIV, official), (LVIV_HROMADA, official),
            (LVIV_RAION, official), (LVIV, official)]
        # a hromada's history includes the raion- and oblast-wide alerts that covered it
        assert await history(region=LVIV_HROMADA) == [
            (LVIV_HROMADA, None), (LVIV_HROMADA, official), (LVIV_RAION, official),
            (LVIV, official)]
        assert await history(region=KHARKIV) == [(KHARKIV, official)]
        until = (past + timedelta(seconds=1500)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert await history(until=until) == [(LVIV_RAION, official), (LVIV, official)]
        assert await history(since=at(-10), limit=2) == [(LVIV_HROMADA, None)]
        record = (await api.get("/api/v1/alerts", region=KHARKIV))["alerts"][0]
        assert record["started_at"] == "2023-05-01T12:50:00Z"
        assert record["ended_at"] == "2023-05-01T13:00:00Z" and record["level"] == "oblast"


async def test_impacts_endpoint_reports_covered_and_silent_impacts(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as api:
        api.clock.now = T0 + timedelta(seconds=1)  # events are not ahead of the server
        await api.post(operator("raise", LVIV, 1))
        api.clock.now = T0 + timedelta(seconds=60)
        await api.post(impact(61, 49.84, 24.03))  # Lviv: under alert for a minute
        await api.post(impact(62, 49.99, 36.23))  # Kharkiv: no alert
        await api.post(impact(63, 10.0, 10.0))  # outside every region
        body = await api.get("/api/v1/audit/impacts")
        assert body["summary"] == {
            "impacts": 3, "covered": 1, "silent": 1, "outside_regions": 1, "coverage": 0.5,
            "median_lead_s": 60.0, "lead_s_quantiles": {"p10": 60.0, "p50": 60.0, "p90": 60.0},
        }
        newest, silent, covered = body["impacts"]
        assert newest["region"] is None and not newest["silent"]
        assert silent["region"] == KHARKIV and silent["silent"] and silent["lead_s"] is None
        assert covered["region"] == LVIV and covered["covered"] and covered["lead_s"] == 60.0
        assert covered["alert_types"] == ["air_raid"] and covered["log_index"] == \
            covered["seq"] - 1
        only = await api.get("/api/v1/audit/impacts", silent_only="true", limit=5)
        assert [i["region"] for i in only["impacts"]] == [KHARKIV]
        await api.post(impact(64, 49.84, 24.03))
        again = await api.get("/api/v1/audit/impacts", limit=1)
        assert again["summary"]["impacts"] == 4 and again["impacts"][0]["covered"]


# --- tocsin verify --url, against a served log ----------------------------------------------------


@contextlib.contextmanager
def served(data_dir: Path, **kw: Any) -> Iterator[tuple[str, Service, dict[str, str]]]:
    """A real server (uvicorn, in a thread, on a free port) as outsiders see it."""
    import socket
    import threading
    import time

    import uvicorn

    settings = Settings(data_dir=data_dir, regions="ua-oblasts", sth_interval_s=0.05, **kw)
    service = Service(settings)
    app = create_app(settings, service)
    keys = {role: service.admin.create_key(role, None, ["rec"])[0] for role in ROLES}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", service, keys
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def _now_events(n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = []
    for i in range(n):
        ev = operator("raise" if i % 2 == 0 else "clear", LVIV, 0)
        ev["time"] = stamp
        out.append(ev)
    return out


def _wait_for_head(client: httpx.Client, size: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while client.get("/api/v1/log/sth").json()["tree_size"] < size:
        assert time.monotonic() < deadline, "no signed head covered the log in time"
        time.sleep(0.02)


def test_verify_url_pins_the_key_and_checks_consistency_and_inclusion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    with served(tmp_path / "d") as (url, service, keys), httpx.Client(base_url=url) as client:
        auth = {"Authorization": f"Bearer {keys['operator']}"}
        for ev in _now_events(6):
            assert client.post("/api/v1/events", json=ev, headers=auth).status_code < 300
        _wait_for_head(client, service.log.max_seq())
        report = verify_remote(client, url, state, check_entries=4, rng=random.Random(1))
        assert report.ok, report.problems
        assert report.proofs == 4 and any("pinning key" in n for n in report.notes)
        first_size = report.tree_size
        assert first_size is not None

        for ev in _now_events(4):
            assert client.post("/api/v1/events", json=ev, headers=auth).status_code < 300
        _wait_for_head(client, service.log.max_seq())
        assert main(["verify", "--url", url, "--state", str(state), "--check-entries", "3",
                     "--latest"]) == 0
        out = capsys.readouterr().out
        assert "signed tree head verified" in out and "4 proof(s)" in out  # 1 + 3

        full = verify_remote(client, url, state, full=True)
        assert full.ok and full.entries == full.tree_size

        # a state that remembers a different history is a failed check, and is kept as it was
        saved = json.loads(state.read_text())
        forged = dict(saved["logs"][url]["sth"])
        forged["tree_size"] = 2
        saved["logs"][url]["sth"] = forged
        state.write_text(json.dumps(saved))
        report = verify_remote(client, url, state, check_entries=0)
        assert not report.ok and "does not extend" in str(report.problems[0])
        assert json.loads(state.read_text()) == saved

        other = dict(saved["logs"][url])
        other["public_key"] = base64.b64encode(b"\x02" * 32).decode()
        saved["logs"][url] = other
        state.write_text(json.dumps(saved))
        assert main(["verify", "--url", url, "--state", str(state)]) == 1
        assert "the log key changed" in capsys.readouterr().err
