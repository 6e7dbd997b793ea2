"""The auth matrix over every route of the app: each role against each endpoint.

Under `--private`, every endpoint is in exactly one class (the table below must name every
route the app has, so a new route without a row fails here):

- `open`: liveness, readiness, metrics, the API description and the dashboard's static shell
  (no data): anyone, no key;
- `reader`: every read of data: any valid key, `401` without one;
- `key`: who-am-I, which needs a key even in public mode;
- `sensor` (`POST /api/v1/events` with a detection), `operator` (CAP import, siren tests),
  `admin` (keys, subscriptions): `401` without a key, `403` with a key of another role.

A malformed or unknown key is `401` everywhere but on `open` routes. In public mode (the
default) reads are open but the rest of the matrix holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from tests.api.helpers import LVIV, LVIV_OBLAST, Api, FakeClock, running, sample_event

pytestmark = pytest.mark.anyio

ROLES: tuple[str | None, ...] = (None, "reader", "sensor", "operator", "admin")
ALLOWED = {
    "key": {"reader", "sensor", "operator", "admin"},
    "reader": {"reader", "sensor", "operator", "admin"},
    "sensor": {"sensor", "admin"},
    "operator": {"operator", "admin"},
    "admin": {"admin"},
}
CAP = (b'<?xml version="1.0" encoding="UTF-8"?>'
       b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier></alert>')

# (method, route) -> (class, concrete path, JSON body or raw bytes)
MATRIX: dict[tuple[str, str], tuple[str, str, Any]] = {
    ("GET", "/healthz"): ("open", "/healthz", None),
    ("GET", "/readyz"): ("open", "/readyz", None),
    ("GET", "/metrics"): ("open", "/metrics", None),
    ("GET", "/openapi.json"): ("open", "/openapi.json", None),
    ("GET", "/docs"): ("open", "/docs", None),
    ("GET", "/docs/oauth2-redirect"): ("open", "/docs/oauth2-redirect", None),
    ("GET", "/redoc"): ("open", "/redoc", None),
    ("GET", "/"): ("open", "/", None),
    ("GET", "/sw.js"): ("open", "/sw.js", None),
    ("GET", "/manifest.webmanifest"): ("open", "/manifest.webmanifest", None),
    ("GET", "/static"): ("open", "/static/js/main.js", None),
    ("POST", "/api/v1/events"): ("sensor", "/api/v1/events", "detection"),
    ("GET", "/api/v1/alerts/active"): ("reader", "/api/v1/alerts/active", None),
    ("GET", "/api/v1/alerts"): ("reader", "/api/v1/alerts", None),
    ("GET", "/api/v1/regions"): ("reader", "/api/v1/regions", None),
    ("GET", "/api/v1/regions/locate"): (
        "reader", f"/api/v1/regions/locate?lat={LVIV[0]}&lon={LVIV[1]}", None),
    ("GET", "/api/v1/regions/{region_id}"): ("reader", f"/api/v1/regions/{LVIV_OBLAST}", None),
    ("GET", "/api/v1/regions/{region_id}/recent"): (
        "reader", f"/api/v1/regions/{LVIV_OBLAST}/recent", None),
    ("GET", "/api/v1/tracks/active"): ("reader", "/api/v1/tracks/active", None),
    ("GET", "/api/v1/levels"): ("reader", "/api/v1/levels", None),
    ("GET", "/api/v1/stream"): ("reader", "/api/v1/stream", None),
    ("GET", "/api/v1/keys"): ("admin", "/api/v1/keys", None),
    ("POST", "/api/v1/keys"): ("admin", "/api/v1/keys", {"role": "reader", "name": "new"}),
    ("DELETE", "/api/v1/keys/{key_id}"): ("admin", "/api/v1/keys/{key}", None),
    ("GET", "/api/v1/subscriptions"): ("admin", "/api/v1/subscriptions", None),
    ("POST", "/api/v1/subscriptions"): (
        "admin", "/api/v1/subscriptions",
        {"url": "http://h.invalid/h", "regions": [LVIV_OBLAST]}),
    ("DELETE", "/api/v1/subscriptions/{sub_id}"): ("admin", "/api/v1/subscriptions/{sub}", None),
    ("GET", "/api/v1/subscriptions/{sub_id}/deliveries"): (
        "admin", "/api/v1/subscriptions/{sub}/deliveries", None),
    ("GET", "/api/v1/log/key"): ("reader", "/api/v1/log/key", None),
    ("GET", "/api/v1/log/sth"): ("reader", "/api/v1/log/sth", None),
    ("GET", "/api/v1/log/sths"): ("reader", "/api/v1/log/sths", None),
    ("GET", "/api/v1/log/cosignatures"): ("reader", "/api/v1/log/cosignatures?tree_size=0", None),
    # authenticated by the witness's own signature (see docs/transparency.md)
    ("POST", "/api/v1/log/cosignatures"): ("reader", "/api/v1/log/cosignatures", {}),
    ("GET", "/api/v1/log/entries"): ("reader", "/api/v1/log/entries?start=0&end=1", None),
    ("GET", "/api/v1/log/proof/inclusion"): (
        "reader", "/api/v1/log/proof/inclusion?index=0&tree_size=1", None),
    ("GET", "/api/v1/log/proof/consistency"): (
        "reader", "/api/v1/log/proof/consistency?first=1&second=1", None),
    ("GET", "/api/v1/audit/impacts"): ("reader", "/api/v1/audit/impacts", None),
    ("GET", "/api/v1/audit/report"): ("reader", "/api/v1/audit/report", None),
    ("GET", "/api/v1/cluster"): ("reader", "/api/v1/cluster", None),
    ("GET", "/api/v1/cluster/rejected"): ("reader", "/api/v1/cluster/rejected", None),
    ("GET", "/api/v1/cluster/event"): ("reader", "/api/v1/cluster/event?source=s&id=x", None),
    ("GET", "/api/v1/map/regions"): ("reader", "/api/v1/map/regions", None),
    ("GET", "/api/v1/info"): ("reader", "/api/v1/info", None),
    ("GET", "/api/v1/whoami"): ("key", "/api/v1/whoami", None),
    ("POST", "/api/v1/stream/ticket"): ("key", "/api/v1/stream/ticket", None),
    ("GET", "/api/v1/incidents"): ("reader", "/api/v1/incidents", None),
    ("GET", "/cap/feed.atom"): ("reader", "/cap/feed.atom", None),
    ("GET", "/cap/signing-key.pem"): ("reader", "/cap/signing-key.pem", None),
    ("GET", "/cap/{identifier}.xml"): ("reader", "/cap/x.xml", None),
    ("POST", "/api/v1/cap"): ("operator", "/api/v1/cap", CAP),
    ("GET", "/v1/alerts/active.json"): ("reader", "/v1/alerts/active.json", None),
    ("GET", "/v1/regions/{uid}/alerts/{period}.json"): (
        "reader", "/v1/regions/31/alerts/week_ago.json", None),
    ("GET", "/v1/iot/active_air_raid_alerts/{uid}.json"): (
        "reader", "/v1/iot/active_air_raid_alerts/31.json", None),
    ("GET", "/v1/iot/active_air_raid_alerts_by_oblast.json"): (
        "reader", "/v1/iot/active_air_raid_alerts_by_oblast.json", None),
    ("GET", "/v1/iot/active_air_raid_alerts.json"): (
        "reader", "/v1/iot/active_air_raid_alerts.json", None),
    ("GET", "/v2/iot/active_air_raid_alerts/{uid}.json"): (
        "reader", "/v2/iot/active_air_raid_alerts/31.json", None),
    ("GET", "/v2/iot/active_air_raid_alerts_by_oblast.json"): (
        "reader", "/v2/iot/active_air_raid_alerts_by_oblast.json", None),
    ("GET", "/v2/iot/active_air_raid_alerts.json"): (
        "reader", "/v2/iot/active_air_raid_alerts.json", None),
    ("GET", "/api/v1/sirens"): ("reader", "/api/v1/sirens", None),
    ("POST", "/api/v1/sirens/{siren_id}/test"): ("operator", "/api/v1/sirens/s-1/test", None),
    ("POST", "/api/v1/sirens"): (
        "admin", "/api/v1/sirens", [{"id": "m-1", "lat": LVIV[0], "lon": LVIV[1]}]),
    ("DELETE", "/api/v1/sirens/{siren_id}"): ("admin", "/api/v1/sirens/m-1", None),
    ("HEAD", "/cap/feed.atom"): ("reader", "/cap/feed.atom", None),
    ("HEAD", "/cap/{identifier}.xml"): ("reader", "/cap/x.xml", None),
    ("GET", "/api/v3/regions"): ("reader", "/api/v3/regions", None),
    ("GET", "/api/v3/alerts"): ("reader", "/api/v3/alerts", None),
    ("GET", "/api/v3/alerts/status"): ("reader", "/api/v3/alerts/status", None),
    ("GET", "/api/v3/alerts/{region_id}"): ("reader", "/api/v3/alerts/31", None),
    ("GET", "/WarningMessages/alert/alerts.json"): (
        "reader", "/WarningMessages/alert/alerts.json", None),
    ("GET", "/WarningMessages/alert/History/AlertsHistory.json"): (
        "reader", "/WarningMessages/alert/History/AlertsHistory.json", None),
}


def app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, schema or not (HEAD folded into GET)."""
    out: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for r in routes:
            if isinstance(r, Mount):
                out.add(("GET", r.path))
            elif isinstance(r, APIRoute | Route):
                for m in r.methods or ():
                    if m != "HEAD":
                        out.add((m, r.path))
            # a router included in the app (FastAPI keeps the original router inside)
            sub = getattr(getattr(r, "original_router", r), "routes", None)
            if sub is not None and not isinstance(r, Mount):
                walk(sub)

    walk(app.routes)
    for path, ops in app.openapi()["paths"].items():  # routers included as a whole
        for method in ops:
            out.add((method.upper(), path))
    return out


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def private(tmp_path: Path) -> AsyncIterator[Api]:
    # hundreds of deliberate bad keys from one address: give failures a budget to match
    async with running(tmp_path / "data", FakeClock(), private=True, rate_limit=1e6,
                       rate_burst=1_000_000, auth_fail_burst=1_000_000) as api:
        yield api


async def call(api: Api, method: str, path: str, body: Any, headers: dict[str, str]) -> int:
    """The status of one request; the stream is opened and closed as a client would."""
    if "{key}" in path:
        r = await api.client.post("/api/v1/keys", json={"role": "reader"},
                                  headers=api.auth("admin"))
        path = path.format(key=r.json()["id"])
    if "{sub}" in path:
        r = await api.client.post("/api/v1/subscriptions", headers=api.auth("admin"),
                                  json={"url": "http://h.invalid/h", "regions": [LVIV_OBLAST]})
        path = path.format(sub=r.json()["id"])
    if path == "/api/v1/stream":
        async with api.stream(headers=headers) as stream:
            assert stream.status is not None
            return stream.status
    if body == "detection":
        body = sample_event("detection")
    if isinstance(body, bytes):
        r = await api.client.request(method, path, content=body,
                                     headers={**headers, "Content-Type": "application/xml"})
    else:
        r = await api.client.request(method, path, json=body, headers=headers)
    assert r.status_code < 500 or r.status_code == 503, (method, path, r.status_code, r.text)
    return r.status_code


def test_the_matrix_names_every_route(tmp_path: Path) -> None:
    from tocsin.api import create_app
    from tocsin.config import Settings

    app = create_app(Settings(data_dir=tmp_path / "data"))
    routes = app_routes(app)
    assert routes == set(MATRIX), (
        f"routes without a row: {sorted(routes - set(MATRIX))}; "
        f"rows without a route: {sorted(set(MATRIX) - routes)}")


async def test_every_route_by_role_in_private_mode(private: Api) -> None:
    failures = []
    for (method, route), (access, path, body) in sorted(MATRIX.items()):
        for role in ROLES:
            status = await call(private, method, path, body, private.auth(role))
            if access == "open":
                ok = status not in (401, 403)
            elif role is None:
                ok = status == 401
            elif role in ALLOWED[access]:
                ok = status not in (401, 403)
            else:
                ok = status == 403
            if not ok:
                failures.append(f"{method} {route} as {role}: {status} ({access})")
    assert not failures, "\n".join(failures)


async def test_bad_keys_are_refused_on_every_route_but_open_ones(private: Api) -> None:
    failures = []
    for (method, route), (access, path, body) in sorted(MATRIX.items()):
        for header in ("Bearer tk_not_a_key", "Basic YWRtaW46YWRtaW4=", "Bearer ",
                       f"Bearer {private.keys['admin']}x"):
            status = await call(private, method, path, body, {"Authorization": header})
            if access != "open" and status != 401:
                failures.append(f"{method} {route} with {header!r}: {status}")
    assert not failures, "\n".join(failures)


async def test_public_mode_opens_reads_only(tmp_path: Path) -> None:
    async with running(tmp_path / "data", FakeClock(), rate_limit=1e6,
                       rate_burst=1_000_000) as api:
        failures = []
        for (method, route), (access, path, body) in sorted(MATRIX.items()):
            status = await call(api, method, path, body, {})
            want_open = access in ("open", "reader")
            if want_open == (status in (401, 403)):
                failures.append(f"{method} {route} without a key: {status} ({access})")
        assert not failures, "\n".join(failures)


async def test_revoked_keys_lose_every_right(private: Api) -> None:
    admin = private.auth("admin")
    r = await private.client.post("/api/v1/keys", json={"role": "admin", "name": "temp"},
                                  headers=admin)
    key = r.json()["key"]
    assert (await private.client.delete("/api/v1/keys/temp", headers=admin)).status_code == 200
    for (method, _route), (access, path, body) in sorted(MATRIX.items()):
        if access == "open":
            continue
        status = await call(private, method, path, body, {"Authorization": f"Bearer {key}"})
        assert status == 401, (method, path, status)
