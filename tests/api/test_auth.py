"""The auth matrix: every write endpoint × every role, and the key lifecycle."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import LVIV_OBLAST, Api, sample_event
from tocsin.api.auth import EVENT_ROLES
from tocsin.trust import ROLE_EVENTS

pytestmark = pytest.mark.anyio

ROLES: tuple[str | None, ...] = (None, "reader", "sensor", "fusion", "operator", "admin")
# who may send each event type over HTTP (siren_status also comes from the in-process gateway)
SENDERS = {
    "detection": {"sensor", "fusion", "admin"},
    "impact": {"sensor", "fusion", "admin"},
    "track_end": {"sensor", "fusion", "operator", "admin"},
    "operator_alert": {"operator", "admin"},
    "threat_level": {"operator", "admin"},
    "siren_status": {"admin"},
}
ADMIN_ONLY = {"admin"}


def expected(role: str | None, allowed: set[str], ok: int) -> int:
    if role is None:
        return 401
    return ok if role in allowed else 403


def test_every_event_type_has_a_row() -> None:
    assert set(EVENT_ROLES) == {"detection", "track_end", "impact", "siren_status",
                                "operator_alert", "threat_level"}
    assert {EVENT_ROLES[t] for t in ("detection", "track_end", "impact")} == {"sensor"}
    assert {EVENT_ROLES[t] for t in ("operator_alert", "threat_level")} == {"operator"}
    assert {etype: {r for r, types in ROLE_EVENTS.items() if etype in types} - {"gateway"}
            for etype in EVENT_ROLES} == SENDERS


@pytest.mark.parametrize("etype", sorted(EVENT_ROLES))
async def test_post_events_by_role(api: Api, etype: str) -> None:
    allowed = SENDERS[etype]
    for role in ROLES:
        before = await api.seq()
        r = await api.post(sample_event(etype), role=role)
        want = expected(role, allowed, 202)
        assert r.status_code == want, (etype, role, r.text)
        if want != 202:
            assert await api.seq() == before, (etype, role)
        if want == 401:
            assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_a_batch_needs_every_role_it_uses(api: Api) -> None:
    batch = [sample_event("detection"), sample_event("operator_alert")]
    for role in ("sensor", "operator"):
        assert (await api.post(batch, role=role)).status_code == 403
    assert (await api.seq()) == 0
    assert (await api.post(batch, role="admin")).status_code == 202


async def test_admin_endpoints_by_role(api: Api) -> None:
    admin = api.auth("admin")
    sub = {"url": "https://hooks.tocsin.invalid/hook", "regions": [LVIV_OBLAST]}

    async def existing_key() -> str:
        r = await api.client.post("/api/v1/keys", json={"role": "reader"}, headers=admin)
        key_id: str = r.json()["id"]
        return key_id

    async def existing_sub() -> str:
        r = await api.client.post("/api/v1/subscriptions", json=sub, headers=admin)
        sub_id: str = r.json()["id"]
        return sub_id

    calls: list[tuple[str, str, Any, int]] = [
        ("POST", "/api/v1/keys", {"role": "sensor", "name": "radar-7"}, 201),
        ("GET", "/api/v1/keys", None, 200),
        ("DELETE", "/api/v1/keys/{key}", None, 200),
        ("POST", "/api/v1/subscriptions", sub, 201),
        ("GET", "/api/v1/subscriptions", None, 200),
        ("DELETE", "/api/v1/subscriptions/{sub}", None, 200),
        ("GET", "/api/v1/subscriptions/{sub}/deliveries", None, 200),
    ]
    for method, template, body, ok in calls:
        for role in ROLES:
            path = template.format(key=await existing_key(), sub=await existing_sub())
            r = await api.client.request(method, path, json=body, headers=api.auth(role))
            assert r.status_code == expected(role, ADMIN_ONLY, ok), (method, path, role, r.text)


async def test_key_lifecycle_over_the_api(api: Api) -> None:
    admin = api.auth("admin")
    r = await api.client.post("/api/v1/keys", json={"role": "sensor", "name": "radar-7"},
                              headers=admin)
    assert r.status_code == 201
    created = r.json()
    key = created.pop("key")
    assert key.startswith("tk_")
    assert created["name"] == "radar-7" and created["role"] == "sensor"
    listed = (await api.client.get("/api/v1/keys", headers=admin)).json()["keys"]
    assert created in listed
    assert all("key" not in k and "hash" not in k for k in listed)
    # keys are stored hashed: the key itself is nowhere in admin.db
    assert key.encode() not in (api.service.settings.data_dir / "admin.db").read_bytes()

    ev = dict(sample_event("detection"), source="radar-7")  # a key may send as its name
    r = await api.client.post("/api/v1/events", json=ev, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202
    seq = r.json()["accepted"][0]["seq"]
    assert next(api.service.log.read(seq, seq)).key_name == "radar-7"

    r = await api.client.delete("/api/v1/keys/radar-7", headers=admin)
    assert r.status_code == 200
    r = await api.client.post("/api/v1/events", json=sample_event("detection"),
                              headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401
    assert (await api.client.delete("/api/v1/keys/radar-7", headers=admin)).status_code == 404
    r = await api.client.post("/api/v1/keys", json={"role": "root"}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "role"


async def test_subscription_validation(api: Api) -> None:
    admin = api.auth("admin")

    async def fields(body: dict[str, Any]) -> list[str]:
        r = await api.client.post("/api/v1/subscriptions", json=body, headers=admin)
        assert r.status_code == 422, r.text
        return [e["field"] for e in r.json()["errors"]]

    assert await fields({"url": "ftp://x", "regions": [LVIV_OBLAST]}) == ["url"]
    assert await fields({"url": "http://x/h"}) == ["regions"]
    assert await fields({"url": "http://x/h", "regions": ["nowhere"],
                         "alert_types": ["air_raid", "flood"]}) == ["regions[0]",
                                                                   "alert_types[1]"]
    assert await fields({"url": "http://x/h", "regions": [LVIV_OBLAST], "radius_km": 5}) == [
        "radius_km"]
    r = await api.client.post("/api/v1/subscriptions", headers=admin, json={
        "url": "http://x/h", "point": {"lat": 49.84, "lon": 24.03}, "radius_km": 30,
        "alert_types": ["air_raid"]})
    assert r.status_code == 201
    body = r.json()
    assert body["secret"] and body["point"] == {"lat": 49.84, "lon": 24.03}
    listed = (await api.client.get("/api/v1/subscriptions", headers=admin)).json()
    assert all("secret" not in s for s in listed["subscriptions"])
    r = await api.client.get("/api/v1/subscriptions/nope/deliveries", headers=admin)
    assert r.status_code == 404
    assert (await api.client.delete("/api/v1/subscriptions/nope", headers=admin)).status_code == 404


async def test_request_errors_share_one_format(api: Api) -> None:
    admin = api.auth("admin")
    r = await api.client.post("/api/v1/subscriptions", headers=admin,
                              json={"regions": [1], "point": {"lat": 200}})
    assert r.status_code == 422
    body = r.json()
    assert body["detail"] == "invalid input"
    assert [e["field"] for e in body["errors"]] == ["url", "regions[0]", "point.lat", "point.lon"]
    r = await api.client.post("/api/v1/keys", content=b"{",
                              headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "(body)"
    r = await api.client.get("/api/v1/regions/locate", params={"lat": 1})
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "lon", "reason": "Field required"}]
