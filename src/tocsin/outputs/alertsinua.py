"""The alerts.in.ua view of tocsin's alerts: locations by uid, A/P/N statuses, rolled-up alerts.

tocsin decides alerts at the leaves of its region set (hromadas); alerts.in.ua lists an alert
per *location*: a whole oblast when all of it is under alert, else a whole raion, else a hromada.
`AlertsInUaView` keeps that roll-up incrementally from transitions, per alert type:

- A leaf under alert is *reported* by the coarsest location (a region with an alerts.in.ua uid)
  on its chain that is wholly under alert; when none is (the leaf itself has no uid, e.g. in
  Crimea or the Chornobyl zone), by the nearest location above it, marked `calculated: true`:
  warning a little too widely is the safe error.
- A reported location is one alerts.in.ua alert, numbered in the order alerts appear (so the
  same log always gives the same ids), `started_at` the time of the decision that made it
  appear; it ends (and goes to the history) when no leaf reports through it any more. An oblast
  that becomes whole therefore ends its raions' and hromadas' alerts and starts one oblast
  alert, as alerts.in.ua shows it. The transitions of one event are rolled up together.
- Status letters per location (air raid only): `A` when every leaf under it is under alert, `P`
  when some are, `N` when none; with levels (the v2 API), `A` is `R` when any of its leaves is at
  severity alert or imminent and `Y` when all are at pre_alert.

Everything here is a pure function of the transitions folded in; the clock (read only to date
the latest change, for `Last-Modified`) is an argument.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, Final

from tocsin.geo import RegionSet
from tocsin.model import ALERT_TYPES, parse_time

__all__ = [
    "HISTORY_KEEP",
    "PERIODS",
    "AlertsInUaView",
    "Location",
    "api_time",
    "bundled_locations",
    "meta_time",
]

AIR_RAID: Final = "air_raid"
RED: Final = frozenset({"alert", "imminent"})
PERIODS: Final[Mapping[str, timedelta]] = {
    "day_ago": timedelta(days=1),
    "week_ago": timedelta(days=7),
    "month_ago": timedelta(days=30),
}
HISTORY_KEEP: Final = timedelta(days=31)
_LEVEL_TYPES: Final[Mapping[str, str]] = {"oblast": "oblast", "raion": "raion",
                                          "hromada": "hromada"}


def api_time(dt: datetime) -> str:
    """alerts.in.ua's timestamp form: `2023-04-15T08:30:00.000Z` (UTC, milliseconds)."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def meta_time(dt: datetime) -> str:
    """alerts.in.ua's `meta.last_updated_at` form: `2023/04/15 08:40:00 +0000`."""
    return dt.astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S +0000")


@cache
def bundled_locations() -> dict[str, Any]:
    """The bundled uid table (`outputs/data/alerts_in_ua_locations.json`)."""
    text = resources.files("tocsin.outputs").joinpath("data/alerts_in_ua_locations.json")
    data: dict[str, Any] = json.loads(text.read_text("utf-8"))
    return data


@dataclass(frozen=True, slots=True)
class Location:
    """A region that alerts.in.ua knows by uid."""

    uid: int
    region: str
    title: str
    type: str
    oblast: int
    raion: int | None


@dataclass(slots=True)
class _Item:
    id: int
    alert_type: str
    region: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    calculated: bool = False
    level: str | None = None


class _TypeState:
    """The roll-up of one alert type."""

    __slots__ = ("alerted", "count", "items", "red", "refs", "rep")

    def __init__(self) -> None:
        self.alerted: dict[str, str] = {}  # leaf -> severity
        self.count: Counter[str] = Counter()  # location region -> leaves under alert
        self.red: Counter[str] = Counter()  # location region -> leaves at alert or imminent
        self.rep: dict[str, str] = {}  # leaf -> the location that reports it
        self.refs: dict[str, set[str]] = {}  # location -> leaves it reports
        self.items: dict[str, _Item] = {}  # location -> its open alert


class AlertsInUaView:
    """alerts.in.ua-shaped alerts and statuses, kept from transitions (see the module doc)."""

    # its state, for `tocsin.snapshots`
    SNAPSHOT_FIELDS = ("types", "history", "changed_at", "last_seq", "_next_id", "_batch_cause",
                       "_batch_time", "_pending", "_updated")

    def __init__(
        self,
        regions: RegionSet,
        *,
        clock: Callable[[], datetime],
        locations: Mapping[str, Any] | None = None,
        notes: str | None = None,
    ) -> None:
        data = locations if locations is not None else bundled_locations()
        self.notes = notes  # every alert's `notes` (a drill says so there)
        known: Mapping[str, Mapping[str, Any]] = data.get("locations", {})
        self.regions = regions
        self.clock = clock
        self.locations: dict[int, Location] = {}
        self.by_region: dict[str, Location] = {}
        for region in regions.regions.values():
            if region.alerts_uid is None:
                continue
            uid_chain = [r for r in regions.chain(region.id) if r.alerts_uid is not None]
            top = uid_chain[-1]
            raion = next((r for r in uid_chain[1:] if r.level == "raion"), None)
            info = known.get(str(region.alerts_uid), {})
            loc = Location(
                uid=region.alerts_uid,
                region=region.id,
                title=str(info.get("title") or region.names.get("uk") or region.name),
                type=str(info.get("type") or _LEVEL_TYPES.get(region.level, region.level)),
                oblast=int(top.alerts_uid or 0),
                raion=None if raion is None else raion.alerts_uid,
            )
            self.locations[loc.uid] = loc
            self.by_region[region.id] = loc
        order = [int(u) for u in data.get("oblast_order", ())]
        self.oblast_order: tuple[int | None, ...] = tuple(
            u if u in self.locations else None for u in order
        )
        self.length = max(self.locations, default=-1) + 1
        # Per leaf: the locations on its chain, finest first.
        self.chain: dict[str, tuple[str, ...]] = {
            leaf: tuple(r.id for r in regions.chain(leaf) if r.id in self.by_region)
            for leaf in regions.leaves
        }
        self.total = {rid: len(regions.leaves_under(rid)) for rid in self.by_region}
        self.types: dict[str, _TypeState] = {t: _TypeState() for t in ALERT_TYPES}
        self.history: dict[int, deque[_Item]] = {}
        self.changed_at = clock()
        self.last_seq = 0
        self._next_id = 0
        self._batch_cause = 0
        self._batch_time: datetime | None = None
        self._pending: dict[str, set[str]] = {}
        self._updated: set[tuple[str, str]] = set()

    # --- feeding -------------------------------------------------------------------------------

    def apply(self, t: Mapping[str, Any]) -> None:
        """Fold in one transition (as its JSON object).

        The transitions of one event are one decision: alerts are rolled up once all of them
        are in (at the next event's transition, or the next read), so a roll-up never shows a
        hromada alert that lasted no time on the way to an oblast one.
        """
        seq = int(t["seq"])
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        cause = int(t.get("cause_seq") or seq)
        if cause != self._batch_cause:
            self.flush()
        kind = t["type"]
        atype = t.get("alert_type")
        if kind not in ("alert_started", "alert_updated", "alert_ended") or atype not in self.types:
            return
        leaf = str(t["region"])
        chain = self.chain.get(leaf)
        if not chain:
            return
        st = self.types[atype]
        was_red = st.alerted.get(leaf) in RED
        if kind == "alert_ended" and leaf not in st.alerted:
            return
        self.changed_at = self.clock()
        self._batch_cause, self._batch_time = cause, parse_time(t["time"])
        before = [st.count[u] == self.total[u] for u in chain]
        if kind == "alert_ended":
            del st.alerted[leaf]
            for u in chain:
                st.count[u] -= 1
                st.red[u] -= was_red
        else:
            fresh = leaf not in st.alerted
            st.alerted[leaf] = severity = str(t.get("severity"))
            delta = (severity in RED) - (not fresh and was_red)
            for u in chain:
                st.count[u] += fresh
                st.red[u] += delta
        after = [st.count[u] == self.total[u] for u in chain]
        changed = [u for u, b, a in zip(chain, before, after, strict=True) if b != a]
        pending = self._pending.setdefault(atype, set())
        pending.add(leaf)
        if changed:
            pending.update(self.regions.leaves_under(changed[-1]))
        if kind == "alert_updated":
            self._updated.add((atype, leaf))

    def apply_many(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        """Fold in published envelopes (live, and from the log on start)."""
        for env in envelopes:
            self.apply(env)
        self.flush()

    def flush(self) -> None:
        """Roll up what the transitions folded in since the last flush changed."""
        when = self._batch_time
        if when is None:
            return
        for atype, leaves in sorted(self._pending.items()):
            st = self.types[atype]
            for leaf in sorted(leaves):
                self._report(st, leaf, when, atype)
        for atype, leaf in self._updated:
            rep = self.types[atype].rep.get(leaf)
            if rep is not None:
                self.types[atype].items[rep].updated_at = when
        self._pending.clear()
        self._updated.clear()
        self._batch_time = None

    def _report(self, st: _TypeState, leaf: str, when: datetime, atype: str) -> None:
        old = st.rep.get(leaf)
        new: str | None = None
        whole: list[str] = []
        if leaf in st.alerted:
            chain = self.chain[leaf]
            whole = [u for u in chain if st.count[u] == self.total[u]]
            new = whole[-1] if whole else chain[0]
        if new == old:
            return
        if old is not None:
            del st.rep[leaf]
            leaves = st.refs[old]
            leaves.discard(leaf)
            if not leaves:
                del st.refs[old]
                item = st.items.pop(old)
                item.finished_at = item.updated_at = when
                self._finish(item)
        if new is None:
            return
        st.rep[leaf] = new
        if new in st.refs:
            st.refs[new].add(leaf)
            st.items[new].updated_at = max(st.items[new].updated_at, when)
        else:
            st.refs[new] = {leaf}
            self._next_id += 1
            st.items[new] = _Item(self._next_id, atype, new, when, when, calculated=not whole)

    def _finish(self, item: _Item) -> None:
        oblast = self.by_region[item.region].oblast
        kept = self.history.setdefault(oblast, deque())
        kept.append(item)
        assert item.finished_at is not None
        while kept and kept[0].finished_at is not None and (
            kept[0].finished_at < item.finished_at - HISTORY_KEEP
        ):
            kept.popleft()

    # --- reading -------------------------------------------------------------------------------

    def status(self, uid: int, *, levels: bool = False) -> str:
        """The air-raid status letter of one location (`N` for one not known here)."""
        self.flush()
        loc = self.locations.get(uid)
        if loc is None:
            return "N"
        st = self.types[AIR_RAID]
        n = st.count[loc.region]
        if n == 0:
            return "N"
        if n < self.total[loc.region]:
            return "P"
        if not levels:
            return "A"
        return "R" if st.red[loc.region] else "Y"

    def statuses(self, *, levels: bool = False) -> str:
        """Every location's letter, indexed by uid (a space where no location has that uid)."""
        chars = [" "] * self.length
        for uid in self.locations:
            chars[uid] = self.status(uid, levels=levels)
        return "".join(chars)

    def by_oblast(self, *, levels: bool = False) -> str:
        """The 27 first-level units' letters in alerts.in.ua's fixed order."""
        return "".join("N" if u is None else self.status(u, levels=levels)
                       for u in self.oblast_order)

    def active(self) -> list[dict[str, Any]]:
        """Every open alert, as alerts.in.ua lists them (oldest first)."""
        self.flush()
        items = [i for st in self.types.values() for i in st.items.values()]
        return [self._json(i) for i in sorted(items, key=lambda i: (i.started_at, i.id))]

    def region_history(self, uid: int, since: datetime) -> list[dict[str, Any]] | None:
        """Alerts of a location (itself, inside it or wholly covering it) that were open at or
        after `since`, the open ones included; None for an unknown uid."""
        self.flush()
        loc = self.locations.get(uid)
        if loc is None:
            return None
        related = set(self.regions.leaves_under(loc.region))
        above = {r.id for r in self.regions.chain(loc.region)}

        def near(item: _Item) -> bool:
            if item.region in above:
                return True
            return any(x in related for x in self.regions.leaves_under(item.region)[:1])

        found = [i for i in self.history.get(loc.oblast, ())
                 if i.finished_at is not None and i.finished_at >= since and near(i)]
        found += [i for st in self.types.values() for i in st.items.values()
                  if self.by_region[i.region].oblast == loc.oblast and near(i)]
        return [self._json(i) for i in sorted(found, key=lambda i: (i.started_at, i.id))]

    def _json(self, item: _Item) -> dict[str, Any]:
        loc = self.by_region[item.region]
        oblast = self.locations[loc.oblast]
        out: dict[str, Any] = {
            "id": item.id,
            "location_title": loc.title,
            "location_type": loc.type,
            "started_at": api_time(item.started_at),
            "finished_at": None if item.finished_at is None else api_time(item.finished_at),
            "updated_at": api_time(item.updated_at),
            "alert_type": item.alert_type,
            "location_uid": str(loc.uid),
            "location_oblast": oblast.title,
            "location_oblast_uid": oblast.uid,
        }
        if loc.type == "hromada" and loc.raion is not None:
            out["location_raion"] = self.locations[loc.raion].title
        out["notes"] = self.notes
        out["country"] = None
        calculated = item.calculated
        if item.finished_at is None:
            st = self.types[item.alert_type]
            calculated = st.count[item.region] < self.total[item.region]
            red = any(st.alerted.get(x) in RED for x in st.refs.get(item.region, ()))
            out["alert_level"] = "red" if red else "yellow"
        out["calculated"] = True if calculated else None
        return out
