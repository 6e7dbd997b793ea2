"""CAP 1.2 in: another authority's alert becomes an operator alert for the regions it covers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import KHARKIV, Api, FakeClock
from tests.engine.helpers import event
from tocsin.cli import main
from tocsin.engine.core import Engine
from tocsin.geo import RegionSet
from tocsin.model import parse_time
from tocsin.outputs.cap import CapArea, CapInfo, CapMessage, cap_time, encode, parse
from tocsin.store import open_log

pytestmark = pytest.mark.anyio

Start = Callable[..., AbstractAsyncContextManager[Api]]
SENDER = "civil-protection@example.org"
INVALID = {"se_krisinformation_2018-11-21.xml", "se_krisinformation_feed.atom.xml"}


def cap(
    identifier: str,
    clock: FakeClock,
    *,
    msg_type: str = "Alert",
    status: str = "Actual",
    areas: tuple[CapArea, ...] = (),
    event_name: str = "Air raid",
    references: tuple[tuple[str, str, str], ...] = (),
    expires_in: float | None = 3600,
) -> bytes:
    """A CAP message from another authority."""
    sent = clock()
    info = CapInfo(
        categories=("Safety",), event=event_name, urgency="Immediate", severity="Severe",
        certainty="Observed", headline=f"{event_name} warning {identifier}",
        expires=None if expires_in is None else cap_time(sent + timedelta(seconds=expires_in)),
        areas=areas,
    )
    return encode(CapMessage(
        identifier=identifier, sender=SENDER, sent=cap_time(sent), status=status,
        msg_type=msg_type, scope="Public", references=references,
        infos=(info,) if areas or msg_type != "Cancel" else (),
    ))


def katottg(*ids: str) -> tuple[CapArea, ...]:
    return (CapArea("by code", geocodes=tuple(("KATOTTG", i) for i in ids)),)


async def post(api: Api, body: bytes, role: str = "operator") -> Any:
    return await api.client.post("/api/v1/cap", content=body, headers={
        **api.auth(role), "Content-Type": "application/cap+xml"})


async def active(api: Api) -> dict[tuple[str, str], list[str]]:
    alerts = await api.service.read(Engine.active_alerts)
    return {(a["region"], a["alert_type"]): a["causes"] for a in alerts}


async def test_every_sample_goes_through(start: Start, shared_data: Path) -> None:
    samples = sorted((shared_data / "cap" / "samples").glob("*.xml"))
    assert len(samples) == 19
    async with start() as api:
        before = await api.seq()
        for path in samples:
            r = await post(api, path.read_bytes())
            if path.name in INVALID:
                assert r.status_code == 422, (path.name, r.text)
                assert r.json()["errors"], path.name
            else:
                assert r.status_code == 202, (path.name, r.text)
                assert r.json()["regions"] == [], path.name
                assert r.json()["messages"], path.name
        assert not await active(api)
        logged = [e for e in api.service.log.read(before + 1) if e.kind == "event"]
        assert all(e.obj()["type"] == "tick" for e in logged), "nothing outside Ukraine acts"


async def test_the_schema_error_is_reported(start: Start, shared_data: Path) -> None:
    async with start() as api:
        body = (shared_data / "cap" / "samples" / "se_krisinformation_2018-11-21.xml").read_bytes()
        r = await post(api, body)
        assert r.status_code == 422
        assert "senderName" in r.json()["detail"] or "senderName" in str(r.json()["errors"])
        r = await post(api, b"<alert>not cap</alert>")
        assert r.status_code == 422


async def test_geocodes_raise_and_a_cancel_clears(start: Start, clock: FakeClock) -> None:
    async with start() as api:
        oblast = "UA63000000000041885"
        r = await post(api, cap("a-1", clock, areas=katottg(oblast)))
        assert r.status_code == 202, r.text
        assert r.json()["regions"] == [oblast]
        (msg,) = r.json()["messages"]
        assert msg["action"] == "raise" and msg["alert_type"] == "air_raid"
        now = await active(api)
        leaves = api.service.regions.leaves_under(oblast)
        assert all(now[(leaf, "air_raid")] == [f"operator:cap:{SENDER}"] for leaf in leaves)
        (raised,) = [e.obj() for e in api.service.log.read() if e.source == f"cap:{SENDER}"]
        assert raised["id"] == "a-1" and raised["cap"]["identifier"] == "a-1"
        assert raised["note"] == "Air raid warning a-1"
        # the same message again changes nothing
        again = await post(api, cap("a-1", clock, areas=katottg(oblast)))
        assert again.json()["messages"][0]["events"][0]["duplicate"] is True
        sent = cap_time(clock())
        clock.advance(5)
        r = await post(api, cap("a-2", clock, msg_type="Cancel",
                                references=((SENDER, "a-1", sent),)))
        (msg,) = r.json()["messages"]
        assert msg["action"] == "clear" and msg["cleared"] == [oblast]
        assert not await active(api)


async def test_alerts_in_ua_uid_geocodes_map_directly(start: Start, clock: FakeClock) -> None:
    async with start() as api:
        area = CapArea("Kharkivska", geocodes=(("alerts.in.ua", "22"),))
        r = await post(api, cap("u-1", clock, areas=(area,), event_name="Artillery shelling"))
        assert r.json()["regions"] == ["UA63000000000041885"]
        assert r.json()["messages"][0]["alert_type"] == "artillery_shelling"


async def test_polygons_and_circles_hit_what_they_overlap(
    start: Start, clock: FakeClock, ua: RegionSet
) -> None:
    leaf = ua.locate(*KHARKIV)
    assert leaf is not None
    lat, lon = KHARKIV
    d = 0.01
    square = ((lat - d, lon - d), (lat - d, lon + d), (lat + d, lon + d), (lat + d, lon - d),
              (lat - d, lon - d))
    async with start() as api:
        r = await post(api, cap("p-1", clock, areas=(CapArea("a square", polygons=(square,)),)))
        assert r.json()["regions"] == [leaf]
        r = await post(api, cap("c-1", clock, event_name="Chemical release",
                                areas=(CapArea("a circle", circles=((lat, lon, 30.0),)),)))
        hit = {x for rid in r.json()["regions"] for x in ua.leaves_under(rid)}
        assert leaf in hit and len(hit) > 3
        assert ua.chain(leaf)[1].id in r.json()["regions"], "a whole raion is named as such"
        assert r.json()["messages"][0]["alert_type"] == "chemical"
        far = CapArea("the sea", circles=((40.0, 20.0, 10.0),))
        r = await post(api, cap("c-2", clock, areas=(far,)))
        assert r.status_code == 202 and r.json()["regions"] == []
        assert r.json()["messages"][0]["reason"] == "its areas cover no loaded region"


async def test_an_update_clears_what_it_no_longer_covers(
    start: Start, clock: FakeClock, ua: RegionSet
) -> None:
    leaf = ua.locate(*KHARKIV)
    assert leaf is not None
    kids = ua.children(ua.chain(leaf)[1].id)  # hromadas of Kharkiv's raion
    keep, drop = kids[0], kids[1]
    async with start() as api:
        r = await post(api, cap("x-1", clock, areas=katottg(keep, drop)))
        assert r.json()["regions"] == sorted([keep, drop])
        sent = cap_time(clock())
        clock.advance(5)
        r = await post(api, cap("x-2", clock, msg_type="Update", areas=katottg(keep),
                                references=((SENDER, "x-1", sent),)))
        (msg,) = r.json()["messages"]
        assert msg["action"] == "update" and msg["cleared"] == [drop]
        assert set(await active(api)) == {(keep, "air_raid")}


async def test_a_cancel_leaves_alerts_others_hold(start: Start, clock: FakeClock,
                                                  ua: RegionSet) -> None:
    leaf = ua.locate(*KHARKIV)
    assert leaf is not None
    async with start() as api:
        await post(api, cap("k-1", clock, areas=katottg(leaf)))
        await api.post(event("operator_alert", 1, regions=[leaf], alert_type="air_raid",
                             action="raise", operator="duty"))
        sent = cap_time(clock())
        r = await post(api, cap("k-2", clock, msg_type="Cancel",
                                references=((SENDER, "k-1", sent),)))
        (msg,) = r.json()["messages"]
        assert msg["kept"] == [leaf] and msg["cleared"] == []
        assert (leaf, "air_raid") in await active(api)


async def test_what_is_not_acted_on(start: Start, clock: FakeClock) -> None:
    oblast = "UA63000000000041885"
    async with start() as api:
        r = await post(api, cap("e-1", clock, status="Exercise", areas=katottg(oblast)))
        (msg,) = r.json()["messages"]
        assert msg["action"] == "none" and "exercise mode" in msg["reason"]
        r = await post(api, cap("e-2", clock, areas=katottg(oblast), expires_in=-60))
        assert r.json()["messages"][0]["reason"] == "every info block has expired"
        r = await post(api, cap("e-3", clock, msg_type="Cancel",
                                references=((SENDER, "never-seen", cap_time(clock())),)))
        assert r.json()["messages"][0]["reason"] == "references no message imported here"
        assert not await active(api)
    async with start("drill", mode="exercise") as api:
        r = await post(api, cap("e-1", clock, status="Exercise", areas=katottg(oblast)))
        assert r.json()["messages"][0]["action"] == "raise"


async def test_only_operators_may_post_cap(start: Start, clock: FakeClock) -> None:
    async with start() as api:
        body = cap("r-1", clock, areas=katottg("UA63000000000041885"))
        assert (await post(api, body, role="reader")).status_code == 403
        r = await api.client.post("/api/v1/cap", content=body)
        assert r.status_code == 401


async def test_our_own_cap_round_trips_into_another_tocsin(start: Start, ua: RegionSet) -> None:
    leaf = ua.locate(*KHARKIV)
    assert leaf is not None
    async with start("a") as a:
        await a.post(event("operator_alert", 1, regions=[leaf], alert_type="nuclear",
                           action="raise", operator="duty"))
        await a.post(event("operator_alert", 2, regions=[leaf], alert_type="nuclear",
                           action="clear", operator="duty"))
        first, last = a.transition_seqs()
        alert = (await a.client.get(f"/cap/tocsin-{first}.xml")).content
        cancel = (await a.client.get(f"/cap/tocsin-{last}.xml")).content
    sender = parse(alert).sender
    assert re.fullmatch(r"tocsin-[0-9a-f]{16}@[^@\s]+", sender)  # unique per deployment
    async with start("b") as b:
        r = await post(b, alert)
        assert r.json()["regions"] == [leaf]
        assert r.json()["messages"][0]["alert_type"] == "nuclear"
        assert (await active(b))[(leaf, "nuclear")] == [f"operator:cap:{sender}"]
        r = await post(b, cancel)
        assert r.json()["messages"][0]["cleared"] == [leaf]
        assert not await active(b)


@pytest.mark.parametrize("leaf", ["cod:UA8000000", "cod:UA8500000", "cod:UA3200000"])
async def test_special_units_are_geocoded_and_round_trip_alone(
    start: Start, ua: RegionSet, leaf: str
) -> None:
    """Kyiv, Sevastopol and the Chornobyl zone: a geocode each, and another tocsin raises
    exactly that unit (not its neighbours by polygon overlap)."""
    async with start("a") as a:
        await a.post(event("operator_alert", 1, regions=[leaf], alert_type="air_raid",
                           action="raise", operator="duty"))
        (seq,) = a.transition_seqs()
        alert = (await a.client.get(f"/cap/tocsin-{seq}.xml")).content
    codes = dict(parse(alert).infos[0].areas[0].geocodes)
    expected = {"cod:UA8000000": {"KATOTTG": "UA80000000000093317", "alerts.in.ua": "31"},
                "cod:UA8500000": {"KATOTTG": "UA85000000000065278", "alerts.in.ua": "30"},
                "cod:UA3200000": {}}[leaf]
    assert codes == {**expected, "COD-AB": leaf.removeprefix("cod:")}
    async with start("b") as b:
        r = await post(b, alert)
        (named,) = r.json()["regions"]  # the unit, named by the coarsest region it makes up
        assert ua.leaves_under(named) == (leaf,) or list(ua.leaves_under(named)) == [leaf]
        assert list(await active(b)) == [(leaf, "air_raid")]


def test_cli_imports_into_a_stopped_servers_log(tmp_path: Path, clock: FakeClock,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    path = tmp_path / "alert.xml"
    clock.now = parse_time("2030-01-01T00:00:00Z")  # sent now-ish: expires in the future
    path.write_bytes(cap("cli-1", clock, areas=katottg("UA46000000000026241"),
                         expires_in=10 * 365 * 86400))
    assert main(["cap", "import", str(path), "--data-dir", str(data)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["regions"] == ["UA46000000000026241"]
    log = open_log(data)  # holds the log open, as a running server does
    try:
        raised = [e.obj() for e in log.read() if e.source == f"cap:{SENDER}"]
        assert raised and raised[0]["action"] == "raise"
        assert main(["cap", "import", str(path), "--data-dir", str(data)]) == 3
        assert "stop the server" in capsys.readouterr().err
    finally:
        log.close()
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<feed xmlns='http://www.w3.org/2005/Atom'/>")
    assert main(["cap", "import", str(bad), "--data-dir", str(data)]) == 2
