"""The Israel Home Front Command (Pikud HaOref) view of tocsin's alerts, for a region set whose
areas carry their Hebrew labels (`name_he`), such as one built from the Home Front Command's
area list.

Two answers, in the shapes the public website serves and its clients read:

- `current()`: the body of `alerts.json`: `{"id", "cat", "title", "data": [area labels], "desc"}`
  for the areas under alert now, or None when there is none (served as an empty document).
  The website sends one category at a time; with several in force, the most urgent one is sent
  (rockets and missiles, then hostile infiltration, hazardous materials, radiological).
- `history()`: the alarms-history list, newest first: `{"alertDate": "YYYY-MM-DD HH:MM:SS"
  (Israel local time), "title", "data": one area label, "category"}` per area and start, over the
  last 24 hours (at most `keep` rows).

Categories follow the website's numbering where tocsin has a matching alert type:

| tocsin | `cat` / `category` | title |
|---|---|---|
| `air_raid`, `artillery_shelling` | 1 | ירי רקטות וטילים (rocket and missile fire) |
| `urban_fights` | 10 | חדירת מחבלים (hostile infiltration) |
| `chemical` | 7 | חומרים מסוכנים (hazardous materials) |
| `nuclear` | 4 | אירוע רדיולוגי (radiological event) |

The view is folded from transitions (pure); the clock is an argument of `history`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from tocsin.geo import RegionSet
from tocsin.model import parse_time

__all__ = ["CATEGORIES", "OrefView"]

ISRAEL: Final = ZoneInfo("Asia/Jerusalem")
CATEGORIES: Final[Mapping[str, tuple[int, str, str]]] = {
    # alert type -> (category, title, what to do)
    "air_raid": (1, "ירי רקטות וטילים", "היכנסו למרחב המוגן ושהו בו 10 דקות"),
    "artillery_shelling": (1, "ירי רקטות וטילים", "היכנסו למרחב המוגן ושהו בו 10 דקות"),
    "urban_fights": (10, "חדירת מחבלים", "היכנסו למבנה, נעלו את הדלתות וסגרו את החלונות"),
    "chemical": (7, "חומרים מסוכנים", "היכנסו למבנה וסגרו את הדלתות והחלונות"),
    "nuclear": (4, "אירוע רדיולוגי", "היכנסו למבנה וסגרו את הדלתות והחלונות"),
}
_URGENCY: Final = ("air_raid", "artillery_shelling", "urban_fights", "chemical", "nuclear")
_ALERTS: Final = frozenset({"alert_started", "alert_updated", "alert_ended"})
HISTORY_SPAN: Final = timedelta(hours=24)


class OrefView:
    """Pikud HaOref-shaped current alerts and history (see the module doc)."""

    SNAPSHOT_FIELDS = ("active", "history_rows", "last_seq")  # for `tocsin.snapshots`

    def __init__(self, regions: RegionSet, *, notes: str | None = None,
                 keep: int = 10_000) -> None:
        self.labels: dict[str, str] = {
            leaf: regions.get(leaf).names["he"] for leaf in regions.leaves
            if regions.get(leaf).names.get("he")
        }
        self.notes = notes
        self.active: dict[str, dict[str, int]] = {}  # alert type -> area -> seq it started
        self.history_rows: deque[tuple[datetime, str, str]] = deque(maxlen=keep)
        self.last_seq = 0

    @property
    def enabled(self) -> bool:
        """Whether the loaded region set has Home Front Command areas at all."""
        return bool(self.labels)

    def apply(self, t: Mapping[str, Any]) -> None:
        """Fold in one transition (as its JSON object)."""
        seq = int(t["seq"])
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        atype = t.get("alert_type")
        region = str(t["region"])
        if t["type"] not in _ALERTS or atype not in CATEGORIES or region not in self.labels:
            return
        areas = self.active.setdefault(str(atype), {})
        if t["type"] == "alert_ended":
            areas.pop(region, None)
        elif region not in areas:
            areas[region] = seq
            self.history_rows.append((parse_time(t["time"]), region, str(atype)))

    def apply_many(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        """Fold in published envelopes (live, and from the log on start)."""
        for env in envelopes:
            self.apply(env)

    def current(self) -> dict[str, Any] | None:
        """The `alerts.json` object of the most urgent category in force, or None."""
        for atype in _URGENCY:
            areas = self.active.get(atype)
            if not areas:
                continue
            cat, title, desc = CATEGORIES[atype]
            same = [a for t, found in self.active.items() if CATEGORIES[t][0] == cat
                    for a in found]
            newest = max(s for t, found in self.active.items() if CATEGORIES[t][0] == cat
                         for s in found.values())
            out: dict[str, Any] = {
                "id": str(newest), "cat": str(cat), "title": title,
                "data": sorted({self.labels[a] for a in same}),
                "desc": desc if self.notes is None else f"{self.notes}. {desc}",
            }
            if self.notes is not None:
                out["notes"] = self.notes
            return out
        return None

    def history(self, now: datetime) -> list[dict[str, Any]]:
        """The alarms-history list over the last 24 hours, newest first."""
        since = now - HISTORY_SPAN
        out = []
        for when, area, atype in reversed(self.history_rows):
            if when < since:
                break
            cat, title, _ = CATEGORIES[atype]
            row: dict[str, Any] = {
                "alertDate": when.astimezone(ISRAEL).strftime("%Y-%m-%d %H:%M:%S"),
                "title": title, "data": self.labels[area], "category": cat,
            }
            if self.notes is not None:
                row["notes"] = self.notes
            out.append(row)
        return out
