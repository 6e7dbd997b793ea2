"""Reading the official air-raid alert record into `HistoryAlert`s.

The record (`Vadimkin/ukrainian-air-raid-sirens-dataset`, files `official_data_en.csv` and
`official_data_uk.csv`, plain or gzipped) has one row per alert: `oblast`, `raion`, `hromada`
(names; the finer ones empty for coarser alerts), `level`, `started_at`, `finished_at` (UTC,
`YYYY-MM-DD HH:MM:SS+00:00`) and `source`. Names map to KATOTTG codes through
`geo/data/ua-sirens-names.csv.gz` (see `geo/data/ATTRIBUTION.md`):

1. the oblast by its exact name (English or Ukrainian, as the record writes it);
2. a raion by its exact name within that oblast, else by its COD English name with the
   `raion` suffix dropped, compared without case;
3. a hromada by its exact name within that oblast, narrowed to the raion when two match.

One known row of the record has the oblast and the raion swapped; a row whose oblast is not an
oblast but whose raion is, is read the other way round (and counted as repaired). Rows that
still cannot be mapped, or whose times are missing or inverted, are reported by line number.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from tocsin.store.history import HistoryAlert

__all__ = ["REQUIRED_COLUMNS", "NameIndex", "RowProblem", "load_names", "read_official"]

REQUIRED_COLUMNS = ("oblast", "raion", "hromada", "level", "started_at", "finished_at")
LEVELS = ("oblast", "raion", "hromada")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was not imported: its line in the file and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _fold(name: str) -> str:
    return " ".join(name.casefold().split())


class NameIndex:
    """Names of the siren record's oblasts, raions and hromadas, to KATOTTG codes."""

    def __init__(self, rows: Iterable[dict[str, str]]) -> None:
        self._exact: dict[tuple[str, str], list[str]] = {}
        self._cod: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            level, code = row["level"], row["katottg"]
            for name in {row["name_en"], row["name_uk"]} - {""}:
                self._exact.setdefault((level, name), []).append(code)
            if row["cod_name_en"]:
                self._cod.setdefault((level, _fold(row["cod_name_en"])), []).append(code)

    def oblast(self, name: str) -> str | None:
        """The oblast (or city with special status) of this name."""
        found = self._exact.get(("oblast", name), [])
        return found[0] if len(found) == 1 else None

    def raion(self, name: str, oblast: str) -> str | None:
        """The raion of this name in the oblast."""
        prefix = oblast[:4]
        found = [c for c in self._exact.get(("raion", name), []) if c.startswith(prefix)]
        if not found:
            folded = _fold(name).removesuffix(" raion").removesuffix(" район")
            found = [c for c in self._cod.get(("raion", folded), []) if c.startswith(prefix)]
        return found[0] if len(found) == 1 else None

    def hromada(self, name: str, oblast: str, raion: str | None) -> str | None:
        """The hromada of this name in the oblast (and raion, when that tells two apart)."""
        found = [c for c in self._exact.get(("hromada", name), []) if c.startswith(oblast[:4])]
        if len(found) > 1 and raion is not None:
            found = [c for c in found if c.startswith(raion[:6])]
        return found[0] if len(found) == 1 else None

    def resolve(self, level: str, oblast: str, raion: str, hromada: str) -> str | None:
        """The KATOTTG code of the unit a row was raised for, or None."""
        ob = self.oblast(oblast)
        if ob is None:
            return None
        if level == "oblast":
            return ob
        ra = self.raion(raion, ob) if raion else None
        if level == "raion":
            return ra
        return self.hromada(hromada, ob, ra) if level == "hromada" else None


@cache
def load_names() -> NameIndex:
    """The bundled name table."""
    data = (resources.files("tocsin") / "geo" / "data" / "ua-sirens-names.csv.gz").read_bytes()
    text = gzip.decompress(data).decode("utf-8")
    return NameIndex(csv.DictReader(io.StringIO(text)))


def _seconds(text: str) -> int:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        raise ValueError("no UTC offset")
    return int(moment.timestamp())


def read_official(
    lines: Iterable[str], names: NameIndex | None = None
) -> Iterator[HistoryAlert | RowProblem]:
    """Each data row of the record as an alert, or as the problem that kept it out.

    A row that maps only after swapping its oblast and raion comes as the alert followed by a
    `RowProblem` whose reason starts with "repaired".
    """
    names = names or load_names()
    reader = csv.DictReader(lines)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        yield RowProblem(1, f"not the official record: missing column(s) {', '.join(missing)}")
        return
    for row in reader:
        line = reader.line_num
        level = row["level"]
        if level not in LEVELS:
            yield RowProblem(line, f"level: {level!r} is not oblast, raion or hromada")
            continue
        try:
            start = _seconds(row["started_at"])
            end = _seconds(row["finished_at"])
        except (ValueError, AttributeError) as exc:
            yield RowProblem(line, f"started_at/finished_at: not a date-time with offset ({exc})")
            continue
        if end < start:
            yield RowProblem(line, "finished_at is before started_at")
            continue
        oblast, raion, hromada = row["oblast"], row["raion"], row["hromada"]
        code = names.resolve(level, oblast, raion, hromada)
        note = None
        if code is None and names.oblast(oblast) is None and names.oblast(raion) is not None:
            code = names.resolve(level, raion, oblast, hromada)
            note = RowProblem(line, f"repaired: oblast {oblast!r} and raion {raion!r} swapped")
        if code is None:
            where = " / ".join(n for n in (oblast, raion, hromada) if n)
            yield RowProblem(line, f"no {level} named {where!r} in the name table")
            continue
        yield HistoryAlert(code, level, start, end)
        if note is not None:
            yield note
