"""Bearer-key authentication, role checks and per-key rate limits."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import HTTPException, Request

from tocsin.store.admin import AdminStore, ApiKey

__all__ = ["EVENT_ROLES", "Principal", "RateLimiter", "authenticate", "require"]

# Who may send which event type; admin may do everything.
EVENT_ROLES = {
    "detection": "sensor",
    "track_end": "sensor",
    "impact": "sensor",
    "siren_status": "sensor",
    "operator_alert": "operator",
    "threat_level": "operator",
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key, or nobody."""

    key: ApiKey | None

    @property
    def name(self) -> str | None:
        """The key's name, recorded with every event it submits."""
        return self.key.name if self.key else None

    def has(self, role: str) -> bool:
        """Whether the caller holds `role` (admin holds every role; any key may read)."""
        if self.key is None:
            return False
        if self.key.role == "admin" or self.key.role == role:
            return True
        return role == "reader"


class RateLimiter:
    """A token bucket per caller: `rate` per second, bursts of `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, who: str) -> float:
        """0 if allowed (and charged), else seconds until a request would be allowed."""
        now = time.monotonic()
        tokens, last = self._buckets.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[who] = (tokens - 1.0, now)
            return 0.0
        self._buckets[who] = (tokens, now)
        return (1.0 - tokens) / self.rate if self.rate > 0 else 60.0


def authenticate(request: Request) -> Principal:
    """The caller of a request; 401 for a malformed or unknown key."""
    header = request.headers.get("authorization")
    admin: AdminStore = request.app.state.service.admin
    limiter: RateLimiter = request.app.state.limiter
    if header is None:
        principal = Principal(None)
        who = f"ip:{request.client.host if request.client else '?'}"
    else:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "Authorization must be 'Bearer KEY'",
                                headers={"WWW-Authenticate": "Bearer"})
        key = admin.authenticate(token.strip())
        if key is None:
            raise HTTPException(401, "unknown or revoked API key",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = Principal(key)
        who = f"key:{key.id}"
    wait = limiter.check(who)
    if wait:
        raise HTTPException(429, "rate limit exceeded",
                            headers={"Retry-After": str(max(1, round(wait + 0.5)))})
    return principal


def require(principal: Principal, role: str) -> None:
    """403 (or 401 without a key) unless the caller holds `role`."""
    if principal.key is None:
        raise HTTPException(401, f"this needs a {role} key", headers={"WWW-Authenticate": "Bearer"})
    if not principal.has(role):
        raise HTTPException(403, f"this needs a {role} key; yours is {principal.key.role}")
