"""The weapon catalog: speed, range, flight profile and heading cone of each threat.

The figures are data, not code: they ship as `data/weapons.csv` (origin and choices in
`data/ATTRIBUTION.md`) and an operator can load a file of their own instead. Every object class
has a `default-<class>` row, used when a detection names no weapon or one the catalog lacks.

A carrier aircraft is a threat by what it can launch (DESIGN.md), so `Catalog.resolve` gives
its reach as the longest range among its `launches`, and its speed as the fastest of those
weapons (or of the aircraft itself, should it be faster than its payload).
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from tocsin.errors import CatalogError
from tocsin.model import OBJECT_CLASSES as _MODEL_OBJECT_CLASSES

__all__ = [
    "COLUMNS",
    "OBJECT_CLASSES",
    "PROFILES",
    "Catalog",
    "Resolved",
    "Weapon",
    "load_catalog",
]

# The event model owns the list of object classes; the catalog re-exports it so the two can
# never disagree about which classes need a default row.
OBJECT_CLASSES: Final[tuple[str, ...]] = tuple(_MODEL_OBJECT_CLASSES)
PROFILES: Final[tuple[str, ...]] = (
    "ballistic",
    "cruise",
    "drone",
    "glide_bomb",
    "carrier",
    "interceptor",
    "debris",
    "unknown",
)
COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "name",
    "aliases",
    "object",
    "profile",
    "speed_kmh",
    "range_km",
    "cone_deg",
    "max_silence_s",
    "launches",
    "sources",
    "basis",
)
DEFAULT_PREFIX: Final = "default-"

# Ids are what detections carry in `weapon`, so they must also pass the event model's check
# (no leading, trailing or doubled separators); underscores appear only inside the
# `default-<object_class>` ids.
_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+(?:_[a-z0-9]+)*)*$")
_URL_RE = re.compile(r"^https?://\S+$")
_NUMBERS = ("speed_kmh", "range_km", "cone_deg", "max_silence_s")


@dataclass(frozen=True, slots=True)
class Weapon:
    """One catalog row: a weapon class or model and the figures the engine uses for it."""

    id: str
    name: str
    aliases: tuple[str, ...]
    object: str
    profile: str
    speed_kmh: float
    range_km: float
    cone_deg: float
    max_silence_s: float
    launches: tuple[str, ...]
    sources: tuple[str, ...]
    basis: str


@dataclass(frozen=True, slots=True)
class Resolved:
    """The catalog row used for a detection, and how far and fast its threat reaches."""

    weapon: Weapon  # the catalog row used
    note: str | None  # why a class default stands in for a named weapon; else None
    reach_speed_kmh: float  # bounds ETAs: its own speed, or a carrier's fastest payload
    reach_km: float  # its own range, or the longest range among what a carrier launches


# Distinct (weapon, object class) pairs whose resolution is kept.
_RESOLVED_MAX = 1024


class _Invalid(Exception):
    """A bad value in row `index`; turned into a `CatalogError` naming where the row came from."""

    def __init__(self, index: int | None, field: str, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.field = field
        self.reason = reason


class Catalog:
    """A validated, immutable set of weapons, looked up by id or alias."""

    __slots__ = ("_by_key", "_defaults", "_reach", "_resolved", "_weapons")

    def __init__(
        self,
        weapons: Iterable[Weapon],
        *,
        source: str = "catalog",
        lines: Sequence[int] | None = None,
    ) -> None:
        """Check the rows and index them; errors name `source` and the row's line in `lines`."""
        rows = tuple(weapons)
        try:
            self._build(rows)
        except _Invalid as exc:
            if exc.index is None:
                where = source
            elif lines is not None:
                where = f"{source}, line {lines[exc.index]}"
            else:
                where = f"{source}, row {exc.index + 1} (id {rows[exc.index].id!r})"
            raise CatalogError(f"{where}, field {exc.field!r}: {exc.reason}") from None

    def _build(self, rows: tuple[Weapon, ...]) -> None:
        by_key: dict[str, Weapon] = {}
        for i, w in enumerate(rows):
            _check_row(i, w)
            # Ids and aliases share one case-insensitive namespace so a lookup never has two
            # answers; a repeated key is a mistake in the file, not something to pick between.
            for field, key in [("id", w.id)] + [("aliases", a) for a in w.aliases]:
                folded = key.casefold()
                if folded in by_key:
                    other = by_key[folded].id
                    raise _Invalid(i, field, f"{key!r} is already used by {other!r}")
                by_key[folded] = w
        ids = {w.id: w for w in rows}
        for i, w in enumerate(rows):
            for target in w.launches:
                launched = ids.get(target)
                if launched is None:
                    raise _Invalid(i, "launches", f"unknown weapon id {target!r}")
                if launched.profile == "carrier":
                    raise _Invalid(i, "launches", f"{target!r} is a carrier, not a weapon")
        defaults: dict[str, Weapon] = {}
        for cls in OBJECT_CLASSES:
            row = ids.get(DEFAULT_PREFIX + cls)
            if row is None:
                raise _Invalid(None, "id", f"no default row {DEFAULT_PREFIX + cls!r} for {cls}")
            if row.object != cls:
                raise _Invalid(rows.index(row), "object", f"the default for {cls} must be {cls}")
            defaults[cls] = row
        self._weapons = rows
        self._by_key = by_key
        self._defaults = defaults
        self._reach = {w.id: _reach(w, ids) for w in rows}
        # every detection resolves its weapon; a track reports the same pair over and over
        self._resolved: dict[tuple[str | None, str], Resolved] = {}

    def get(self, weapon_id: str) -> Weapon | None:
        """The weapon with this id or alias (case-insensitive), or None."""
        return self._by_key.get(weapon_id.strip().casefold())

    def default_for(self, object_class: str) -> Weapon:
        """The `default-<object_class>` row; `KeyError` for a class that does not exist."""
        return self._defaults[object_class]

    def resolve(self, weapon_id: str | None, object_class: str) -> Resolved:
        """The row for a detection: the named weapon, else its class default (with a note)."""
        key = (weapon_id, object_class)
        known = self._resolved.get(key)
        if known is not None:
            return known
        resolved = self._resolve(weapon_id, object_class)
        if len(self._resolved) < _RESOLVED_MAX:  # sensors may name any number of weapons
            self._resolved[key] = resolved
        return resolved

    def _resolve(self, weapon_id: str | None, object_class: str) -> Resolved:
        notes: list[str] = []
        # A detection must still raise an alert, so a class the catalog lacks is `unknown`
        # rather than an error.
        if object_class not in self._defaults:
            notes.append(f"unknown object class {object_class!r}: treated as unknown")
            object_class = "unknown"
        # A known weapon wins even when its own object class differs from the detection's: the
        # weapon id is the more specific report. Naming no weapon is normal and needs no note.
        weapon = None if weapon_id is None else self.get(weapon_id)
        if weapon is None:
            if weapon_id is not None:
                notes.append(f"unknown weapon {weapon_id!r}: using defaults for {object_class}")
            weapon = self._defaults[object_class]
        speed, reach = self._reach[weapon.id]
        return Resolved(weapon, "; ".join(notes) or None, speed, reach)

    def __iter__(self) -> Iterator[Weapon]:
        return iter(self._weapons)

    def __len__(self) -> int:
        return len(self._weapons)

    def __repr__(self) -> str:
        return f"<Catalog of {len(self._weapons)} weapons>"


def _check_row(i: int, w: Weapon) -> None:
    """Raise `_Invalid` for the first bad field of row `i`."""
    if not _ID_RE.match(w.id):
        raise _Invalid(i, "id", f"{w.id!r} is not lower-case words joined by hyphens")
    if not w.name.strip():
        raise _Invalid(i, "name", "empty")
    if any(not a.strip() for a in w.aliases):
        raise _Invalid(i, "aliases", "empty alias")
    if w.object not in OBJECT_CLASSES:
        known = ", ".join(OBJECT_CLASSES)
        raise _Invalid(i, "object", f"unknown object class {w.object!r} (one of {known})")
    if w.profile not in PROFILES:
        known = ", ".join(PROFILES)
        raise _Invalid(i, "profile", f"unknown profile {w.profile!r} (one of {known})")
    for field in _NUMBERS:
        value = getattr(w, field)
        if not math.isfinite(value) or value <= 0:
            raise _Invalid(i, field, f"must be a positive number (got {value!r})")
    # 180 degrees either side of the heading is the whole circle, the widest a cone can be.
    if w.cone_deg > 180:
        raise _Invalid(i, "cone_deg", f"a half-angle is at most 180 (got {w.cone_deg!r})")
    if w.launches and w.profile != "carrier":
        raise _Invalid(i, "launches", f"only a carrier launches weapons (profile is {w.profile!r})")
    if w.id in w.launches:
        raise _Invalid(i, "launches", "a weapon cannot launch itself")
    for url in w.sources:
        if not _URL_RE.match(url):
            raise _Invalid(i, "sources", f"not an http(s) URL: {url!r}")
    if not w.basis.strip():
        raise _Invalid(i, "basis", "empty: say which figure was chosen and why")


def _reach(w: Weapon, ids: dict[str, Weapon]) -> tuple[float, float]:
    """(speed, distance) bounding the threat of `w`: its own, or for a carrier its payload's."""
    if not w.launches:
        return w.speed_kmh, w.range_km
    launched = [ids[t] for t in w.launches]
    # Speed and range may come from different weapons: the footprint must cover the longest
    # reach and the ETA the earliest arrival, whichever weapon is fired. A carrier faster than
    # its payload (a Tu-160 with Kh-101) can close the distance itself before launching, so
    # its own speed also bounds the ETA.
    speed = max([w.speed_kmh] + [x.speed_kmh for x in launched])
    return speed, max(x.range_km for x in launched)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load a catalog CSV; None loads the bundled `weapons.csv` (read once, then shared)."""
    if path is None:
        return _bundled()
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return _parse(data, str(p))


@functools.cache
def _bundled() -> Catalog:
    data = resources.files("tocsin.threats").joinpath("data/weapons.csv").read_bytes()
    return _parse(data, "weapons.csv")


def _parse(data: bytes, name: str) -> Catalog:
    """Build a catalog from CSV bytes; errors name `name`, the line and the field."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{name}: not UTF-8 (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    header = reader.fieldnames
    if not header:
        raise CatalogError(f"{name}, line 1: no header row")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CatalogError(f"{name}, line 1, field {missing[0]!r}: missing column")
    weapons: list[Weapon] = []
    lines: list[int] = []
    for raw in reader:
        # `line_num` is the line where the row ends, which is its only line unless a quoted
        # value spans lines; good enough to point an operator at the row.
        where = f"{name}, line {reader.line_num}"
        if "\0extra" in raw:
            raise CatalogError(f"{where}: more values than columns")
        weapons.append(_row(raw, where))
        lines.append(reader.line_num)
    return Catalog(weapons, source=name, lines=lines)


def _row(raw: dict[str, str], where: str) -> Weapon:
    """One CSV row as a `Weapon`; only types are checked here, values by `Catalog`."""

    def text(field: str) -> str:
        value = raw.get(field)
        return "" if value is None else value.strip()

    def items(field: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in text(field).split(";") if s.strip())

    numbers: dict[str, float] = {}
    for field in _NUMBERS:
        value = text(field)
        try:
            numbers[field] = float(value)
        except ValueError:
            reason = "missing" if not value else f"not a number: {value!r}"
            raise CatalogError(f"{where}, field {field!r}: {reason}") from None
    return Weapon(
        id=text("id"),
        name=text("name"),
        aliases=items("aliases"),
        object=text("object"),
        profile=text("profile"),
        speed_kmh=numbers["speed_kmh"],
        range_km=numbers["range_km"],
        cone_deg=numbers["cone_deg"],
        max_silence_s=numbers["max_silence_s"],
        launches=items("launches"),
        sources=items("sources"),
        basis=text("basis"),
    )
