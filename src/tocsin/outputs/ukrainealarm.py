"""The api.ukrainealarm.com v3 view of tocsin's alerts (what Home Assistant's `ukraine_alarm`
integration and its client `uasiren` read).

Region ids are ukrainealarm's own (the bundled July 2022 `/api/v3/regions` list), which are the
same numbers as alerts.in.ua's location uids, so this view reads the alerts.in.ua roll-up
(`AlertsInUaView`): an alert declared for a whole oblast, raion or hromada there is that
region's alert here.

- `regions()`: the bundled hierarchy, `{"states": [{regionId, regionName, regionType: State,
  regionChildIds: [… District … Community]}]}`.
- `alerts()`: every region with an alert in force, `[{regionId, regionType, regionName,
  regionEngName, lastUpdate, activeAlerts: [{regionId, regionType, type, lastUpdate}]}]`.
- `alerts_of(id)`: one region (its own alerts and those of a region above it that covers it
  whole), with `activeAlerts` empty when none.

Alert types: `AIR`, `ARTILLERY`, `URBAN_FIGHTS`, `CHEMICAL`, `NUCLEAR`. Every region object
and alert carries `notes` (None, or the words marking a drill).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

from tocsin.outputs.alertsinua import AlertsInUaView, api_time

__all__ = ["TYPES", "UkraineAlarmView", "bundled_regions"]

TYPES: Final[Mapping[str, str]] = {
    "air_raid": "AIR",
    "artillery_shelling": "ARTILLERY",
    "urban_fights": "URBAN_FIGHTS",
    "chemical": "CHEMICAL",
    "nuclear": "NUCLEAR",
}
_KINDS: Final[Mapping[str, str]] = {"oblast": "State", "raion": "District",
                                    "hromada": "Community"}


@cache
def bundled_regions() -> dict[str, Any]:
    """The bundled `/api/v3/regions` answer (`outputs/data/ukrainealarm_regions.json`)."""
    text = resources.files("tocsin.outputs").joinpath("data/ukrainealarm_regions.json")
    data: dict[str, Any] = json.loads(text.read_text("utf-8"))
    return data


class UkraineAlarmView:
    """ukrainealarm v3 answers over an alerts.in.ua roll-up (see the module doc)."""

    def __init__(self, rollup: AlertsInUaView, regions: Mapping[str, Any] | None = None) -> None:
        self.rollup = rollup
        self.tree = regions if regions is not None else bundled_regions()
        self.names: dict[int, tuple[str, str]] = {}  # id -> (name, type), as ukrainealarm has
        stack = list(self.tree.get("states", ()))
        while stack:
            node = stack.pop()
            self.names[int(node["regionId"])] = (str(node["regionName"]),
                                                 str(node["regionType"]))
            stack.extend(node.get("regionChildIds") or ())

    def regions(self) -> Mapping[str, Any]:
        """The `/api/v3/regions` answer."""
        return self.tree

    def known(self, region_id: str) -> bool:
        """Whether `region_id` is a ukrainealarm region this server can answer for."""
        return (region_id.isdecimal() and int(region_id) in self.names
                and int(region_id) in self.rollup.locations)

    def _region(self, uid: int) -> dict[str, Any]:
        loc = self.rollup.locations[uid]
        name, kind = self.names.get(uid, (loc.title, _KINDS.get(loc.type, "Null")))
        region = self.rollup.regions.get(loc.region)
        return {"regionId": str(uid), "regionType": kind, "regionName": name,
                "regionEngName": region.names.get("en") or None}

    def _alert(self, uid: int, alert_type: str, updated: str) -> dict[str, Any]:
        return {"regionId": str(uid), "regionType": self._region(uid)["regionType"],
                "type": TYPES[alert_type], "lastUpdate": updated, "notes": self.rollup.notes}

    def _open(self) -> list[tuple[int, str, str]]:
        """Every alert in force: (location uid, alert type, last update), oldest first."""
        self.rollup.flush()
        found = []
        for atype, st in self.rollup.types.items():
            for region, item in st.items.items():
                uid = self.rollup.by_region[region].uid
                found.append((item.started_at, uid, atype, api_time(item.updated_at)))
        found.sort()
        return [(uid, atype, updated) for _, uid, atype, updated in found]

    def alerts(self) -> list[dict[str, Any]]:
        """The `/api/v3/alerts` answer: each region with an alert of its own in force."""
        by_region: dict[int, list[dict[str, Any]]] = {}
        for uid, atype, updated in self._open():
            by_region.setdefault(uid, []).append(self._alert(uid, atype, updated))
        return [self._wrap(uid, found) for uid, found in by_region.items()]

    def alerts_of(self, region_id: str) -> list[dict[str, Any]]:
        """The `/api/v3/alerts/{regionId}` answer (call `known` first)."""
        uid = int(region_id)
        above = {r.id for r in self.rollup.regions.chain(self.rollup.locations[uid].region)}
        found = [self._alert(u, atype, updated) for u, atype, updated in self._open()
                 if self.rollup.locations[u].region in above]
        return [self._wrap(uid, found)]

    def _wrap(self, uid: int, found: list[dict[str, Any]]) -> dict[str, Any]:
        last = max((a["lastUpdate"] for a in found), default=None)
        return {**self._region(uid), "lastUpdate": last, "activeAlerts": found,
                "notes": self.rollup.notes}
