"""The alert state machine of one (region, alert type).

Rule 1: everything that changes whether a region is under alert lives in this file. The engine
works out *what is true now* (which threats and operators cover the region, how urgently) and
asks `step` what that means for the alert; `step` alone decides the transition.

```
            threat / raise                threat gone
   IDLE ──────────────────────▶ ACTIVE ─────────────────▶ HOLDING
     ▲                          │  ▲                         │
     │        clear             │  └──── threat / raise ─────┤
     ├──────────────────────────┘                            │
     │                      hold expired / clear             │
     └───────────────────────────────────────────────────────┘
```

An alert never ends while something covers the region: only `hold_expired` (nothing covered
it for the hold time) and an operator `clear` end it.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

__all__ = ["SEVERITY_RANK", "EVENT_TRIGGERED_TRANSITIONS", "AlertPhase", "Trigger", "step"]


class AlertPhase(Enum):
    """Where one (region, alert type) stands."""

    # members are singletons, so identity hashing is exact, and C-level rather than Enum's
    # Python-level name hash (it sits on the engine's hottest path)
    __hash__ = object.__hash__

    IDLE = "idle"
    ACTIVE = "active"
    HOLDING = "holding"


class Trigger(Enum):
    """What happened to the region's cover."""

    __hash__ = object.__hash__

    COVERED = "covered"  # at least one threat or operator covers it (maybe changed)
    UNCOVERED = "uncovered"  # nothing covers it any more
    HOLD_EXPIRED = "hold_expired"  # nothing covered it for the hold time
    CLEAR = "clear"  # an operator cleared it


# (phase, trigger) -> (next phase, transition type; "alert_updated" only when something changed)
EVENT_TRIGGERED_TRANSITIONS: Final[
    dict[tuple[AlertPhase, Trigger], tuple[AlertPhase, str | None]]
] = {
    (AlertPhase.IDLE, Trigger.COVERED): (AlertPhase.ACTIVE, "alert_started"),
    (AlertPhase.IDLE, Trigger.UNCOVERED): (AlertPhase.IDLE, None),
    (AlertPhase.IDLE, Trigger.HOLD_EXPIRED): (AlertPhase.IDLE, None),
    (AlertPhase.IDLE, Trigger.CLEAR): (AlertPhase.IDLE, None),
    (AlertPhase.ACTIVE, Trigger.COVERED): (AlertPhase.ACTIVE, "alert_updated"),
    (AlertPhase.ACTIVE, Trigger.UNCOVERED): (AlertPhase.HOLDING, None),
    (AlertPhase.ACTIVE, Trigger.HOLD_EXPIRED): (AlertPhase.ACTIVE, None),
    (AlertPhase.ACTIVE, Trigger.CLEAR): (AlertPhase.IDLE, "alert_ended"),
    (AlertPhase.HOLDING, Trigger.COVERED): (AlertPhase.ACTIVE, "alert_updated"),
    (AlertPhase.HOLDING, Trigger.UNCOVERED): (AlertPhase.HOLDING, None),
    (AlertPhase.HOLDING, Trigger.HOLD_EXPIRED): (AlertPhase.IDLE, "alert_ended"),
    (AlertPhase.HOLDING, Trigger.CLEAR): (AlertPhase.IDLE, "alert_ended"),
}

SEVERITY_RANK: Final = {"pre_alert": 0, "alert": 1, "imminent": 2}


def step(phase: AlertPhase, trigger: Trigger, *, changed: bool) -> tuple[AlertPhase, str | None]:
    """The next phase and the transition to emit; `changed` says whether the severity moved."""
    nxt, kind = EVENT_TRIGGERED_TRANSITIONS[(phase, trigger)]
    if kind == "alert_updated" and not changed:
        kind = None
    return nxt, kind
