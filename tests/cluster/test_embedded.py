"""The cluster API of an embedded server, and one embedded server on the PostgreSQL store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.helpers import NEAR_KHARKIV, FakeClock, detection, running, wait_until
from tests.cluster.services import fresh_schema, postgres_or_skip
from tocsin.store.postgres import PostgresLog

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
def pg_url() -> Iterator[str]:
    with fresh_schema(postgres_or_skip()) as url:
        yield url


async def test_an_embedded_server_is_its_own_leader(tmp_path: Path) -> None:
    async with running(tmp_path / "data", FakeClock(), node_id="solo") as api:
        st = (await api.client.get("/api/v1/cluster")).json()
        assert st["node"] == "solo" and st["leader"] == "solo" and st["is_leader"] is True
        assert st["role"] == "embedded"
        ev = detection("D1", 1.0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230)
        seq = (await api.post(ev, role="sensor")).json()["accepted"][0]["seq"]
        found = (await api.client.get("/api/v1/cluster/event",
                                      params={"source": ev["source"], "id": ev["id"]})).json()
        assert found == {"source": ev["source"], "id": ev["id"], "status": "logged", "seq": seq}
        assert (await api.client.get("/api/v1/cluster/rejected")).json() == {"rejected": []}


@pytest.mark.postgres
async def test_one_server_on_the_postgres_store(tmp_path: Path, pg_url: str) -> None:
    """`--store postgresql://…` without a bus: the embedded server, its log in PostgreSQL."""
    ev = detection("D1", 1.0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230)
    async with running(tmp_path / "data", FakeClock(), store=pg_url) as api:
        assert isinstance(api.service.log, PostgresLog)
        r = await api.post(ev, role="sensor")
        assert r.status_code == 202, r.text
        (acc,) = r.json()["accepted"]
        assert acc["transitions"] > 0
        await wait_until(lambda: api.service.merkle.latest is not None, what="a signed head")
        head = (await api.client.get("/api/v1/log/sth")).json()
        key = (await api.client.get("/api/v1/log/key")).json()
        active = (await api.client.get("/api/v1/alerts/active")).json()["alerts"]
        assert active
    async with running(tmp_path / "other", FakeClock(), store=pg_url) as again:
        # another data directory, the same store: same log, keys, signing key and alerts
        assert await again.seq() == acc["seq"] + acc["transitions"]
        assert (await again.client.get("/api/v1/log/key")).json() == key
        assert (await again.client.get("/api/v1/log/sth")).json()["tree_size"] >= \
            head["tree_size"]
        assert (await again.client.get("/api/v1/alerts/active")).json()["alerts"] == active
        dup = (await again.post(ev, role="sensor")).json()["accepted"][0]
        assert dup["duplicate"] is True and dup["seq"] == acc["seq"]
