"""CAP 1.2 in: a CAP alert from another authority becomes an `operator_alert`.

`plan` decides, as a pure function of the message, the region set and what the log already holds,
which events one CAP message becomes; `import_cap` parses a document, plans each message and
submits the events through the service (so they are validated, logged and decided like any
operator's). The rules:

- **What is acted on.** `status` Actual always; Exercise only in an exercise deployment and Test
  only in a test one; System and Draft never. A message whose every `info` has expired is not
  acted on. Ack and Error messages are accepted and do nothing.
- **Where.** Per `area`: geocodes `KATOTTG` (a region id of the loaded set, any level) and
  `alerts.in.ua` (a location uid) name regions directly; an area with no such geocode is matched by
  its polygons and circles, which hit every leaf region whose geometry they overlap (touching along
  a border is not overlap). Leaves that make up a whole parent are named by the parent.
- **What kind.** Our own `eventCode` `tocsin:alert_type` wins; else the words of `event` and
  `headline` (English and Ukrainian) pick nuclear, chemical, urban_fights, artillery_shelling or
  air_raid; else category CBRNE is chemical; else air_raid.
- **Alert** raises: `operator` is `cap:<sender>`, the note is the headline (or the identifier),
  the event is `source` `cap:<sender>`, `id` the CAP identifier, so posting a message twice is a
  no-op. The CAP header is kept in the event as the extension field `cap`.
- **Update** raises the new area and clears what the messages it references raised and the new
  area no longer covers; **Cancel** clears what they raised. A clear touches only leaves whose
  alert of that type is held by this sender alone: an alert that a sensor track or another
  operator also holds stays on (the engine's clear is not per operator, and a foreign Cancel must
  not switch off tocsin's own warnings).

A message whose areas lie outside the loaded regions is accepted and covers no region.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from tocsin.engine.core import Engine
from tocsin.geo import RegionSet
from tocsin.model import ALERT_TYPES, format_time
from tocsin.outputs.cap import CapArea, CapMessage, areas_shapes, parse_all

if TYPE_CHECKING:
    from tocsin.service import Service

__all__ = [
    "ImportPlan",
    "RegionMatcher",
    "alert_type_of",
    "import_cap",
    "plan",
]

_ID_MAX: Final = 200
_UID_CODES: Final = frozenset({"alerts.in.ua", "alerts_in_ua", "alerts-in-ua", "alerts_in_ua_uid"})
# First match wins; checked against the lower-cased event and headline of every info.
_WORDS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("nuclear", ("nuclear", "radiolog", "radiation", "radioactiv", "радіац", "ядерн")),
    ("chemical", ("chemical", "toxic", "hazmat", "хімічн")),
    ("urban_fights", ("urban fight", "street fight", "вуличн")),
    ("artillery_shelling", ("artillery", "shelling", "артобстріл", "обстріл")),
    ("air_raid", ("air raid", "air-raid", "missile", "drone", "uav", "aircraft", "повітрян",
                  "ракет", "дрон", "бпла")),
)


def alert_type_of(msg: CapMessage) -> str:
    """The tocsin alert type a CAP message stands for (see the module docstring)."""
    for info in msg.infos:
        for name, value in info.event_codes:
            if name == "tocsin:alert_type" and value in ALERT_TYPES:
                return value
    text = " ".join(f"{i.event} {i.headline or ''}" for i in msg.infos).lower()
    for alert_type, words in _WORDS:
        if any(w in text for w in words):
            return alert_type
    if any("CBRNE" in i.categories for i in msg.infos):
        return "chemical"
    return "air_raid"


class RegionMatcher:
    """Regions a CAP area names (geocodes) or overlaps (polygons, circles)."""

    def __init__(self, regions: RegionSet) -> None:
        self.regions = regions
        self.by_uid = {
            str(r.alerts_uid): r.id for r in regions.regions.values() if r.alerts_uid is not None
        }
        ids = [leaf for leaf in regions.leaves if not regions.get(leaf).geometry.is_empty]
        self._ids = ids
        geoms = np.empty(len(ids), dtype=object)
        geoms[:] = [regions.get(leaf).geometry for leaf in ids]
        self._geoms = geoms
        self._tree = shapely.STRtree(geoms)

    def geocoded(self, area: CapArea) -> set[str]:
        """Regions the area's KATOTTG, alerts.in.ua and COD-AB geocodes name."""
        out: set[str] = set()
        for name, value in area.geocodes:
            key = name.strip().lower()
            value = value.strip()
            if key == "katottg" and value in self.regions:
                out.add(value)
            elif key in _UID_CODES and value in self.by_uid:
                out.add(self.by_uid[value])
            elif key == "cod-ab" and f"cod:{value}" in self.regions:
                out.add(f"cod:{value}")  # units with neither code (the Chornobyl zone)
        return out

    def overlapped(self, shape: BaseGeometry) -> set[str]:
        """Leaves whose geometry the shape overlaps (a shared border alone is not enough)."""
        if shape.is_empty:
            return set()
        found = self._tree.query(shape, predicate="intersects")
        return {
            self._ids[i] for i in found.tolist() if not shapely.touches(shape, self._geoms[i])
        }

    def area_regions(self, msg: CapMessage, area: CapArea) -> set[str]:
        """Regions of one area: its geocodes when it has ones we know, else its shapes."""
        coded = self.geocoded(area)
        if coded:
            return coded
        info = dataclasses.replace(msg.infos[0], areas=(area,))
        out: set[str] = set()
        for shape in areas_shapes(dataclasses.replace(msg, infos=(info,))):
            out |= self.overlapped(shape)
        return out

    def covered(self, msg: CapMessage) -> list[str]:
        """Every region the message's areas cover, whole parents named by the parent."""
        seen: set[CapArea] = set()
        ids: set[str] = set()
        for info in msg.infos:
            for area in info.areas:
                if area not in seen:
                    seen.add(area)
                    ids |= self.area_regions(msg, area)
        return self.compress(self.leaves(ids))

    def leaves(self, ids: Iterable[str]) -> set[str]:
        """The leaves at or under the given regions."""
        out: set[str] = set()
        for rid in ids:
            out.update(self.regions.leaves_under(rid))
        return out

    def compress(self, leaves: set[str]) -> list[str]:
        """Sorted region ids that name exactly these leaves, parents for whole parents."""
        out: set[str] = set()
        for leaf in leaves:
            top = leaf
            for region in self.regions.chain(leaf)[1:]:
                if not leaves.issuperset(self.regions.leaves_under(region.id)):
                    break
                top = region.id
            out.add(top)
        return sorted(out)


@dataclass(slots=True)
class ImportPlan:
    """What one CAP message becomes: the events to submit and what they mean."""

    identifier: str
    sender: str
    sent: str
    msg_type: str
    status: str
    alert_type: str | None = None
    action: str = "none"  # raise | clear | update | none
    regions: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer for this message (without the events themselves)."""
        return {
            "identifier": self.identifier, "sender": self.sender, "sent": self.sent,
            "msg_type": self.msg_type, "status": self.status, "action": self.action,
            "alert_type": self.alert_type, "regions": self.regions, "cleared": self.cleared,
            "kept": self.kept, "reason": self.reason,
        }


def _short_id(text: str) -> str:
    if len(text) <= _ID_MAX:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def source_of(sender: str) -> str:
    """The event `source` (and operator name) of messages from a CAP sender."""
    return _short_id(f"cap:{sender}")


def _acts(msg: CapMessage, mode: str, now: datetime) -> str | None:
    """Why the message is not acted on, or None when it is."""
    wanted = {"Actual": None, "Exercise": "exercise", "Test": "test"}
    if msg.status not in wanted:
        return f"status {msg.status} is never acted on"
    needed = wanted[msg.status]
    if needed is not None and mode != needed:
        return f"status {msg.status} is acted on only in {needed} mode (this is {mode})"
    if msg.msg_type in ("Ack", "Error"):
        return f"msgType {msg.msg_type} asks nothing of tocsin"
    if msg.msg_type != "Cancel" and msg.infos:
        expiries = [i.expires for i in msg.infos]
        if all(e is not None and _past(e, now) for e in expiries):
            return "every info block has expired"
    return None


def _past(stamp: str | None, now: datetime) -> bool:
    try:
        return stamp is not None and datetime.fromisoformat(stamp) <= now
    except ValueError:
        return False


# (sender, identifier) -> (leaf ids, alert type) of an earlier imported message's raise
Lookup = Callable[[str, str], tuple[set[str], str] | None]
# leaf, alert type -> the causes of its active alert, or None when it has none
Causes = Callable[[str, str], Sequence[str] | None]


def plan(
    msg: CapMessage,
    matcher: RegionMatcher,
    *,
    now: datetime,
    mode: str,
    lookup: Lookup,
    causes: Causes,
) -> ImportPlan:
    """The events one CAP message becomes (see the module docstring)."""
    p = ImportPlan(msg.identifier, msg.sender, msg.sent, msg.msg_type, msg.status)
    p.reason = _acts(msg, mode, now)
    if p.reason is not None:
        return p
    operator = source_of(msg.sender)
    note = next((i.headline for i in msg.infos if i.headline), None) or msg.identifier
    cap_header = {
        "identifier": msg.identifier, "sender": msg.sender, "sent": msg.sent,
        "msg_type": msg.msg_type, "status": msg.status,
        "references": [list(r) for r in msg.references],
    }
    base = {
        "type": "operator_alert", "time": format_time(now), "source": operator,
        "operator": operator, "note": note[:2000], "cap": cap_header,
    }
    earlier: dict[str, set[str]] = {}
    for ref_sender, ref_id, _sent in msg.references:
        found = lookup(ref_sender, ref_id)
        if found is not None:
            earlier.setdefault(found[1], set()).update(found[0])
    new_type = alert_type_of(msg)
    new_leaves: set[str] = set()
    if msg.msg_type in ("Alert", "Update"):
        p.regions = matcher.covered(msg)
        new_leaves = matcher.leaves(p.regions)
        p.alert_type = new_type
    mine = f"operator:{operator}"
    for alert_type, leaves in sorted(earlier.items()):
        gone = leaves - new_leaves if alert_type == new_type else leaves
        clear: set[str] = set()
        for leaf in gone:
            held = causes(leaf, alert_type)
            if held is None:
                continue
            if set(held) <= {mine}:
                clear.add(leaf)
            else:
                p.kept.append(leaf)
        if clear:
            names = matcher.compress(clear)
            p.cleared.extend(names)
            p.events.append({
                **base, "id": _short_id(f"{msg.identifier}#clear:{alert_type}"),
                "regions": names, "alert_type": alert_type, "action": "clear",
            })
        p.alert_type = p.alert_type or alert_type
    p.kept.sort()
    if p.regions:
        p.events.append({
            **base, "id": _short_id(msg.identifier), "regions": p.regions,
            "alert_type": new_type, "action": "raise",
        })
    if msg.msg_type == "Cancel":
        p.action = "clear" if p.cleared else "none"
        if not earlier:
            p.reason = "references no message imported here"
    elif p.regions:
        p.action = "update" if p.cleared else "raise"
    else:
        p.action = "clear" if p.cleared else "none"
        if p.reason is None:
            p.reason = "its areas cover no loaded region"
    return p


def _lookup(service: Service) -> Lookup:
    def find(sender: str, identifier: str) -> tuple[set[str], str] | None:
        seq = service.log.find_event(source_of(sender), _short_id(identifier))
        if seq is None:
            return None
        (entry,) = service.log.read(seq, seq)
        raw = entry.obj()
        if raw.get("type") != "operator_alert" or raw.get("action") != "raise":
            return None
        leaves: set[str] = set()
        for rid in raw.get("regions") or ():
            if rid in service.regions:
                leaves.update(service.regions.leaves_under(rid))
        return leaves, str(raw.get("alert_type"))

    return find


def _held(active: Iterable[Mapping[str, Any]]) -> Causes:
    held: dict[tuple[str, str], Sequence[str]] = {
        (a["region"], a["alert_type"]): a["causes"] for a in active
    }
    return lambda leaf, alert_type: held.get((leaf, alert_type))


async def import_cap(
    service: Service, xml: bytes, *, key_name: str | None = None,
    matcher: RegionMatcher | None = None,
) -> dict[str, Any]:
    """Parse a CAP document (`CapError` if invalid) and submit what each message asks.

    Returns `{"messages": [...], "regions": [...]}` where `regions` lists every region raised.
    """
    messages = parse_all(xml)
    matcher = matcher or RegionMatcher(service.regions)
    lookup = _lookup(service)
    out: list[dict[str, Any]] = []
    raised: set[str] = set()
    for msg in messages:
        active = await service.read(Engine.active_alerts)
        p = plan(
            msg, matcher, now=service.clock(), mode=service.settings.mode, lookup=lookup,
            causes=_held(active),
        )
        answer = p.to_dict()
        if p.events:
            result = await service.submit(p.events, key_name=key_name)
            answer["events"] = [
                {"id": r.id, "seq": r.seq, "duplicate": r.duplicate,
                 "transitions": len(r.transitions)}
                for r in result.accepted
            ]
        else:
            answer["events"] = []
        raised.update(p.regions)
        out.append(answer)
    return {"messages": out, "regions": sorted(raised)}
