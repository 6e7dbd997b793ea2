"""The one exception tree of tocsin.

```
TocsinError                 status_hint 500
├── ValidationError         422  an event or request failed validation (FieldError list)
│   └── EventRejected       422  a well-formed event the engine refuses (e.g. too far ahead)
├── Forbidden               403  the key may not send this (its source, role or a track's owner)
├── Conflict                409  an id already logged with another body (`details`: digests)
├── RegionSetError          422  a region file could not be loaded
├── UnknownRegion           404  a region id not in the loaded set (also a KeyError)
├── CatalogError            422  a weapon catalog file could not be loaded
├── PolicyError             422  a policy file or value is invalid
├── ReplayMismatch          500  a replayed log does not reproduce its transitions
└── StoreError              503  the event log could not be read or written
    ├── OperationalError    503  the database is locked, full or gone
    ├── IntegrityError      500  the log breaks its own invariants
    └── Fenced              503  a deposed cluster leader tried to commit
```

Each class carries `status_hint`, the HTTP status the API maps it to; only `tocsin.api`
turns errors into responses.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CatalogError",
    "Conflict",
    "EventRejected",
    "Fenced",
    "FieldError",
    "Forbidden",
    "IntegrityError",
    "OperationalError",
    "PolicyError",
    "RegionSetError",
    "ReplayMismatch",
    "StoreError",
    "TocsinError",
    "UnknownRegion",
    "ValidationError",
]


class TocsinError(Exception):
    """Base of every error tocsin raises on purpose."""

    status_hint = 500


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field: its dotted path and why it was refused."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ValidationError(TocsinError):
    """Input failed validation; `errors` names each bad field."""

    status_hint = 422

    def __init__(self, errors: list[FieldError] | FieldError) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class EventRejected(ValidationError):
    """A well-formed event the engine refuses, with the reason."""


class Forbidden(TocsinError):
    """The caller's key may not send this: a source, event type, track or siren not its own."""

    status_hint = 403


class Conflict(TocsinError):
    """A request contradicts what is logged; `details` says how (e.g. both digests)."""

    status_hint = 409

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        self.details = dict(details or {})
        super().__init__(message)


class RegionSetError(TocsinError):
    """A region set could not be loaded."""

    status_hint = 422


class UnknownRegion(TocsinError, KeyError):
    """A region id that is not in the loaded region set."""

    status_hint = 404

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown region"


class CatalogError(TocsinError):
    """A weapon catalog could not be loaded."""

    status_hint = 422


class PolicyError(TocsinError):
    """A policy file or value is invalid."""

    status_hint = 422


class ReplayMismatch(TocsinError):
    """Replaying the log did not reproduce the logged transitions."""

    def __init__(self, seq: int, expected: str | None, got: str | None) -> None:
        self.seq = seq
        self.expected = expected
        self.got = got
        super().__init__(f"first difference at seq {seq}: logged {expected!r}, replayed {got!r}")


class StoreError(TocsinError):
    """The event log could not be read or written."""

    status_hint = 503


class OperationalError(StoreError):
    """The database is locked, full or unreachable."""


class IntegrityError(StoreError):
    """The log breaks one of its own invariants."""

    status_hint = 500


class Fenced(StoreError):
    """A cluster leader tried to commit after another node took over (its epoch is stale)."""
