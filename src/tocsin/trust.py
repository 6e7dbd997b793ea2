"""Who may say what: sources, ownership of tracks and sirens, repeated ids, bounded input.

A warning system is only as trustworthy as the weakest key that feeds it, so every event is
judged on who sent it, not only on its shape:

- **Sources.** An event's `source` must be one its key may use: the key's name or a source
  listed when the key was made (`tocsin keys create --role sensor --source radar-1`). Admins
  may use any source. A source is a namespace of ids: within it an id names one body forever.
- **Repeated ids.** The same (source, id) with the same body (compared as canonical JSON) is an
  idempotent repeat; with another body it is a conflict, answered with both digests.
- **Ownership.** A live track belongs to the sources that reported it. Another source may add a
  fix only with a `fusion` key; only its sources end it (`track_end`, or an `impact` naming it),
  and operators and admins may end any track. `siren_status` comes from the siren gateway
  (the server's own, in-process) or an admin.
- **Bounded input.** Request bodies and event files are parsed with bounded numbers and nesting
  (`load_json`), so hostile input is a 4xx naming the reason, never a crash.

The time rule lives in the engine (`Engine.apply`): in a server no event moves the engine's
clock past the server's own ticks.

Everything here is pure: checks take the engine state or the log they judge against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from tocsin.audit.jcs import canonical_json
from tocsin.engine.core import to_us
from tocsin.errors import Conflict, FieldError, Forbidden, ValidationError
from tocsin.model import Detection, Event, Impact, SirenStatus, TrackEnd, parse_time

__all__ = [
    "GATEWAY",
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "ROLE_EVENTS",
    "Caller",
    "Owners",
    "check_repeats",
    "check_roles",
    "check_sources",
    "digest",
    "admit",
    "load_json",
    "needs_tick",
]

MAX_DEPTH: Final = 32  # nesting of arrays and objects in one request body or event line
MAX_NUMBER_CHARS: Final = 64  # the longest number literal accepted, before it is converted

# Which event types each role may send (admin: all). Operators end tracks by hand; the ownership
# rules below narrow what sensors and fusion services may do to tracks that are not theirs.
ROLE_EVENTS: Final[Mapping[str, frozenset[str]]] = {
    "reader": frozenset(),
    "sensor": frozenset({"detection", "track_end", "impact"}),
    "fusion": frozenset({"detection", "track_end", "impact"}),
    "operator": frozenset({"operator_alert", "threat_level", "track_end"}),
    "gateway": frozenset({"siren_status"}),
    "admin": frozenset({"detection", "track_end", "impact", "operator_alert", "threat_level",
                        "siren_status"}),
}
# the role that sends each event type, named in a 403 (the first role that may send it)
_NEEDS: Final = {
    "detection": "sensor", "track_end": "sensor", "impact": "sensor",
    "operator_alert": "operator", "threat_level": "operator", "siren_status": "admin",
}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who submits a batch: a key's name, role and the sources it may use."""

    name: str
    role: str
    sources: tuple[str, ...] = ()

    def may_use(self, source: str) -> bool:
        """Whether events of this caller may name `source`."""
        return self.role == "admin" or source == self.name or source in self.sources


GATEWAY: Final = Caller("sirens", "gateway", ("sirens",))  # the in-process siren gateway


def _prefix(i: int, n: int) -> str:
    return f"[{i}]." if n > 1 else ""


def check_roles(caller: Caller, raws: Sequence[Any]) -> None:
    """403 unless the caller's role may send every event type of the batch."""
    allowed = ROLE_EVENTS.get(caller.role, frozenset())
    for i, raw in enumerate(raws):
        etype = raw.get("type") if isinstance(raw, Mapping) else None
        if not isinstance(etype, str) or etype not in _NEEDS:
            continue  # not a type at all: validation names it (422)
        if etype not in allowed:
            who = "the siren gateway or an admin" if etype == "siren_status" else \
                f"a {_NEEDS[etype]} key"
            raise Forbidden(f"{_prefix(i, len(raws))}type: {etype} events need {who}; "
                            f"key {caller.name!r} is {caller.role}")


def check_sources(caller: Caller, raws: Sequence[Any]) -> None:
    """403 naming the first source of the batch the caller's key may not use."""
    for i, raw in enumerate(raws):
        source = raw.get("source") if isinstance(raw, Mapping) else None
        if isinstance(source, str) and not caller.may_use(source):
            mine = ", ".join(sorted({caller.name, *caller.sources}))
            raise Forbidden(f"{_prefix(i, len(raws))}source: key {caller.name!r} may not send "
                            f"as source {source!r} (its sources: {mine})")


def digest(raw: Any) -> str:
    """The digest of an event body: SHA-256 of its canonical JSON (RFC 8785)."""
    return "sha256:" + hashlib.sha256(canonical_json(raw)).hexdigest()


def check_repeats(
    events: Sequence[Event],
    find: Callable[[str, str], int | None],
    body_at: Callable[[int], Any],
) -> None:
    """409 if an event repeats a logged (or earlier in the batch) (source, id) with another body.

    `find(source, id)` is the seq of the logged event under that key; `body_at(seq)` its body.
    A repeat with the same body passes: it is answered as a duplicate.
    """
    seen: dict[tuple[str, str], Any] = {}
    for i, event in enumerate(events):
        earlier = seen.get(event.key)
        if earlier is None:
            seq = find(*event.key)
            if seq is not None:
                earlier = body_at(seq)
        if earlier is None:
            seen[event.key] = event.raw
            continue
        old, new = digest(earlier), digest(event.raw)
        if old != new:
            where = _prefix(i, len(events))
            raise Conflict(
                f"{where}id: {event.source}/{event.id} was already logged with another body",
                {"source": event.source, "id": event.id, "logged_digest": old,
                 "submitted_digest": new},
            )


@dataclass(slots=True)
class Owners:
    """Ownership checks of one batch against the engine's live tracks.

    `live(track)` gives the sources of a live track (None when not live). Events earlier in the
    batch count: a batch may start a track and end it.
    """

    live: Callable[[str], frozenset[str] | None]
    _batch: dict[str, frozenset[str] | None] = field(default_factory=dict)

    def _owners(self, track: str) -> frozenset[str] | None:
        return self._batch[track] if track in self._batch else self.live(track)

    def check(self, caller: Caller | None, events: Sequence[Event]) -> None:
        """403 for the first event the caller may not send about a track or a siren."""
        for i, event in enumerate(events):
            where = _prefix(i, len(events))
            if caller is not None:
                self._check_one(caller, event, where)
            self._follow(event)

    def _check_one(self, caller: Caller, event: Event, where: str) -> None:
        if isinstance(event, SirenStatus) and caller.role not in ("gateway", "admin"):
            raise Forbidden(f"{where}type: siren {event.siren!r} reports come from the siren "
                            f"gateway or an admin, not key {caller.name!r}")
        track = event.track if isinstance(event, Detection | TrackEnd | Impact) else None
        if track is None:
            return
        owners = self._owners(track)
        if owners is None or event.source in owners or caller.role == "admin":
            return
        them = ", ".join(sorted(owners))
        if isinstance(event, Detection):
            if caller.role == "fusion":
                return
            raise Forbidden(f"{where}track: track {track!r} is reported by {them}; a fix from "
                            f"{event.source!r} joins it only from a fusion key")
        if caller.role == "operator" and isinstance(event, TrackEnd):
            return
        what = "ends" if isinstance(event, TrackEnd) else "names (and would end)"
        raise Forbidden(f"{where}track: {event.source!r} {what} track {track!r}, which belongs "
                        f"to {them}; only its sources, an operator or an admin end a track")

    def _follow(self, event: Event) -> None:
        """What the engine will make of the event, as far as ownership goes."""
        if isinstance(event, Detection):
            owners = self._owners(event.track) or frozenset()
            self._batch[event.track] = owners | {event.source}
        elif isinstance(event, TrackEnd) or (isinstance(event, Impact) and event.track):
            assert event.track is not None
            self._batch[event.track] = None


# --- bounded JSON ---------------------------------------------------------------------------


class _Refused(Exception):
    """A JSON text refused while parsing (the reason is the message)."""


def _number(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text)} characters (the limit is {MAX_NUMBER_CHARS})")
    return text


def _int(text: str) -> int:
    return int(_number(text))


def _float(text: str) -> float:
    value = float(_number(text))
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"the number {text} is beyond the range of a double")
    return value


def _const(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def load_json(text: str | bytes, what: str = "(body)") -> Any:
    """Parse JSON with bounded numbers and nesting; `ValidationError` naming `what` otherwise.

    Number literals longer than `MAX_NUMBER_CHARS` are refused before conversion (Python refuses
    integers past 4,300 digits with an error of its own, and a 400-digit integer overflows a
    float), as are NaN and Infinity; arrays and objects may nest `MAX_DEPTH` deep.
    """
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_const)
    except _Refused as exc:
        raise ValidationError(FieldError(what, str(exc))) from None
    except RecursionError:
        raise ValidationError(FieldError(what, f"nested deeper than {MAX_DEPTH}")) from None
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise ValidationError(FieldError(what, reason)) from None
    except ValueError as exc:  # bytes that are not UTF-8
        raise ValidationError(FieldError(what, f"invalid JSON: {exc}")) from None
    _check_depth(value, what)
    return value


def _check_depth(value: Any, what: str) -> None:
    # iterative: the check itself must not recurse on what it guards against
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= MAX_DEPTH:
            raise ValidationError(FieldError(what, f"nested deeper than {MAX_DEPTH}"))
        stack.extend((child, depth + 1) for child in children)


def admit(
    caller: Caller | None,
    events: Sequence[Event],
    *,
    live: Callable[[str], frozenset[str] | None],
    find: Callable[[str, str], int | None],
    body_at: Callable[[int], Any],
) -> None:
    """Every check of a parsed batch against the state: repeated ids (409), then ownership
    (403; skipped for the server's own callers, `caller` None)."""
    check_repeats(events, find, body_at)
    Owners(live).check(caller, events)


def needs_tick(now: datetime, tick_us: int | None, raws: Sequence[Any]) -> bool:
    """Whether a server logs a tick of its clock before a batch.

    Once a second at most while time passes, and whenever an event is dated after the last
    tick: then that event counts as of its own time, not as of an older tick.
    """
    now_us = to_us(now)
    if tick_us is None or now_us - tick_us >= 1_000_000:
        return True
    if now_us <= tick_us:
        return False
    for raw in raws:
        try:
            if to_us(parse_time(raw["time"])) > tick_us:
                return True
        except (KeyError, TypeError, ValueError):
            continue  # refused later, by validation
    return False
