"""Value types of the core: events in, transitions out.

Events arrive as JSON objects (see DESIGN.md). `parse_event` validates the listed fields strictly
and keeps every other field as an extension: stored in the log, ignored by the engine. The raw
object is kept on the event so the log stores exactly what was sent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from tocsin.errors import FieldError, ValidationError

__all__ = [
    "ACTIONS",
    "ALERT_TYPES",
    "IMPACT_KINDS",
    "OBJECT_CLASSES",
    "PHASES",
    "SEVERITIES",
    "TRACK_END_REASONS",
    "TRANSITION_TYPES",
    "Detection",
    "Event",
    "Impact",
    "OperatorAlert",
    "Position",
    "SirenStatus",
    "ThreatLevel",
    "Tick",
    "TrackEnd",
    "Transition",
    "dumps",
    "format_time",
    "logged_event",
    "parse_event",
    "parse_time",
]

OBJECT_CLASSES: Final = (
    "ballistic_missile",
    "cruise_missile",
    "drone",
    "glide_bomb",
    "aircraft",
    "interceptor",
    "debris",
    "unknown",
)
PHASES: Final = ("launch", "cruise", "terminal")
TRACK_END_REASONS: Final = ("intercepted", "impact", "lost", "left_area")
IMPACT_KINDS: Final = ("explosion", "debris")
SIREN_STATES: Final = ("ok", "fault", "offline")
ALERT_TYPES: Final = ("air_raid", "artillery_shelling", "urban_fights", "chemical", "nuclear")
ACTIONS: Final = ("raise", "clear")
SEVERITIES: Final = ("pre_alert", "alert", "imminent")
TRANSITION_TYPES: Final = (
    "alert_started",
    "alert_updated",
    "alert_ended",
    "level_changed",
    "silent_impact",
    "siren_fault",
)

_ID_MAX = 200
# Times are integer microseconds since 1970 in the engine; years past 9999 have no RFC 3339 form.
YEAR_MIN: Final = 1970
YEAR_MAX: Final = 9999
_WEAPON_RE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")


def dumps(value: Any) -> str:
    """Serialise to the one JSON form tocsin writes (stable key order as given, no NaN)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ":"), allow_nan=False)


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with an offset into an aware UTC datetime."""
    if not isinstance(value, str) or not 20 <= len(value) <= 40 or value[10] not in "Tt":
        raise ValueError("expected an RFC 3339 date-time such as 2026-11-25T01:00:00Z")
    dt = datetime.fromisoformat(value.upper())
    if dt.tzinfo is None:
        raise ValueError("the time needs an offset (Z or +hh:mm)")
    try:
        utc = dt.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        utc = None
    if utc is None or not YEAR_MIN <= utc.year <= YEAR_MAX:
        raise ValueError(f"outside the years {YEAR_MIN}-{YEAR_MAX} (in UTC): {value!r}")
    return utc


def format_time(dt: datetime) -> str:
    """Format a UTC datetime as RFC 3339 with `Z`, with microseconds only when present."""
    last = _last_time
    if dt is last[0]:
        # the transitions of one event share one datetime object
        return last[1]
    return _format_time(dt)


def _format_time(dt: datetime) -> str:
    global _last_time  # noqa: PLW0603 - a one-entry cache; swapping a tuple is atomic
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        base += f".{dt.microsecond:06d}".rstrip("0")
    text = base + "Z"
    _last_time = (dt, text)
    return text


_last_time: tuple[datetime | None, str] = (None, "")
# `dumps`'s own encoder for one string (`ensure_ascii=False`), for `Transition.to_json`
_string: Callable[[str], str] = json.encoder.encode_basestring


@dataclass(frozen=True, slots=True)
class Position:
    """A WGS84 point."""

    lat: float
    lon: float
    alt_m: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _EventBase:
    id: str
    source: str
    time: datetime
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    type: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The de-duplication key: (source, id)."""
        return (self.source, self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection(_EventBase):
    """A sensor sees an object."""

    type: str = "detection"
    track: str
    object: str
    position: Position
    weapon: str | None = None
    heading_deg: float | None = None
    speed_kmh: float | None = None
    confidence: float | None = None
    phase: str | None = None
    affiliation: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackEnd(_EventBase):
    """The object is gone."""

    type: str = "track_end"
    track: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Impact(_EventBase):
    """An explosion is reported."""

    type: str = "impact"
    position: Position
    kind: str
    track: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorAlert(_EventBase):
    """A person raises or clears an alert for regions at any level."""

    type: str = "operator_alert"
    regions: tuple[str, ...]
    alert_type: str
    action: str
    operator: str
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreatLevel(_EventBase):
    """A standing regional regime, 0 (none) to 3 (critical)."""

    type: str = "threat_level"
    regions: tuple[str, ...]
    level: int
    operator: str
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SirenStatus(_EventBase):
    """What the siren gateway observed of one siren: ok, fault (no ack) or offline."""

    type: str = "siren_status"
    siren: str
    region: str
    status: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick(_EventBase):
    """The clock advances."""

    type: str = "tick"
    server: bool = False  # `"clock": "server"`: the wall clock of the server that logged it


Event = Detection | TrackEnd | Impact | OperatorAlert | ThreatLevel | SirenStatus | Tick


@dataclass(frozen=True, slots=True)
class Transition:
    """One decision of the engine, in the order it was made.

    `seq` is its position in the log; `cause_seq` the seq of the event that caused it.
    `extra` holds type-specific fields (e.g. `level` on `level_changed`) as sorted pairs so
    the value stays hashable and its JSON form stable.
    """

    type: str
    region: str
    time: datetime
    cause_seq: int
    seq: int
    alert_type: str | None = None
    severity: str | None = None
    causes: tuple[str, ...] = ()
    eta_s: float | None = None
    extra: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this transition, keys in their documented order."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "type": self.type,
            "region": self.region,
            "alert_type": self.alert_type,
            "severity": self.severity,
            "time": format_time(self.time),
            "causes": list(self.causes),
            "eta_s": self.eta_s,
            "cause_seq": self.cause_seq,
        }
        for k, v in self.extra:
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def to_json(self) -> str:
        """The one-line JSON form written by `simulate` and stored in the log."""
        # Replay compares every logged transition with this text: the common shape is written
        # directly, the same text `dumps(self.to_dict())` gives (a property test holds them
        # equal); anything else takes that path.
        eta = self.eta_s
        if (
            self.extra
            or type(self.seq) is not int
            or type(self.cause_seq) is not int
            or not (eta is None or (type(eta) is float and math.isfinite(eta)))
        ):
            return dumps(self.to_dict())
        s = _string
        try:
            alert_type = "null" if self.alert_type is None else s(self.alert_type)
            severity = "null" if self.severity is None else s(self.severity)
            causes = ", ".join([s(c) for c in self.causes])
            kind, region = s(self.type), s(self.region)
        except TypeError:  # not a string where one belongs
            return dumps(self.to_dict())
        return (
            f'{{"seq":{self.seq!r}, "type":{kind}, "region":{region}, '
            f'"alert_type":{alert_type}, "severity":{severity}, '
            f'"time":{s(format_time(self.time))}, "causes":[{causes}], '
            f'"eta_s":{"null" if eta is None else float.__repr__(eta)}, '
            f'"cause_seq":{self.cause_seq!r}}}'
        )

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Transition:
        """Rebuild a transition from its JSON object."""
        core = {"seq", "type", "region", "alert_type", "severity", "time", "causes"}
        core |= {"eta_s", "cause_seq"}
        extra = tuple(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in obj.items() if k not in core
        )
        return cls(
            type=obj["type"],
            region=obj["region"],
            time=parse_time(obj["time"]),
            cause_seq=obj["cause_seq"],
            seq=obj["seq"],
            alert_type=obj.get("alert_type"),
            severity=obj.get("severity"),
            causes=tuple(obj.get("causes") or ()),
            eta_s=obj.get("eta_s"),
            extra=extra,
        )


# --- validation -------------------------------------------------------------------------------


class _Fields:
    """Collects field errors while reading a raw event object."""

    __slots__ = ("errors", "obj")

    def __init__(self, obj: Mapping[str, Any]) -> None:
        self.obj = obj
        self.errors: list[FieldError] = []

    def fail(self, name: str, reason: str) -> None:
        self.errors.append(FieldError(name, reason))

    def string(self, name: str, *, required: bool = True, max_len: int = _ID_MAX) -> str | None:
        value = self.obj.get(name)
        if value is None:
            if required:
                self.fail(name, "required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(name, "must be a non-empty string")
            return None
        if len(value) > max_len:
            self.fail(name, f"longer than {max_len} characters")
            return None
        return value

    def choice(self, name: str, allowed: tuple[str, ...], *, required: bool = True) -> str | None:
        value = self.obj.get(name)
        if value is None:
            if required:
                self.fail(name, "required")
            return None
        if value not in allowed:
            self.fail(name, f"must be one of {', '.join(allowed)} (got {value!r})")
            return None
        return str(value)

    def number(
        self,
        name: str,
        lo: float,
        hi: float,
        *,
        required: bool = False,
        hi_open: bool = False,
        obj: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> float | None:
        src = self.obj if obj is None else obj
        label = label or name
        value = src.get(name)
        if value is None:
            if required:
                self.fail(label, "required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(label, "must be a number")
            return None
        # compared before any conversion: float() of a 400-digit integer overflows
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(label, "must be a finite number")
            return None
        if value < lo or value > hi or (hi_open and value == hi):
            bound = f"{lo} <= {label} {'<' if hi_open else '<='} {hi}"
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:20] + "…"
            self.fail(label, f"out of range: {shown} (expected {bound})")
            return None
        return float(value)

    def position(self, name: str = "position") -> Position | None:
        value = self.obj.get(name)
        if value is None:
            self.fail(name, "required")
            return None
        if not isinstance(value, Mapping):
            self.fail(name, "must be an object with lat and lon")
            return None
        lat = self.number("lat", -90, 90, required=True, obj=value, label=f"{name}.lat")
        lon = self.number("lon", -180, 180, required=True, obj=value, label=f"{name}.lon")
        alt = self.number("alt_m", -500, 2_000_000, obj=value, label=f"{name}.alt_m")
        if lat is None or lon is None:
            return None
        return Position(lat, lon, alt)

    def regions(
        self, name: str, known: Callable[[str], bool] | None
    ) -> tuple[str, ...] | None:
        value = self.obj.get(name)
        if value is None:
            self.fail(name, "required")
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(name, "must be a non-empty list of region ids")
            return None
        out: list[str] = []
        for i, rid in enumerate(value):
            if not isinstance(rid, str) or not rid:
                self.fail(f"{name}[{i}]", "must be a region id string")
            elif known is not None and not known(rid):
                self.fail(f"{name}[{i}]", f"unknown region {rid!r}")
            else:
                out.append(rid)
        return tuple(dict.fromkeys(out))


def parse_event(
    obj: Any, *, region_known: Callable[[str], bool] | None = None
) -> Event:
    """Validate one raw event object and build its typed value.

    Raises `ValidationError` listing every bad field. `region_known`, when given, checks
    region ids named by operator events.
    """
    if not isinstance(obj, Mapping):
        raise ValidationError(FieldError("(event)", "must be a JSON object"))
    f = _Fields(obj)
    etype = f.choice(
        "type",
        ("detection", "track_end", "impact", "operator_alert", "threat_level", "siren_status",
         "tick"),
    )
    eid = f.string("id")
    source = f.string("source")
    when: datetime | None = None
    raw_time = obj.get("time")
    if raw_time is None:
        f.fail("time", "required")
    else:
        try:
            when = parse_time(raw_time)
        except (ValueError, TypeError) as exc:
            f.fail("time", str(exc) if any(w in str(exc) for w in ("RFC", "offset", "years")) else
                   f"not an RFC 3339 date-time: {raw_time!r}")
    common: dict[str, Any] = {"id": eid, "source": source, "time": when, "raw": obj}
    event: Event | None = None
    if etype == "detection":
        track = f.string("track")
        obj_class = f.choice("object", OBJECT_CLASSES)
        pos = f.position()
        weapon = f.string("weapon", required=False, max_len=64)
        if weapon is not None and not _WEAPON_RE.match(weapon):
            f.fail("weapon", "must be a catalog id: lower-case letters, digits and hyphens")
        heading = f.number("heading_deg", 0, 360)
        if heading == 360.0:  # many sensors send 360 for north; one value per direction
            heading = 0.0
        speed = f.number("speed_kmh", 0, 40_000)
        confidence = f.number("confidence", 0, 1)
        phase = f.choice("phase", PHASES, required=False)
        affiliation = f.string("affiliation", required=False, max_len=64)
        if not f.errors:
            assert track and obj_class and pos
            event = Detection(
                **common, track=track, object=obj_class, position=pos, weapon=weapon,
                heading_deg=heading, speed_kmh=speed, confidence=confidence, phase=phase,
                affiliation=affiliation,
            )
    elif etype == "track_end":
        track = f.string("track")
        reason = f.choice("reason", TRACK_END_REASONS)
        if not f.errors:
            assert track and reason
            event = TrackEnd(**common, track=track, reason=reason)
    elif etype == "impact":
        pos = f.position()
        kind = f.choice("kind", IMPACT_KINDS)
        track = f.string("track", required=False)
        if not f.errors:
            assert pos and kind
            event = Impact(**common, position=pos, kind=kind, track=track)
    elif etype == "operator_alert":
        regions = f.regions("regions", region_known)
        alert_type = f.choice("alert_type", ALERT_TYPES)
        action = f.choice("action", ACTIONS)
        operator = f.string("operator")
        note = f.string("note", required=False, max_len=2000)
        if not f.errors:
            assert regions and alert_type and action and operator
            event = OperatorAlert(
                **common, regions=regions, alert_type=alert_type, action=action,
                operator=operator, note=note,
            )
    elif etype == "threat_level":
        regions = f.regions("regions", region_known)
        level = obj.get("level")
        if level is None:
            f.fail("level", "required")
        elif isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 3:
            f.fail("level", f"must be an integer 0-3 (got {level!r})")
        operator = f.string("operator")
        note = f.string("note", required=False, max_len=2000)
        if not f.errors:
            assert regions and operator and isinstance(level, int)
            event = ThreatLevel(
                **common, regions=regions, level=level, operator=operator, note=note
            )
    elif etype == "siren_status":
        siren = f.string("siren")
        region_list = f.regions("region", region_known)
        status = f.choice("status", SIREN_STATES)
        reason = f.string("reason", required=False, max_len=500)
        if not f.errors:
            assert siren and region_list and status
            event = SirenStatus(
                **common, siren=siren, region=region_list[0], status=status, reason=reason
            )
    elif etype == "tick":
        clock = obj.get("clock")
        if clock is not None and clock != "server":
            f.fail("clock", f"must be 'server' when given (got {clock!r})")
        if not f.errors:
            event = Tick(**common, server=clock == "server")
    if f.errors or event is None:
        raise ValidationError(f.errors or [FieldError("type", "required")])
    return event


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def logged_event(obj: Mapping[str, Any]) -> Event:
    """An event read back from the log, which `parse_event` accepted when it was logged.

    Detections and ticks, most of any log, are built without checking each field again; every
    value is converted as `parse_event` converts it, so the event is equal to what it gave. Other
    types, and anything that does not fit (a log edited by hand), take `parse_event`'s path and
    its errors.
    """
    etype = obj.get("type")
    try:
        if etype == "detection":
            pos = obj["position"]
            heading = _num(obj.get("heading_deg"))
            return Detection(
                id=obj["id"], source=obj["source"], time=parse_time(obj["time"]), raw=obj,
                track=obj["track"], object=obj["object"],
                position=Position(float(pos["lat"]), float(pos["lon"]), _num(pos.get("alt_m"))),
                weapon=obj.get("weapon"), heading_deg=0.0 if heading == 360.0 else heading,
                speed_kmh=_num(obj.get("speed_kmh")), confidence=_num(obj.get("confidence")),
                phase=obj.get("phase"), affiliation=obj.get("affiliation"),
            )
        if etype == "tick" and obj.get("clock", "server") == "server":
            return Tick(id=obj["id"], source=obj["source"], time=parse_time(obj["time"]),
                        raw=obj, server=obj.get("clock") == "server")
    except (KeyError, TypeError, ValueError):
        pass
    return parse_event(obj)
