"""Alert policy: horizons, hold time, time-to-shelter and the engine's tolerances.

Every value is configuration with a documented default (`docs/policy.md` is generated from
`POLICY_FIELDS`). A policy file is JSON or TOML with the same keys; `horizons` maps a profile to
`{"alert_s": …, "pre_alert_s": …}` and may name only the profiles it changes.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tocsin.errors import PolicyError

__all__ = ["DEFAULT_HORIZONS", "POLICY_FIELDS", "Horizon", "Policy", "load_policy"]


@dataclass(frozen=True, slots=True)
class Horizon:
    """How far ahead (seconds of flight) a profile raises `alert` and `pre_alert`."""

    alert_s: float
    pre_alert_s: float


# Seconds of flight. Ukrainian practice alerts oblasts on a route well before arrival; these keep
# the footprint of a drone (~185 km/h) at ~90 km for `alert` and ~185 km for `pre_alert`, and of a
# cruise missile at ~330/660 km. Carriers use the speed of what they launch.
DEFAULT_HORIZONS: Mapping[str, Horizon] = MappingProxyType(
    {
        "ballistic": Horizon(600, 1200),
        "cruise": Horizon(1200, 2400),
        "drone": Horizon(1800, 3600),
        "glide_bomb": Horizon(600, 900),
        "carrier": Horizon(900, 1800),
        "interceptor": Horizon(180, 300),
        "debris": Horizon(180, 300),
        "unknown": Horizon(1200, 2400),
    }
)


@dataclass(frozen=True, slots=True)
class Policy:
    """Every tunable of the engine. Defaults are safe for Ukraine's hromadas."""

    horizons: Mapping[str, Horizon] = field(default_factory=lambda: DEFAULT_HORIZONS)
    shelter_s: float = 90.0
    hold_s: float = 300.0
    max_future_s: float = 300.0
    reckon_s: float = 30.0
    recompute_km: float = 1.0
    recompute_fraction: float = 0.02
    recompute_deg: float = 5.0
    recompute_speed_ratio: float = 0.1
    downgrade_margin_s: float = 120.0
    cap_expires_s: float = 86_400.0

    def horizon(self, profile: str) -> Horizon:
        """The horizon of a profile, falling back to `unknown`."""
        return self.horizons.get(profile) or self.horizons["unknown"]

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain JSON values."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "horizons":
                value = {k: {"alert_s": h.alert_s, "pre_alert_s": h.pre_alert_s}
                         for k, h in sorted(value.items())}
            out[f.name] = value
        return out


POLICY_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "horizons": "Per profile, seconds of flight within which a region gets `alert` and "
        "`pre_alert`; the footprint reaches as far as the object flies in `pre_alert_s`.",
        "shelter_s": "Default time-to-shelter (s) for regions that do not carry their own "
        "`shelter_s`; an ETA at or below it makes the alert `imminent`.",
        "hold_s": "Seconds an automatic alert stays after the last threat stopped covering the "
        "region (debris falls, trajectories bend).",
        "max_future_s": "An event dated more than this many seconds after the latest `tick` is "
        "rejected (a sensor clock gone wrong must not schedule alerts in the future); in a "
        "server, one dated ahead by less is applied as of the server's clock.",
        "reckon_s": "Seconds between dead-reckoning updates of a track with no news.",
        "recompute_km": "A detection that moved less than this from the position of the last "
        "footprint keeps that footprint (its ETAs keep counting down).",
        "recompute_fraction": "…or, for long footprints, less than this fraction of the "
        "footprint's length (its far edge then lags by at most that much).",
        "recompute_deg": "Likewise for a heading change below this many degrees.",
        "recompute_speed_ratio": "Likewise for a speed change below this fraction.",
        "downgrade_margin_s": "An active alert lowers its severity only when the ETA is this "
        "many seconds past the threshold (hysteresis against flapping sirens).",
        "cap_expires_s": "CAP `<expires>` of each published message is its `sent` plus this "
        "(each Update renews it): a consumer that misses the Cancel ages the alert out then.",
    }
)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PolicyError(f"{name}: must be a non-negative number (got {value!r})")
    return float(value)


def load_policy(source: str | Path | Mapping[str, Any] | None = None) -> Policy:
    """Build a policy from a JSON/TOML file or mapping, over the defaults."""
    if source is None:
        return Policy()
    if isinstance(source, Mapping):
        data: Mapping[str, Any] = source
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as exc:
            raise PolicyError(f"{path}: {exc}") from exc
        if not isinstance(data, Mapping):
            raise PolicyError(f"{path}: must hold an object")
    known = {f.name for f in fields(Policy)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PolicyError(f"unknown policy key(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "horizons":
            if not isinstance(value, Mapping):
                raise PolicyError("horizons: must map profile -> {alert_s, pre_alert_s}")
            merged = dict(DEFAULT_HORIZONS)
            for profile, h in value.items():
                if not isinstance(h, Mapping) or set(h) - {"alert_s", "pre_alert_s"}:
                    raise PolicyError(f"horizons.{profile}: expected alert_s and pre_alert_s")
                base = merged.get(profile, DEFAULT_HORIZONS["unknown"])
                a = _positive(f"horizons.{profile}.alert_s", h.get("alert_s", base.alert_s))
                p = _positive(
                    f"horizons.{profile}.pre_alert_s", h.get("pre_alert_s", base.pre_alert_s)
                )
                if p < a:
                    raise PolicyError(f"horizons.{profile}: pre_alert_s must be >= alert_s")
                merged[profile] = Horizon(a, p)
            changes[key] = MappingProxyType(merged)
        else:
            changes[key] = _positive(key, value)
    return replace(Policy(), **changes)
