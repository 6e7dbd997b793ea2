"""Who a client is, and how much it may take: trusted proxies, token buckets, stream counts.

Every structure here is bounded by configuration, never by how many addresses call: buckets
are pruned (a bucket that has refilled is the same as no bucket) and, past `max_buckets`, the
least recently used are forgotten.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.datastructures import State

    from tocsin.config import Settings

__all__ = ["ClientCounter", "RateLimiter", "TrustedProxies", "install_limits", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (comma-separated or a list) as networks; `ValueError` names the bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[Network] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted proxy {item!r} is not an address or CIDR") from exc
    return tuple(out)


class TrustedProxies:
    """The client address of a request: `X-Forwarded-For` counts only from trusted proxies.

    The chain is read from the right: each hop appended by a trusted proxy is skipped, and the
    first address not in a trusted network is the client. From anyone else the header is
    ignored, so a client cannot pick its own rate-limit bucket.
    """

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)

    def trusted(self, host: str) -> bool:
        """Whether `host` is one of the configured proxies."""
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def client(self, scope: Mapping[str, Any]) -> str:
        """The address rate limits and stream counts are kept for."""
        peer = scope.get("client")
        host = str(peer[0]) if peer else "?"
        if not self.trusted(host):
            return host
        forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ())
                     if name == b"x-forwarded-for"]
        hops = [h.strip() for h in ",".join(forwarded).split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return host  # garbage from behind the proxy: charge the proxy's bucket
            host = hop
        return host


class RateLimiter:
    """A token bucket per caller: `rate` per second, bursts of `burst`, at most `max_buckets`."""

    def __init__(self, rate: float, burst: int, max_buckets: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_buckets = max_buckets
        # least recently charged first; a full bucket carries no information and is dropped
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, who: str, cost: float = 1.0) -> float:
        """0 if allowed (and charged), else seconds until a request would be allowed."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[who] = (tokens, now)
        if len(self._buckets) > self.max_buckets:
            self._prune(now)
        if allowed:
            return 0.0
        return (cost - tokens) / self.rate if self.rate > 0 else 60.0

    def peek(self, who: str) -> float:
        """Seconds until `who` may be charged once more (0: now); charges nothing."""
        entry = self._buckets.get(who)
        if entry is None:
            return 0.0
        tokens = min(self.burst, entry[0] + (time.monotonic() - entry[1]) * self.rate)
        if tokens >= 1.0:
            return 0.0
        return (1.0 - tokens) / self.rate if self.rate > 0 else 60.0

    def _prune(self, now: float) -> None:
        refill = self.burst / self.rate if self.rate > 0 else float("inf")
        # the oldest first: once one has not refilled, none after it has
        while self._buckets:
            who, (_tokens, last) = next(iter(self._buckets.items()))
            if now - last < refill and len(self._buckets) <= self.max_buckets:
                break
            del self._buckets[who]


class ClientCounter:
    """Open streams per client, refusing more than `limit` (entries vanish at zero)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, who: str) -> bool:
        """Count one more stream for `who`, unless it already has `limit`."""
        n = self._open.get(who, 0)
        if n >= self.limit:
            return False
        self._open[who] = n + 1
        return True

    def release(self, who: str) -> None:
        """One stream of `who` ended."""
        n = self._open.get(who, 0) - 1
        if n > 0:
            self._open[who] = n
        else:
            self._open.pop(who, None)

    def __len__(self) -> int:
        return len(self._open)


def install_limits(state: State, settings: Settings) -> None:
    """The limiters an app's handlers find on `app.state`, sized by the settings."""
    state.proxies = TrustedProxies(parse_networks(settings.trusted_proxies))
    state.limiter = RateLimiter(settings.rate_limit, settings.rate_burst, settings.rate_buckets)
    state.auth_failures = RateLimiter(settings.auth_fail_rate, settings.auth_fail_burst,
                                      settings.rate_buckets)
    state.stream_counter = ClientCounter(settings.stream_max_per_client)
