"""The Pikud HaOref shape on a region set of Home Front Command areas, read by the real
`alarmpy` client and compared with the Oref feed fixtures."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import alarmpy.alarmpy
import httpx
import pytest
from alarmpy.alarmpy import Alarm

from tests import servers
from tocsin.model import format_time

SDEROT, ABU_GOSH = "248", "511"


def israel_geojson(shared_data: Path, out: Path) -> dict[str, dict[str, Any]]:
    """The Home Front Command areas as a GeoJSON region set file; the area list by id."""
    folder = shared_data / "israel_home_front_command"
    polygons = json.loads(gzip.decompress((folder / "pikud_haoref_polygons.json.gz").read_bytes()))
    cities = {str(c["id"]): c for c in
              json.loads((folder / "pikud_haoref_cities.json").read_text("utf-8"))}
    features = [{
        "type": "Feature",
        "properties": {"id": area, "shelter_s": cities.get(area, {}).get("countdown"),
                       "name_he": cities.get(area, {}).get("name"),
                       "name_en": cities.get(area, {}).get("name_en")},
        "geometry": {"type": "Polygon", "coordinates": [[[lng, lat] for lat, lng in vertices]]},
    } for area, vertices in polygons.items()]
    out.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return cities


@pytest.fixture
def oref_server(tmp_path: Path, shared_data: Path
                ) -> Iterator[tuple[str, str, dict[str, dict[str, Any]]]]:
    regions = tmp_path / "il-oref.geojson"
    cities = israel_geojson(shared_data, regions)
    data = tmp_path / "data"
    operator = servers.create_key("operator", "--data-dir", str(data), "--source", "console")
    port = servers.free_port()
    log_path = tmp_path / "serve.log"
    proc = servers.start_serve(["--data-dir", str(data), "--port", str(port), "--regions",
                                str(regions)], log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        servers.wait_ready(proc, base, log_path.read_text, timeout=120)
        yield base, operator, cities
    finally:
        servers.stop(proc)


def _raise(base: str, key: str, area: str, alert_type: str, n: int) -> None:
    r = httpx.post(base + "/api/v1/events", headers={"Authorization": f"Bearer {key}"},
                   json={"id": f"op-{n}", "type": "operator_alert",
                         "time": format_time(datetime.now(UTC)), "source": "console",
                         "regions": [area], "alert_type": alert_type, "action": "raise",
                         "operator": "duty"}, timeout=30)
    assert r.status_code == 202, r.text


@pytest.mark.serial
def test_alarmpy_reads_tocsin_and_history_matches_the_feed_fixtures(
    oref_server: tuple[str, str, dict[str, dict[str, Any]]], shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, operator, cities = oref_server
    monkeypatch.setattr(Alarm, "URL", base + "/WarningMessages/alert/alerts.json")
    # alarmpy's optional MQTT output predates paho-mqtt 2; run it as without paho installed
    monkeypatch.delattr(alarmpy.alarmpy, "mqtt", raising=False)
    alarm = Alarm(quiet=True)  # the real client, pointed at tocsin
    assert alarm.parse(alarm.fetch()) == ([], None)  # nothing in force: an empty document
    _raise(base, operator, SDEROT, "air_raid", 1)
    _raise(base, operator, ABU_GOSH, "air_raid", 2)
    _raise(base, operator, ABU_GOSH, "urban_fights", 3)
    areas, alarm_id = alarm.parse(alarm.fetch())
    assert sorted(areas) == sorted([cities[SDEROT]["name"], cities[ABU_GOSH]["name"]])
    assert alarm_id is not None
    raw = httpx.get(alarm.URL).content
    fixture = json.loads((shared_data / "israel_home_front_command" / "oref_alert_test_fixtures"
                          / "single_alert_real_time.json").read_text("utf-8"))
    current = json.loads(raw[3:-2])
    assert set(current) == set(fixture) and current["cat"] == fixture["cat"] == "1"
    assert current["title"] == fixture["title"]
    history = httpx.get(base + "/WarningMessages/alert/History/AlertsHistory.json").json()
    rows = json.loads((shared_data / "israel_home_front_command" / "oref_alert_test_fixtures"
                       / "multi_alerts_history.json").read_text("utf-8"))
    assert len(history) == 3
    for row in history:
        assert set(row) == set(rows[0])
        assert {type(v) for v in row.values()} <= {str, int}
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["alertDate"])
    assert [(r["data"], r["category"]) for r in history] == [
        (cities[ABU_GOSH]["name"], 10), (cities[ABU_GOSH]["name"], 1),
        (cities[SDEROT]["name"], 1)]


@pytest.mark.anyio
async def test_not_on_a_set_without_home_front_command_areas(start: Any) -> None:
    async with start() as api:  # the bundled Ukrainian hromadas
        for path in ("/WarningMessages/alert/alerts.json",
                     "/WarningMessages/alert/History/AlertsHistory.json"):
            r = await api.client.get(path)
            assert r.status_code == 404 and "Home Front Command" in r.json()["detail"]
