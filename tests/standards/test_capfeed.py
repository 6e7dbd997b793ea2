"""CAP 1.2 out: every alert start, update and end is a schema-valid CAP message, feed and all."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.api.helpers import KHARKIV, NEAR_KHARKIV, Api, FakeClock
from tests.engine.helpers import Sim, detection, event
from tocsin.geo import RegionSet
from tocsin.outputs.cap import parse, validate, verify_detached
from tocsin.outputs.capfeed import CapFeed, identifier_for, log_index, seq_of

pytestmark = pytest.mark.anyio

Start = Callable[..., AbstractAsyncContextManager[Api]]
KHARKIV_OBLAST = "UA63000000000041885"
ATOM = "{http://www.w3.org/2005/Atom}"


def _wave(ua: RegionSet) -> Sim:
    """A drone's whole life: alerts start, grow more urgent, and end."""
    sim = Sim(ua)
    sim.send(detection("A", 0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    sim.drain()
    return sim


def test_every_start_update_and_end_is_valid_cap_with_its_chain(ua: RegionSet) -> None:
    sim = _wave(ua)
    feed = CapFeed(ua, sim.ledger.log, sender="alerts@example.gov.ua", keep=100_000)
    for t in sim.all:
        feed.apply(t.to_dict())
    kinds = {t.type for t in sim.all}
    assert {"alert_started", "alert_updated", "alert_ended"} <= kinds
    alert_transitions = [t for t in sim.all if t.type.startswith("alert_")]
    assert len(feed.latest) == len(alert_transitions)
    chains: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
    for t in alert_transitions:
        body = feed.xml(t.seq)
        assert body is not None
        validate(body)
        msg = parse(body)
        assert msg.identifier == identifier_for(t.seq) and seq_of(msg.identifier) == t.seq
        assert msg.sender == "alerts@example.gov.ua" and msg.status == "Actual"
        expected = {"alert_started": "Alert", "alert_updated": "Update", "alert_ended": "Cancel"}
        assert msg.msg_type == expected[t.type]
        key = (t.region, t.alert_type)
        earlier = chains.setdefault(key, [])
        assert [(i, s) for _, i, s in msg.references] == earlier
        earlier.append((msg.identifier, msg.sent))
        if t.type == "alert_ended":
            del chains[key]
        assert [i.language for i in msg.infos] == ["uk-UA", "en-US"]
        params = dict(msg.infos[0].parameters)
        assert params["tocsin:log_index"] == str(log_index(t.to_dict())) == str(t.seq - 1)
        area = msg.infos[0].areas[0]
        region = ua.get(t.region)
        assert ("KATOTTG", t.region) in area.geocodes
        if region.alerts_uid is not None:
            assert ("alerts.in.ua", str(region.alerts_uid)) in area.geocodes
        assert area.polygons, "the region's outline is the CAP area"


def test_old_messages_are_rebuilt_from_the_log_byte_for_byte(ua: RegionSet) -> None:
    sim = _wave(ua)
    everything = CapFeed(ua, sim.ledger.log, sender="tocsin", keep=100_000)
    small = CapFeed(ua, sim.ledger.log, sender="tocsin", keep=5)
    for t in sim.all:
        everything.apply(t.to_dict())
        small.apply(t.to_dict())
    seqs = [t.seq for t in sim.all if t.type.startswith("alert_")]
    assert len(small.latest) == 5
    for seq in seqs:
        assert small.xml(seq) == everything.xml(seq)
    assert small.xml(1) is None  # an event, not a message
    assert small.xml(10**9) is None


@pytest.mark.parametrize(("mode", "status"), [("exercise", "Exercise"), ("test", "Test")])
async def test_status_follows_the_mode(start: Start, mode: str, status: str) -> None:
    async with start(mode=mode) as api:
        await api.post(event("operator_alert", 1, regions=[KHARKIV_OBLAST],
                             alert_type="air_raid", action="raise", operator="duty"))
        seq = api.transition_seqs()[0]
        r = await api.client.get(f"/cap/tocsin-{seq}.xml")
        assert r.status_code == 200
        assert parse(r.content).status == status


async def test_feed_and_messages_over_http(start: Start, ua: RegionSet,
                                           clock: FakeClock) -> None:
    async with start(cap_sender="alerts@example.gov.ua",
                     public_url="http://tocsin.test/") as api:
        leaf = ua.locate(*KHARKIV)
        assert leaf is not None
        clock.advance(1)  # each event at the server's clock, not ahead of it
        await api.post(event("operator_alert", 1, regions=[leaf], alert_type="chemical",
                             action="raise", operator="duty"))
        clock.advance(1)
        await api.post(event("operator_alert", 2, regions=[leaf], alert_type="chemical",
                             action="clear", operator="duty"))
        start_seq, end_seq = api.transition_seqs()
        r = await api.client.get("/cap/feed.atom")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/atom+xml")
        assert "x-cap-signature" not in r.headers
        root = ET.fromstring(r.content)
        links = [e.find(f"{ATOM}link").get("href") for e in root.iter(f"{ATOM}entry")]
        assert links == [f"http://tocsin.test/cap/tocsin-{s}.xml" for s in (end_seq, start_seq)]
        # a forged Host changes nothing: links come from the configured public URL
        forged = await api.client.get("/cap/feed.atom", headers={"Host": "attacker.example"})
        assert forged.content == r.content and b"attacker" not in forged.content
        for href in links:
            m = await api.client.get(href.removeprefix("http://tocsin.test"))
            assert m.status_code == 200
            assert m.headers["content-type"] == "application/cap+xml"
            validate(m.content)
        cancel = parse((await api.client.get(f"/cap/tocsin-{end_seq}.xml")).content)
        assert cancel.msg_type == "Cancel"
        assert cancel.references[0][:2] == ("alerts@example.gov.ua", f"tocsin-{start_seq}")
        assert cancel.infos[1].response_types == ("AllClear",)
        assert cancel.infos[1].categories == ("CBRNE",)
        assert (await api.client.get("/cap/tocsin-999999.xml")).status_code == 404
        assert (await api.client.get("/cap/nonsense.xml")).status_code == 404
        assert (await api.client.get("/cap/signing-key.pem")).status_code == 404


async def test_the_feed_is_rebuilt_from_the_log_on_start(start: Start) -> None:
    async with start() as api:
        await api.post(event("operator_alert", 1, regions=[KHARKIV_OBLAST],
                             alert_type="air_raid", action="raise", operator="duty"))
        seqs = api.transition_seqs()
        before = {s: (await api.client.get(f"/cap/tocsin-{s}.xml")).content for s in seqs[:3]}
        feed_before = (await api.client.get("/cap/feed.atom")).content
    async with start() as api:
        for s, body in before.items():
            assert (await api.client.get(f"/cap/tocsin-{s}.xml")).content == body
        assert (await api.client.get("/cap/feed.atom")).content == feed_before


async def test_messages_are_signed_when_a_key_is_configured(
    start: Start, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cap-signing.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    async with start() as api:
        await api.post(event("operator_alert", 1, regions=[KHARKIV_OBLAST],
                             alert_type="air_raid", action="raise", operator="duty"))
        seq = api.transition_seqs()[0]
        pem = (await api.client.get("/cap/signing-key.pem")).content
        public = serialization.load_pem_public_key(pem)
        for path in (f"/cap/tocsin-{seq}.xml", "/cap/feed.atom"):
            r = await api.client.get(path)
            scheme, _, signature = r.headers["x-cap-signature"].partition("=")
            assert scheme == "ed25519"
            verify_detached(r.content, signature, public)  # type: ignore[arg-type]


async def test_private_servers_want_a_reader_key_for_the_feed(start: Start) -> None:
    async with start(private=True) as api:
        assert (await api.client.get("/cap/feed.atom")).status_code == 401
        r = await api.client.get("/cap/feed.atom", headers=api.auth("reader"))
        assert r.status_code == 200
