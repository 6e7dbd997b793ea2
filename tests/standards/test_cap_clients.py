"""CAP out, read by the clients and schemas people use: capparselib, cap-tools, feedparser, and
the OASIS and IPAWS-profile XSDs; caching headers, HEAD, expiry, the embedded feed."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import feedparser
import pytest
import xmlschema
from cap_tools.models import Alert as ToolsAlert
from xsdata.formats.dataclass.parsers import XmlParser

from tests.api.helpers import Api
from tests.engine.helpers import Sim
from tests.standards.test_capfeed import _wave
from tocsin.engine.policy import Policy
from tocsin.geo import RegionSet
from tocsin.outputs.cap import parse
from tocsin.outputs.capfeed import CapFeed

Start = Callable[..., AbstractAsyncContextManager[Api]]
SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "cap" / "schema"
KYIV = "cod:UA8000000"


@cache
def schemas() -> dict[str, xmlschema.XMLSchema]:
    found = {name: SCHEMAS / f for name, f in (("OASIS", "CAP-v1.2.xsd"),
                                                ("IPAWS", "capv1.2-ipaws-profile-v1.0-pr02.xsd"))}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        pytest.skip(f"SKIPPED LOUDLY: CAP schemas not found: {missing}")
    return {name: xmlschema.XMLSchema(str(p)) for name, p in found.items()}


@pytest.fixture(scope="module")
def wave(ua: RegionSet) -> tuple[Sim, CapFeed]:
    sim = _wave(ua)
    feed = CapFeed(ua, sim.ledger.log, sender="alerts@example.gov.ua", keep=100_000,
                   embed=True, base_url="https://alerts.example.gov.ua/")
    for t in sim.all:
        feed.apply(t.to_dict())
    return sim, feed


def test_every_message_is_valid_oasis_and_ipaws_and_parses_with_cap_tools(
    wave: tuple[Sim, CapFeed],
) -> None:
    _sim, feed = wave
    kinds = set()
    for seq in list(feed.latest)[::3]:  # a third of a whole wave: every kind, 2 schemas each
        body = feed.xml(seq)
        assert body is not None
        for name, schema in schemas().items():
            errors = [e.reason for e in schema.iter_errors(body.decode())]
            assert errors == [], (name, seq, errors[:3])
        tools = XmlParser().from_bytes(body, ToolsAlert)
        ours = parse(body)
        kinds.add(ours.msg_type)
        assert tools.identifier == ours.identifier and tools.sender == ours.sender
        assert tools.msg_type.value == ours.msg_type
        for info in ours.infos:
            assert info.expires is not None  # a consumer that misses the Cancel ages it out
            assert info.areas[0].geocodes, "every area has a geocode"
    assert kinds == {"Alert", "Update", "Cancel"}


def test_expires_follows_the_policy_and_updates_renew_it(wave: tuple[Sim, CapFeed]) -> None:
    _sim, feed = wave
    hold = timedelta(seconds=Policy().cap_expires_s)
    for seq in feed.latest:
        body = feed.xml(seq)
        assert body is not None
        msg = parse(body)
        sent = datetime.fromisoformat(msg.sent)
        assert {datetime.fromisoformat(i.expires or "") for i in msg.infos} == {sent + hold}


@pytest.fixture(scope="module")
def capparselib() -> Any:
    # capparselib 0.6.6 pins lxml 4.6.3, which has no wheel for Python 3.11 and does not build
    # here, so it cannot be in the test extra: `pip install --no-deps capparselib` runs these
    return pytest.importorskip(
        "capparselib.parsers",
        reason="capparselib is not installed (pip install --no-deps capparselib)")


def test_capparselib_reads_every_message(wave: tuple[Sim, CapFeed], capparselib: Any) -> None:
    _sim, feed = wave
    for seq in list(feed.latest)[::3]:
        body = feed.xml(seq)
        assert body is not None
        (parsed,) = capparselib.CAPParser(body.decode()).as_dict()
        ours = parse(body)
        assert str(parsed["cap_id"]) == ours.identifier
        assert str(parsed["cap_info"][0]["cap_expires"]) == ours.infos[0].expires


def test_capparselib_reads_the_embedded_feed(wave: tuple[Sim, CapFeed], capparselib: Any) -> None:
    _sim, feed = wave
    body = feed.feed(limit=20, updated="2026-01-01T00:00:00+00:00")
    alerts = capparselib.CAPParser(body.decode()).as_dict()
    assert len(alerts) == 20
    newest = list(reversed(feed.latest))[:20]
    assert sorted(str(a["cap_id"]) for a in alerts) == sorted(f"tocsin-{s}" for s in newest)


def test_the_embedded_feed_reads_with_feedparser(wave: tuple[Sim, CapFeed]) -> None:
    _sim, feed = wave
    body = feed.feed(limit=20, updated="2026-01-01T00:00:00+00:00")
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert len(parsed.entries) == 20
    for entry in parsed.entries:
        assert entry.link.startswith("https://alerts.example.gov.ua/cap/tocsin-")
        assert entry.id.startswith("https://alerts.example.gov.ua/cap/tocsin-")


@pytest.mark.anyio
async def test_caching_headers_head_and_a_unique_default_sender(start: Start) -> None:
    async with start(public_url="https://alerts.example.gov.ua/base/") as api:
        from tests.engine.helpers import event

        await api.post(event("operator_alert", 1, regions=[KYIV], alert_type="air_raid",
                             action="raise", operator="duty"))
        (seq,) = api.transition_seqs()
        for path, kind in ((f"/cap/tocsin-{seq}.xml", "application/cap+xml"),
                           ("/cap/feed.atom", "application/atom+xml")):
            r = await api.client.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
            etag, modified = r.headers["etag"], r.headers["last-modified"]
            head = await api.client.head(path)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["etag"] == etag
            assert (await api.client.get(path, headers={"If-None-Match": etag})).status_code \
                == 304
            assert (await api.client.get(path, headers={"If-Modified-Since": modified})
                    ).status_code == 304
            stale = "Thu, 01 Jan 2015 00:00:00 GMT"
            assert (await api.client.get(path, headers={"If-Modified-Since": stale})
                    ).status_code == 200
        msg = parse((await api.client.get(f"/cap/tocsin-{seq}.xml")).content)
        assert msg.sender.startswith("tocsin-") and msg.sender.endswith("@alerts.example.gov.ua")
        feed = (await api.client.get("/cap/feed.atom")).content
        assert b"https://alerts.example.gov.ua/base/cap/tocsin-" in feed
    async with start("other") as other:  # another deployment: another log key, sender
        await other.post(event("operator_alert", 1, regions=[KYIV], alert_type="air_raid",
                               action="raise", operator="duty"))
        (seq,) = other.transition_seqs()
        theirs = parse((await other.client.get(f"/cap/tocsin-{seq}.xml")).content)
        assert theirs.sender.split("@")[0] != msg.sender.split("@")[0]
