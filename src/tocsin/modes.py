"""Deployment modes: `actual`, `exercise` and `test`, and how every output marks them.

A drill must never be taken for the real thing by a machine that reads tocsin: every published
transition carries the mode (`stamp`, applied where transitions become published payloads), and
each output that has a field for a human note says so in words (`notice`). Sirens listen on a
topic root of their own per mode, so a production siren never hears an exercise.
"""

from __future__ import annotations

from typing import Any, Final

from tocsin.errors import TocsinError

__all__ = ["ACTUAL", "MODES", "check_mode", "notice", "stamp"]

ACTUAL: Final = "actual"
MODES: Final = ("actual", "exercise", "test")

_NOTICE: Final = {
    "exercise": "EXERCISE, not a real alert / НАВЧАННЯ, не справжня тривога",
    "test": "TEST, not a real alert / ТЕСТ, не справжня тривога",
}


def check_mode(mode: str) -> str:
    """`mode` if it is one of `MODES`, else a `TocsinError` naming them."""
    if mode not in MODES:
        raise TocsinError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    return mode


def notice(mode: str) -> str | None:
    """The words that mark output of a drill (None in `actual` mode)."""
    return _NOTICE.get(mode)


def stamp(env: dict[str, Any], *, published_at: str, mode: str) -> dict[str, Any]:
    """Finish a transition's envelope for publishing: when it went out and in which mode."""
    env["published_at"] = published_at
    env["mode"] = mode
    return env
