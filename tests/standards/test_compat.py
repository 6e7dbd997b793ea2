"""The alerts.in.ua-compatible read API: roll-up, statuses, formats, caching, the real client."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import alerts_in_ua
import httpx
import pytest
from alerts_in_ua.air_raid_alert_oblast_statuses import AirRaidAlertOblastStatuses

from tests import servers
from tests.api.helpers import KHARKIV, LVIV_HROMADA, Api, FakeClock
from tests.engine.helpers import T0, Sim, at, event
from tocsin.geo import RegionSet
from tocsin.model import format_time
from tocsin.outputs.alertsinua import AlertsInUaView, bundled_locations

Start = Callable[..., AbstractAsyncContextManager[Api]]
KHARKIV_OBLAST = "UA63000000000041885"
KYIV_LEAF = "cod:UA8000000"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
META_RE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \+0000$")


def raise_(regions: list[str], t: float, atype: str = "air_raid",
           action: str = "raise") -> dict[str, Any]:
    return event("operator_alert", t, regions=regions, alert_type=atype, action=action,
                 operator="duty")


class Fed:
    """A view fed from a simulated ledger, as the server feeds it."""

    def __init__(self, ua: RegionSet) -> None:
        self.sim = Sim(ua)
        self.clock = FakeClock()
        self.view = AlertsInUaView(ua, clock=self.clock)

    def send(self, *raws: dict[str, Any]) -> None:
        for raw in raws:
            self.view.apply_many(t.to_dict() for t in self.sim.send(raw))


@pytest.fixture
def fed(ua: RegionSet) -> Fed:
    return Fed(ua)


def pos(uid: int) -> int:
    return AirRaidAlertOblastStatuses.LOCATIONS.index(
        bundled_locations()["locations"][str(uid)]["title"])


def test_the_oblast_order_is_the_clients() -> None:
    titles = [bundled_locations()["locations"][str(u)]["title"]
              for u in bundled_locations()["oblast_order"]]
    assert titles == AirRaidAlertOblastStatuses.LOCATIONS


def test_alerts_roll_up_from_hromadas_to_raions_to_oblasts(fed: Fed, ua: RegionSet) -> None:
    leaf = ua.locate(*KHARKIV)
    assert leaf is not None
    raion = ua.chain(leaf)[1].id
    leaf_uid, raion_uid = ua.get(leaf).alerts_uid, ua.get(raion).alerts_uid
    assert leaf_uid and raion_uid
    fed.send(raise_([leaf], 1))
    (one,) = fed.view.active()
    assert one["location_uid"] == str(leaf_uid) and one["location_type"] == "hromada"
    assert one["location_oblast"] == "Харківська область" and one["location_oblast_uid"] == 22
    assert one["location_raion"] == bundled_locations()["locations"][str(raion_uid)]["title"]
    assert one["finished_at"] is None and TIME_RE.match(one["started_at"])
    assert fed.view.status(leaf_uid) == "A" and fed.view.status(22) == "P"
    assert fed.view.status(raion_uid) == "P" and fed.view.status(4) == "N"
    assert fed.view.by_oblast()[pos(22)] == "P"
    fed.send(raise_([raion], 2))
    (whole_raion,) = fed.view.active()
    assert whole_raion["location_uid"] == str(raion_uid)
    assert whole_raion["location_type"] == "raion" and "location_raion" not in whole_raion
    fed.send(raise_([KHARKIV_OBLAST], 3))
    (oblast,) = fed.view.active()
    assert oblast["location_uid"] == "22" and oblast["location_title"] == "Харківська область"
    assert fed.view.by_oblast() == "".join("A" if i == pos(22) else "N" for i in range(27))
    assert fed.view.by_oblast(levels=True)[pos(22)] == "R"
    statuses = fed.view.statuses()
    assert statuses[22] == "A" and statuses[leaf_uid] == "A" and statuses[4] == "N"
    assert statuses[0] == " ", "no location has uid 0"
    # one hromada clears: the oblast is partly under alert again
    fed.send(raise_([leaf], 4, action="clear"))
    active = fed.view.active()
    assert {a["location_type"] for a in active} >= {"raion", "hromada"}
    assert str(leaf_uid) not in {a["location_uid"] for a in active}
    assert fed.view.by_oblast()[pos(22)] == "P"
    ids = [a["id"] for a in active]
    assert len(ids) == len(set(ids))
    history = fed.view.region_history(22, T0)
    assert history is not None
    finished = [h for h in history if h["finished_at"] is not None]
    assert {h["location_uid"] for h in finished} == {str(leaf_uid), str(raion_uid), "22"}
    assert [h for h in history if h["finished_at"] is None] == active
    assert len({h["id"] for h in history}) == len(history)


def test_one_event_rolls_up_once(fed: Fed) -> None:
    fed.send(raise_([KHARKIV_OBLAST], 1))
    history = fed.view.region_history(22, T0)
    assert history is not None and len(history) == 1, "no hromada alert that lasted no time"


def test_cities_and_places_without_a_uid(fed: Fed, ua: RegionSet) -> None:
    fed.send(raise_([KYIV_LEAF], 1))
    (kyiv,) = fed.view.active()
    assert (kyiv["location_title"], kyiv["location_type"], kyiv["location_uid"]) == (
        "м. Київ", "city", "31")
    assert kyiv["calculated"] is None
    crimea = next(leaf for leaf in ua.leaves_under("UA01000000000013043")
                  if not ua.get(leaf).geometry.is_empty)
    fed.send(raise_([crimea], 2))
    by_uid = {a["location_uid"]: a for a in fed.view.active()}
    assert by_uid["29"]["calculated"] is True, "warned a little too widely, and says so"
    assert fed.view.status(29) == "P"


def test_levels_red_and_yellow(ua: RegionSet) -> None:
    view = AlertsInUaView(ua, clock=FakeClock())
    kyiv = {"type": "alert_started", "region": KYIV_LEAF, "alert_type": "air_raid",
            "severity": "pre_alert", "time": at(1), "causes": [], "eta_s": None}
    view.apply_many([{**kyiv, "seq": 2, "cause_seq": 1}])
    assert view.status(31) == "A" and view.status(31, levels=True) == "Y"
    assert view.active()[0]["alert_level"] == "yellow"
    view.apply_many([{**kyiv, "type": "alert_updated", "severity": "imminent", "seq": 4,
                      "cause_seq": 3, "time": at(2)}])
    assert view.status(31, levels=True) == "R"
    (item,) = view.active()
    assert item["alert_level"] == "red" and item["updated_at"] != item["started_at"]


# --- over HTTP -------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_last_modified_and_304(start: Start, clock: FakeClock) -> None:
    async with start() as api:
        await api.post(raise_([KHARKIV_OBLAST], 1))
        paths = ["/v1/alerts/active.json", "/v1/regions/22/alerts/month_ago.json",
                 "/v1/iot/active_air_raid_alerts/22.json", "/v2/iot/active_air_raid_alerts/22.json",
                 "/v1/iot/active_air_raid_alerts_by_oblast.json",
                 "/v2/iot/active_air_raid_alerts_by_oblast.json",
                 "/v1/iot/active_air_raid_alerts.json", "/v2/iot/active_air_raid_alerts.json"]
        # the newest change is in this very second: the date sent is one earlier, so asking
        # again with it fetches again
        for path in paths:
            r = await api.client.get(path, headers={"Authorization": "Bearer anything"})
            assert r.status_code == 200, path
            held = r.headers["last-modified"]
            again = await api.client.get(path, headers={"If-Modified-Since": held})
            assert again.status_code == 200, path
        clock.advance(2)
        for path in paths:
            r = await api.client.get(path)
            held = r.headers["last-modified"]
            again = await api.client.get(path, headers={"If-Modified-Since": held})
            assert again.status_code == 304, path
            assert again.headers["last-modified"] == held
        body = (await api.client.get("/v1/alerts/active.json")).json()
        assert META_RE.match(body["meta"]["last_updated_at"])
        assert (await api.client.get("/v1/iot/active_air_raid_alerts/22.json")).json() == "A"
        assert (await api.client.get("/v2/iot/active_air_raid_alerts/22.json")).json() == "R"
        # a change after the date the client holds is news again
        await api.post(raise_([LVIV_HROMADA], 3))
        r = await api.client.get("/v1/alerts/active.json", headers={"If-Modified-Since": held})
        assert r.status_code == 200 and len(r.json()["alerts"]) == 2
        future = format_datetime(clock() + timedelta(days=1), usegmt=True)
        r = await api.client.get("/v1/alerts/active.json", headers={"If-Modified-Since": future})
        assert r.status_code == 200, "a date from the future is ignored"


@pytest.mark.anyio
async def test_errors_and_access(start: Start) -> None:
    async with start() as api:
        r = await api.client.get("/v1/regions/99999/alerts/month_ago.json")
        assert r.status_code == 404 and "message" in r.json()
        r = await api.client.get("/v1/regions/22/alerts/year_ago.json")
        assert r.status_code == 400 and "message" in r.json()
        assert (await api.client.get("/v1/iot/active_air_raid_alerts/99999.json")).status_code \
            == 404
    async with start("private", private=True) as api:
        r = await api.client.get("/v1/alerts/active.json")
        assert r.status_code == 401 and "message" in r.json()
        r = await api.client.get("/v1/alerts/active.json",
                                 headers={"Authorization": "Bearer not-a-key"})
        assert r.status_code == 401
        r = await api.client.get("/v1/alerts/active.json", headers=api.auth("reader"))
        assert r.status_code == 200


# --- the real client against a real server ---------------------------------------------------


class Server:
    """`python -m tocsin serve --private` on a free port, until stopped."""

    def __init__(self, data_dir: Path) -> None:
        port = servers.free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = data_dir.parent / "serve.log"
        self.proc = servers.start_serve(
            ["--data-dir", str(data_dir), "--port", str(port), "--private"], self.log_path)
        try:
            servers.wait_ready(self.proc, self.base, self.log_path.read_text)
        except AssertionError:
            self.stop()
            raise

    @staticmethod
    def now() -> str:
        return format_time(datetime.now(UTC))

    def stop(self) -> None:
        servers.stop(self.proc)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, str, str]]:
    data = tmp_path / "data"

    def key(role: str) -> str:
        return servers.create_key(role, "--data-dir", str(data), "--source", "console")

    reader, operator = key("reader"), key("operator")
    server = Server(data)
    try:
        yield server, reader, operator
    finally:
        server.stop()


@pytest.mark.serial
def test_the_real_alerts_in_ua_client_works_against_tocsin(
    served: tuple[Server, str, str], ua: RegionSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, reader, operator = served
    now = server.now()
    for regions in ([KHARKIV_OBLAST], [LVIV_HROMADA]):
        r = httpx.post(server.base + "/api/v1/events", headers={
            "Authorization": f"Bearer {operator}"}, json={
            "id": f"op-{regions[0]}", "type": "operator_alert", "time": now,
            "source": "console", "regions": regions, "alert_type": "air_raid",
            "action": "raise", "operator": "duty"}, timeout=30)
        assert r.status_code == 202, r.text
    client = alerts_in_ua.Client(token=reader)
    client.base_url = server.base + "/v1/"  # the one change a user makes
    active = client.get_active_alerts()
    assert len(active) == 2
    assert active.get_last_updated_at() is not None
    (kharkiv,) = active.get_alerts_by_location_title("Харківська область")
    assert kharkiv.location_type == "oblast" and kharkiv.location_oblast_uid == 22
    assert kharkiv.started_at is not None and kharkiv.finished_at is None
    lviv_uid = str(ua.get(LVIV_HROMADA).alerts_uid)
    assert active.get_alerts_by_location_uid(lviv_uid)
    assert len(client.get_active_alerts()) == 2, "again, through If-Modified-Since"
    history = client.get_alerts_history(22)
    assert [a.location_title for a in history] == ["Харківська область"]
    assert client.get_air_raid_alert_status(22).is_active_on_all_oblast()
    assert client.get_air_raid_alert_status(22, include_alert_level=True).is_red()
    assert client.get_air_raid_alert_status("Львівська область").is_partly_active()
    by_oblast = client.get_air_raid_alert_statuses_by_oblast()
    assert [s.location_title for s in by_oblast.get_active_alert_oblasts()] == [
        "Харківська область"]
    assert [s.location_title for s in by_oblast.get_partly_active_alert_oblasts()] == [
        "Львівська область"]
    assert len(client.get_air_raid_alert_statuses_by_oblast(include_alert_level=True)
               .get_red_alert_oblasts()) == 1
    statuses = client.get_air_raid_alert_statuses()
    assert statuses.get_status(22).status == "active"
    assert statuses.get_status(27).status == "partly"
    assert statuses.get_status(4).status == "no_alert"
    levels = client.get_air_raid_alert_statuses(include_alert_level=True)
    assert levels.get_status(22).is_red()
    stranger = alerts_in_ua.Client(token="someone-elses-token")
    stranger.base_url = server.base + "/v1/"
    with pytest.raises(alerts_in_ua.UnauthorizedError):
        stranger.get_active_alerts()

    import asyncio

    monkeypatch.setattr(alerts_in_ua.AsyncClient, "API_BASE_URL", server.base)
    aclient = alerts_in_ua.AsyncClient(token=reader)
    assert len(asyncio.run(aclient.get_active_alerts())) == 2


@pytest.mark.anyio
async def test_last_modified_moves_only_with_the_answers_own_content(
    start: Start, clock: FakeClock
) -> None:
    """During an attack, a poller of one oblast's letter keeps getting 304 while other
    places change."""
    async with start() as api:
        await api.post(raise_([KHARKIV_OBLAST], 1))
        clock.advance(2)
        path = "/v1/iot/active_air_raid_alerts/22.json"  # Kharkiv oblast's letter
        first = await api.client.get(path)
        held, etag = first.headers["last-modified"], first.headers["etag"]
        for i in range(3):  # elsewhere: Lviv raised and cleared, seconds apart
            clock.advance(2)
            await api.post(raise_([LVIV_HROMADA], 3 + i * 2,
                                  action="raise" if i % 2 == 0 else "clear"))
            clock.advance(2)
            r = await api.client.get(path, headers={"If-Modified-Since": held})
            assert r.status_code == 304 and r.headers["last-modified"] == held
            r = await api.client.get(path, headers={"If-None-Match": etag})
            assert r.status_code == 304
            active = await api.client.get("/v1/alerts/active.json",
                                          headers={"If-Modified-Since": held})
            assert active.status_code == 200  # that answer did change
        clock.advance(2)
        await api.post(event("operator_alert", 20, regions=[KHARKIV_OBLAST],
                             alert_type="air_raid", action="clear", operator="duty"))
        r = await api.client.get(path, headers={"If-Modified-Since": held})
        assert r.status_code == 200 and r.json() == "N"
