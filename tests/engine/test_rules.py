"""One test per semantic rule of the engine, on Ukraine's real hromadas."""

from __future__ import annotations

import pytest

from tocsin.engine.policy import Policy
from tocsin.errors import ValidationError
from tocsin.geo import RegionSet
from tocsin.threats import load_catalog

from .helpers import Sim, at, detection, event, of

KHARKIV = (49.99, 36.23)
LVIV = (49.84, 24.03)
# 49 km north-east of Kharkiv (Vovchanska hromada), heading 230° for it
NEAR_KHARKIV = (50.25, 36.70)
KHARKIV_OBLAST = "UA63000000000041885"


def severity_for(eta: float, shelter: float = 90.0, alert_s: float = 1800.0) -> str:
    return "imminent" if eta <= shelter else "alert" if eta <= alert_s else "pre_alert"


def test_detection_alerts_regions_by_eta(ua: RegionSet) -> None:
    sim = Sim(ua)
    out = sim.send(detection("D1", 0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230,
                             speed_kmh=180))
    started = of(out, "alert_started")
    assert started, "a drone over Kharkiv oblast must raise alerts"
    assert {t.alert_type for t in started} == {"air_raid"}
    for t in started:
        assert t.eta_s is not None
        assert t.severity == severity_for(t.eta_s), t
        assert t.causes == ("D1",)
        assert t.cause_seq == 1
    severities = {t.severity for t in started}
    assert severities == {"imminent", "alert", "pre_alert"}
    here = ua.locate(*NEAR_KHARKIV)
    kharkiv = ua.locate(*KHARKIV)
    by_region = {t.region: t for t in started}
    assert by_region[here].severity == "imminent" and by_region[here].eta_s == 0.0
    assert by_region[kharkiv].severity == "alert"
    # the nearest edge of Kharkiv's hromada is under 49 km away at 190 km/h
    assert 600 < (by_region[kharkiv].eta_s or 0) < 49_000 / (190 / 3.6)
    # seqs follow the event without gaps
    assert [t.seq for t in out] == list(range(2, 2 + len(out)))


def test_cone_follows_heading_and_disc_without(ua: RegionSet) -> None:
    cone = Sim(ua).send(detection("D1", 0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    disc = Sim(ua).send(detection("D1", 0, *NEAR_KHARKIV, weapon="shahed-136"))
    cone_regions = {t.region for t in of(cone, "alert_started")}
    disc_regions = {t.region for t in of(disc, "alert_started")}
    assert cone_regions < disc_regions
    # Behind the drone only the disc warns.
    behind = ua.locate(50.07, 37.55)  # 65 km east-south-east, 80 degrees off the heading
    assert behind is not None and behind in disc_regions and behind not in cone_regions


def test_footprint_capped_by_remaining_range(ua: RegionSet) -> None:
    catalog = load_catalog()
    reach_km = catalog.resolve("pantsir-s1", "interceptor").reach_km
    speed = catalog.resolve("pantsir-s1", "interceptor").reach_speed_kmh / 3.6
    out = Sim(ua).send(detection("I1", 0, *KHARKIV, object="interceptor", weapon="pantsir-s1",
                                 heading_deg=90))
    assert out
    for t in of(out, "alert_started"):
        assert (t.eta_s or 0) * speed <= reach_km * 1000 * 1.01


def test_own_interceptor_alerts_like_anything_else(ua: RegionSet) -> None:
    for affiliation in ("friendly", "own", "hostile"):
        out = Sim(ua).send(detection("I1", 0, *KHARKIV, object="interceptor",
                                     weapon="pantsir-s1", affiliation=affiliation))
        assert ua.locate(*KHARKIV) in {t.region for t in of(out, "alert_started")}


def test_overlapping_threats_combine(ua: RegionSet) -> None:
    sim = Sim(ua)
    kharkiv = ua.locate(*KHARKIV)

    def state() -> dict[str, object]:
        (alert,) = [a for a in sim.engine.active_alerts() if a["region"] == kharkiv]
        return alert

    first = of(sim.send(detection("A", 0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230)),
               "alert_started", kharkiv)
    assert first and first[0].causes == ("A",)
    out = sim.send(detection("B", 5, 50.30, 36.10, weapon="shahed-136", heading_deg=165))
    # a second cause at the same severity is no news: it is in the state, not a transition
    assert state()["severity"] == first[0].severity
    assert not of(out, "alert_updated", kharkiv)
    assert state()["causes"] == ["A", "B"]
    out = sim.send(event("track_end", 10, track="A", reason="intercepted"))
    assert state()["causes"] == ["B"]
    assert not of(out, "alert_ended", kharkiv)


def test_a_closer_threat_raises_severity_with_every_cause(ua: RegionSet) -> None:
    sim = Sim(ua)
    kharkiv = ua.locate(*KHARKIV)
    (start,) = of(sim.send(detection("A", 0, 50.9, 37.6, weapon="shahed-136",
                                     heading_deg=225)), "alert_started", kharkiv)
    assert start.severity == "pre_alert" and start.causes == ("A",)
    out = sim.send(detection("B", 1, 50.95, 37.65, weapon="shahed-136", heading_deg=225))
    assert not [t for t in out if t.region == kharkiv]
    assert sim.engine.covering(kharkiv) == ("A", "B")
    out = sim.send(detection("C", 2, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    (upd,) = of(out, "alert_updated", kharkiv)
    assert upd.severity == "alert" and upd.causes == ("A", "B", "C")


def test_alert_ends_after_hold_once_nothing_covers(ua: RegionSet) -> None:
    sim = Sim(ua, Policy(hold_s=300))
    started = sim.send(detection("A", 0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    regions = {t.region for t in of(started, "alert_started")}
    # the drone flies on for a minute; a region its footprint reaches meanwhile starts too
    regions |= {t.region for t in of(sim.tick(60), "alert_started")}
    assert not of(sim.send(event("track_end", 60, track="A", reason="intercepted")), "alert_ended")
    assert not of(sim.tick(359), "alert_ended")
    ended = of(sim.tick(360), "alert_ended")
    assert {t.region for t in ended} == regions
    assert all(t.time.isoformat().startswith(at(360)[:19]) for t in ended)
    assert not sim.engine.alerts


def test_track_with_no_news_is_dead_reckoned_then_expires(ua: RegionSet) -> None:
    sim = Sim(ua)
    first = {t.region for t in of(sim.send(detection(
        "A", 0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230)), "alert_started")}
    rest = sim.drain()
    later = [t for t in of(rest, "alert_started") if t.region not in first]
    assert later, "dead reckoning must carry the footprint forward along the heading"
    silence = load_catalog().get("shahed-136")
    assert silence is not None
    ends = of(rest, "alert_ended")
    assert ends and not sim.engine.tracks and not sim.engine.alerts
    last_end = max(t.time for t in ends)
    assert (last_end - sim.all[0].time).total_seconds() == pytest.approx(
        silence.max_silence_s + 300, abs=1
    )


def test_urgency_rises_without_new_detections(ua: RegionSet) -> None:
    sim = Sim(ua)
    kharkiv = ua.locate(*KHARKIV)
    out = sim.send(detection("A", 0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    (start,) = of(out, "alert_started", kharkiv)
    assert start.severity == "alert" and start.eta_s
    rest = sim.drain()
    imminent = [t for t in of(rest, "alert_updated", kharkiv) if t.severity == "imminent"]
    assert imminent
    # it became imminent when the ETA crossed the 90 s time-to-shelter, give or take a reckon
    became = (imminent[0].time - start.time).total_seconds()
    assert start.eta_s - 90 - 60 <= became <= start.eta_s - 90 + 1


def test_impact_without_alert_is_a_silent_impact(ua: RegionSet) -> None:
    sim = Sim(ua)
    out = sim.send(event("impact", 0, position={"lat": LVIV[0], "lon": LVIV[1]},
                         kind="explosion"))
    (silent,) = of(out, "silent_impact")
    assert silent.region == ua.locate(*LVIV)
    assert dict(silent.extra)["kind"] == "explosion"
    sim.send(detection("A", 10, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    out = sim.send(event("impact", 20, position={"lat": NEAR_KHARKIV[0],
                                                 "lon": NEAR_KHARKIV[1]},
                         kind="debris", track="A"))
    assert not of(out, "silent_impact")
    assert "A" not in sim.engine.tracks


def test_operator_raises_and_clears_any_type_at_oblast_level(ua: RegionSet) -> None:
    sim = Sim(ua)
    hromadas = ua.leaves_under(KHARKIV_OBLAST)
    out = sim.send(event("operator_alert", 0, regions=[KHARKIV_OBLAST],
                         alert_type="artillery_shelling", action="raise", operator="duty-1"))
    assert [t.region for t in of(out, "alert_started")] == list(hromadas)
    assert {(t.alert_type, t.severity, t.causes) for t in out} == {
        ("artillery_shelling", "alert", ("operator:duty-1",))
    }
    # operator alerts do not time out
    assert not sim.drain()
    out = sim.send(event("operator_alert", 10, regions=[KHARKIV_OBLAST],
                         alert_type="artillery_shelling", action="clear", operator="duty-2"))
    assert [t.region for t in of(out, "alert_ended")] == list(hromadas)
    assert {t.causes for t in out} == {("operator:duty-2",)}


def test_operator_clear_wins_only_where_and_for_what_it_names(ua: RegionSet) -> None:
    sim = Sim(ua)
    kharkiv = ua.locate(*KHARKIV)
    assert kharkiv
    first = sim.send(detection("A", 0, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    regions = {t.region for t in of(first, "alert_started")}
    # clearing another type leaves the air-raid alert alone
    assert not of(sim.send(event("operator_alert", 5, regions=[kharkiv],
                                 alert_type="chemical", action="clear", operator="duty")),
                  "alert_ended")
    out = sim.send(event("operator_alert", 10, regions=[kharkiv], alert_type="air_raid",
                         action="clear", operator="duty"))
    ended = of(out, "alert_ended")
    assert [t.region for t in ended] == [kharkiv] and ended[0].cause_seq == out[-1].cause_seq
    # the same track does not bring it back there; other regions keep their alerts
    out = sim.send(detection("A", 20, 50.24, 36.69, weapon="shahed-136", heading_deg=231))
    assert not of(out, "alert_started", kharkiv)
    assert {(r, "air_raid") for r in regions - {kharkiv}} <= set(sim.engine.alerts)
    # a new threat does
    out = sim.send(detection("B", 30, 50.20, 36.60, weapon="shahed-136", heading_deg=230))
    assert of(out, "alert_started", kharkiv)


def test_threat_levels(ua: RegionSet) -> None:
    sim = Sim(ua)
    out = sim.send(event("threat_level", 0, regions=[KHARKIV_OBLAST], level=2,
                         operator="duty"))
    assert len(out) == len(ua.leaves_under(KHARKIV_OBLAST))
    assert {(t.type, dict(t.extra)["level"], dict(t.extra)["previous_level"]) for t in out} == {
        ("level_changed", 2, 0)
    }
    assert not sim.send(event("threat_level", 1, regions=[KHARKIV_OBLAST], level=2,
                              operator="duty"))
    out = sim.send(event("threat_level", 2, regions=[KHARKIV_OBLAST], level=0, operator="d"))
    assert {dict(t.extra)["level"] for t in out} == {0}
    assert not sim.engine.levels


def test_late_events_never_move_the_clock_back(ua: RegionSet) -> None:
    sim = Sim(ua)
    sim.tick(100)
    out = sim.send(detection("A", 50, *NEAR_KHARKIV, weapon="shahed-136", heading_deg=230))
    assert out and {t.time for t in out} == {sim.engine.clock}
    assert at(100).startswith(out[0].time.strftime("%Y-%m-%dT%H:%M:%S"))
    sim.drain()
    times = [t.time for t in sim.all]
    assert times == sorted(times)


def test_events_too_far_in_the_future_are_rejected(ua: RegionSet) -> None:
    sim = Sim(ua, Policy(max_future_s=300))
    sim.tick(0)
    before = sim.ledger.log.max_seq()
    with pytest.raises(ValidationError) as info:
        sim.send(detection("A", 301, *KHARKIV))
    assert info.value.errors[0].field == "time"
    assert "ahead of the clock" in info.value.errors[0].reason
    assert sim.ledger.log.max_seq() == before
    assert sim.send(detection("A", 299, *KHARKIV))


def test_unknown_weapon_falls_back_to_class_defaults(ua: RegionSet) -> None:
    sim = Sim(ua)
    (res,) = sim.ledger.submit([detection("A", 0, *KHARKIV, weapon="foo-9")])
    assert res.transitions
    assert any("foo-9" in n and "drone" in n for n in res.notes), res.notes
    assert sim.engine.tracks["A"].weapon_id == "default-drone"


def test_duplicate_events_are_no_ops(ua: RegionSet) -> None:
    sim = Sim(ua)
    raw = detection("A", 0, *KHARKIV, weapon="shahed-136")
    (first,) = sim.ledger.submit([raw])
    size = sim.ledger.log.max_seq()
    (again,) = sim.ledger.submit([raw])
    assert again.duplicate and again.seq == first.seq and not again.transitions
    assert sim.ledger.log.max_seq() == size


def test_a_bad_batch_applies_nothing(ua: RegionSet) -> None:
    sim = Sim(ua)
    good = detection("A", 0, *KHARKIV)
    bad = detection("B", 0, 95.0, 36.0)
    with pytest.raises(ValidationError) as info:
        sim.ledger.submit([good, bad])
    assert [str(e) for e in info.value.errors] == [
        "[1].position.lat: out of range: 95.0 (expected -90 <= position.lat <= 90)"
    ]
    assert sim.ledger.log.max_seq() == 0 and not sim.engine.tracks


def test_carrier_threatens_by_what_it_launches(ua: RegionSet) -> None:
    # A MiG-31K taking off from Savasleyka, ~1,000 km from Kyiv: Kinzhal reach covers Ukraine.
    out = Sim(ua).send(detection("M1", 0, 55.44, 42.31, object="aircraft", weapon="mig-31k",
                                 phase="launch"))
    regions = {t.region for t in of(out, "alert_started")}
    kyiv = ua.locate(50.45, 30.52)
    assert kyiv in regions
    assert len(regions) > 0.8 * len(ua.leaves)
