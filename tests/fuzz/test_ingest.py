"""Hostile bodies and query parameters through the HTTP API: never a `5xx`.

Valid events with one value swapped for something hostile (numbers of thousands of digits,
exponents past a double, nesting thousands deep, years 1 and 9999 with offsets, lone surrogates,
NaN), sent by an admin key so they reach every check, and the same values as query parameters of
the read endpoints that parse times and coordinates. Every answer must be below 500; the log
holds only what was answered `202`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import LVIV_HROMADA, NEAR_KHARKIV, Api, running

HOLE = '"@@HOLE@@"'
TEMPLATES: list[dict[str, Any]] = [
    {"id": "d", "type": "detection", "time": "2026-11-25T01:00:00Z", "source": "radar-1",
     "track": "T", "object": "drone", "weapon": "shahed-136", "heading_deg": 230,
     "speed_kmh": 180, "confidence": 0.5,
     "position": {"lat": NEAR_KHARKIV[0], "lon": NEAR_KHARKIV[1], "alt_m": 100}},
    {"id": "t", "type": "track_end", "time": "2026-11-25T01:00:00Z", "source": "radar-1",
     "track": "T", "reason": "lost"},
    {"id": "i", "type": "impact", "time": "2026-11-25T01:00:00Z", "source": "radar-1",
     "kind": "explosion", "position": {"lat": 49.84, "lon": 24.03}},
    {"id": "o", "type": "threat_level", "time": "2026-11-25T01:00:00Z", "source": "ops",
     "regions": [LVIV_HROMADA], "level": 1, "operator": "duty"},
]

HOSTILE = st.one_of(
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.integers(1, 2000).map(lambda n: "-0." + "1" * n),
    st.integers(-999, 999).map(lambda e: f"1e{e}"),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 1500).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from([
        '"\\ud800"', '"\\udfff-x"', '"0001-01-01T00:00:00+01:00"', '"9999-12-31T23:59:59-23:59"',
        '"1969-12-31T23:59:59Z"', '"2026-11-25T01:00:00"', '"2026-02-30T01:00:00Z"', "NaN",
        "Infinity", "-Infinity", "null", "true", "360", "360.0", "-0.0", "1e308", "[]", "{}",
        '""', '"' + "x" * 5000 + '"',
    ]),
    st.text(max_size=40).map(json.dumps),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**70), 2**70).map(str),
)
FIELDS = ["time", "id", "source", "track", "heading_deg", "speed_kmh", "confidence", "level",
          "regions", "position", "position.lat", "position.lon", "position.alt_m", "ext",
          "type", "reason", "kind"]


def _body(template: dict[str, Any], field: str, literal: str) -> str:
    ev: dict[str, Any] = json.loads(json.dumps(template))
    where, _, leaf = field.rpartition(".")
    target = ev.get(where) if where else ev
    if not isinstance(target, dict):
        target = ev
    target[leaf] = "@@HOLE@@"
    return json.dumps(ev).replace(HOLE, literal)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop,
                                                                     Api]]:
    loop = asyncio.new_event_loop()
    data: Path = tmp_path_factory.mktemp("fuzz-ingest") / "data"
    manager = running(data, None, rate_limit=1e9, rate_burst=10**9)
    api = loop.run_until_complete(manager.__aenter__())
    try:
        yield loop, api
    finally:
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(template=st.sampled_from(TEMPLATES), field=st.sampled_from(FIELDS), literal=HOSTILE,
       batch=st.booleans())
def test_hostile_event_bodies_get_no_server_error(
    live: tuple[asyncio.AbstractEventLoop, Api], template: dict[str, Any], field: str,
    literal: str, batch: bool,
) -> None:
    loop, api = live
    text = _body(template, field, literal)
    if batch:
        text = "[" + text + "]"
    r = loop.run_until_complete(api.client.post(
        "/api/v1/events", content=text.encode("utf-8", "surrogatepass"),
        headers={**api.auth("admin"), "content-type": "application/json"}))
    assert r.status_code < 500, (field, literal[:80], r.text[:300])
    assert r.status_code in (202, 403, 409, 413, 422), (r.status_code, r.text[:300])


@FUZZ
@given(path=st.sampled_from(["/api/v1/alerts?since=", "/api/v1/alerts?until=",
                             "/api/v1/log/sths?since=", "/api/v1/alerts/active?lon=30&lat=",
                             "/api/v1/alerts?limit="]),
       value=st.one_of(HOSTILE, st.text(max_size=60)))
def test_hostile_query_parameters_get_no_server_error(
    live: tuple[asyncio.AbstractEventLoop, Api], path: str, value: str
) -> None:
    loop, api = live
    from urllib.parse import quote

    r = loop.run_until_complete(api.client.get(path + quote(value, safe="")))
    assert r.status_code < 500, (path, value[:80], r.text[:300])
