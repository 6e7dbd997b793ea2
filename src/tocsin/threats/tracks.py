"""Track state: what the engine knows of one object, and where it is likely to be.

Kinematics are geodesic on WGS84 (`pyproj.Geod`). Speeds lean to the earlier warning: a track
flies at the faster of what the sensor measured and what its catalog row says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pyproj import Geod

from tocsin.geo import Footprint
from tocsin.threats.catalog import Resolved

__all__ = ["GEOD", "Track", "advance"]

GEOD = Geod(ellps="WGS84")
_NO_POS: NDArray[np.intp] = np.empty(0, dtype=np.intp)
_NO_ETA: NDArray[np.float64] = np.empty(0)


def advance(lat: float, lon: float, heading_deg: float, dist_m: float) -> tuple[float, float]:
    """The point `dist_m` metres from (lat, lon) along `heading_deg`."""
    if dist_m <= 0:
        return lat, lon
    lon2, lat2, _ = GEOD.fwd(lon, lat, heading_deg, dist_m)
    return float(lat2), float(lon2)


@dataclass(slots=True)
class Track:
    """One live object. Times are integer microseconds since the epoch."""

    id: str
    object: str
    resolved: Resolved
    affiliation: str | None
    lat: float
    lon: float
    heading_deg: float | None
    speed_mps: float  # ETA speed: the fastest of measured, catalog and (carriers) payload
    t_fix: int  # time of the last position fix
    flown_m: float = 0.0
    phase: str | None = None
    last_news: int = 0
    # the footprint in force: positions in the region set's `leaves` (sorted), and the ETA (s)
    # at each as of t_cov
    cov_pos: NDArray[np.intp] = field(default_factory=lambda: _NO_POS)
    cov_eta: NDArray[np.float64] = field(default_factory=lambda: _NO_ETA)
    slot: int = -1  # the track's column in the engine's `Field`
    t_cov: int = 0
    fp_length_m: float = 0.0  # length of the footprint in force
    anchor: tuple[float, float, float | None, float] = (0.0, 0.0, None, 0.0)
    expire_at: int = 0
    reckon_at: int = 0
    # the sources that reported it: only they (or a fusion key) may fix it, only they end it
    sources: set[str] = field(default_factory=set)

    @property
    def profile(self) -> str:
        """The flight profile of the catalog row in use."""
        return self.resolved.weapon.profile

    @property
    def weapon_id(self) -> str:
        """The catalog id in use (a class default when the weapon was unknown)."""
        return self.resolved.weapon.id

    @property
    def reach_m(self) -> float:
        """How much further the object (or what it can launch) can still go."""
        return max(0.0, self.resolved.reach_km * 1000.0 - self.flown_m)

    def position_at(self, t: int) -> tuple[float, float]:
        """Dead-reckoned position at `t` (the last fix when there is no heading)."""
        if self.heading_deg is None or self.profile == "carrier":
            return self.lat, self.lon
        dt = max(0, t - self.t_fix) / 1e6
        return advance(self.lat, self.lon, self.heading_deg, self.speed_mps * dt)

    def spent(self, t: int) -> bool:
        """Whether dead reckoning says the object has flown all its range by `t`."""
        if self.profile == "carrier":
            return False
        elapsed = max(0, t - self.t_fix) / 1e6
        return self.reach_m - self.speed_mps * elapsed <= 0

    def footprint(self, t: int, pre_alert_s: float) -> tuple[Footprint, float]:
        """The footprint at `t` and the seconds to subtract from distance/speed for ETAs.

        With a heading the cone starts at the dead-reckoned position. Without one the object may
        be anywhere within what it flew since the fix, so the disc grows by that much and ETAs
        shrink by the time elapsed.
        """
        elapsed = max(0, t - self.t_fix) / 1e6
        half = self.resolved.weapon.cone_deg
        if self.heading_deg is None or self.profile == "carrier" or half >= 180:
            length = min(self.speed_mps * (pre_alert_s + elapsed), self.reach_m)
            return Footprint(self.lat, self.lon, length, None, 180.0), elapsed
        lat, lon = self.position_at(t)
        left = max(0.0, self.reach_m - self.speed_mps * elapsed)
        length = min(self.speed_mps * pre_alert_s, left)
        return Footprint(lat, lon, length, self.heading_deg, half), 0.0
