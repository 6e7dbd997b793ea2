"""Bearer-key authentication, role checks and per-key rate limits."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from tocsin.api.limits import RateLimiter, TrustedProxies
from tocsin.store.admin import AdminStore, ApiKey

__all__ = ["EVENT_ROLES", "Principal", "RateLimiter", "authenticate", "client_of", "require"]

# The least role that sends each event type (admin may do everything); `tocsin.trust` has the
# whole matrix (fusion keys send what sensors do, operators also end tracks) and ownership rules.
EVENT_ROLES = {
    "detection": "sensor",
    "track_end": "sensor",
    "impact": "sensor",
    "siren_status": "admin",  # and the server's own siren gateway
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


def client_of(request: Request) -> str:
    """The caller's address (`X-Forwarded-For` only from a trusted proxy)."""
    proxies: TrustedProxies = request.app.state.proxies
    return proxies.client(request.scope)


def authenticate(request: Request) -> Principal:
    """The caller of a request; 401 for a malformed or unknown key, 429 over a limit.

    Failed key attempts are charged to the caller's address in a bucket of their own
    (`auth_fail_rate`): past it, a failed attempt gets 429 instead of 401, so keys cannot be
    tried at the request rate. A valid key is never refused for others' failures: clients
    behind one address (a NAT, a proxy) are not locked out by a neighbour guessing keys.
    """
    header = request.headers.get("authorization")
    admin: AdminStore = request.app.state.admin
    limiter: RateLimiter = request.app.state.limiter
    ip = client_of(request)
    if header is None:
        principal = Principal(None)
        who = f"ip:{ip}"
    else:
        scheme, _, token = header.partition(" ")
        well_formed = scheme.lower() == "bearer" and bool(token.strip())
        key = admin.authenticate(token.strip()) if well_formed else None
        if key is None:
            failures: RateLimiter = request.app.state.auth_failures
            wait = failures.check(ip)
            if wait:
                raise HTTPException(429, "too many failed authentication attempts",
                                    headers={"Retry-After": str(max(1, round(wait + 0.5)))})
            reason = "unknown or revoked API key" if well_formed \
                else "Authorization must be 'Bearer KEY'"
            raise HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})
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
