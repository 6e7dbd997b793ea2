"""Stream tickets: how a browser opens the SSE stream of a `--private` server.

`EventSource` cannot send an Authorization header, and a key in a URL ends up in logs and
history. So a page holding a reader key asks `POST /api/v1/stream/ticket` (with the key in the
header) for a ticket: random, good for one stream, for `TTL_S` seconds, and for nothing else.
It then opens `/api/v1/stream?ticket=…`. A used, expired or unknown ticket is refused with 401;
the page asks for a new one on every (re)connect.

Bounded: at most `per_key` live tickets per key (a new one evicts that key's oldest) and
`limit` in all (then 429 until some expire or are used); only their hashes are kept.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import APIRouter, Depends, HTTPException, Request

from tocsin.api.auth import Principal, authenticate, require
from tocsin.store.admin import ApiKey

__all__ = ["StreamTickets", "router", "stream_principal"]

router = APIRouter(tags=["stream"])

TTL_S = 30.0
PREFIX = "st_"


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class StreamTickets:
    """Single-use stream tickets, kept by hash with their key and expiry."""

    def __init__(self, ttl_s: float = TTL_S, limit: int = 4096, per_key: int = 16,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self.per_key = per_key
        self.clock = clock
        # oldest first: expiry is issue time + a fixed ttl, so also soonest to expire first
        self._live: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._live)

    def _expire(self, now: float) -> None:
        while self._live:
            digest, (_key, expires) = next(iter(self._live.items()))
            if expires > now:
                break
            del self._live[digest]

    def issue(self, key: ApiKey) -> str | None:
        """A new ticket for `key`, or None when `limit` tickets are live."""
        now = self.clock()
        self._expire(now)
        mine = [d for d, (k, _e) in self._live.items() if k.id == key.id]
        for digest in mine[: max(0, len(mine) - self.per_key + 1)]:
            del self._live[digest]
        if len(self._live) >= self.limit:
            return None
        ticket = PREFIX + secrets.token_urlsafe(24)
        self._live[_digest(ticket)] = (key, now + self.ttl_s)
        return ticket

    def redeem(self, ticket: str) -> ApiKey | None:
        """The key a live ticket was issued to; the ticket is used up either way."""
        now = self.clock()
        self._expire(now)
        if not ticket.startswith(PREFIX) or len(ticket) > 100:
            return None
        found = self._live.pop(_digest(ticket), None)
        if found is None or found[1] <= now:
            return None
        return found[0]


def tickets_of(request: Request) -> StreamTickets:
    tickets: StreamTickets | None = getattr(request.app.state, "stream_tickets", None)
    if tickets is None:
        tickets = request.app.state.stream_tickets = StreamTickets()
    return tickets


@router.post("/api/v1/stream/ticket")
async def stream_ticket(
    request: Request, principal: Principal = Depends(authenticate),
) -> dict[str, object]:
    """A single-use ticket to open `/api/v1/stream?ticket=…` within `expires_in_s` (reader key)."""
    require(principal, "reader")
    assert principal.key is not None  # require() refused a call without a key
    tickets = tickets_of(request)
    ticket = tickets.issue(principal.key)
    if ticket is None:
        raise HTTPException(429, "too many stream tickets outstanding; try again shortly",
                            headers={"Retry-After": str(int(tickets.ttl_s))})
    return {"ticket": ticket, "expires_in_s": tickets.ttl_s}


def stream_principal(request: Request, ticket: str | None) -> Principal:
    """Who opens a stream: a ticket's key if a ticket is given, else as for any read."""
    if ticket is None:
        principal = authenticate(request)
        if request.app.state.settings.private:
            require(principal, "reader")
        return principal
    key = tickets_of(request).redeem(ticket)
    if key is None:
        raise HTTPException(401, "stream ticket unknown, expired or already used; ask for a "
                                 "new one", headers={"WWW-Authenticate": "Bearer"})
    return Principal(key)
