"""Admin endpoints: API keys and webhook subscriptions (admin key required)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from tocsin.api.auth import Principal, authenticate, require
from tocsin.errors import FieldError, ValidationError
from tocsin.model import ALERT_TYPES
from tocsin.outputs.webhooks import TargetRefused, TargetUnresolved, resolve_target
from tocsin.service import Service
from tocsin.store.admin import ROLES

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["admin"])


def admin_service(request: Request, principal: Principal = Depends(authenticate)) -> Service:
    """The service, after checking the caller holds an admin key."""
    require(principal, "admin")
    service: Service = request.app.state.service
    return service


class KeyIn(BaseModel):
    """A key to create."""

    role: str = Field(description=f"one of {', '.join(ROLES)}")
    name: str | None = Field(None, max_length=200)
    sources: list[str] = Field(
        default_factory=list, max_length=64,
        description="event sources the key may send as, besides its name")


@router.post("/keys", status_code=201)
async def create_key(body: KeyIn, service: Service = Depends(admin_service)) -> dict[str, Any]:
    """Create a key; the key itself is in this answer only."""
    key, rec = service.admin.create_key(body.role, body.name, body.sources)
    return {"key": key, **rec.to_dict()}


@router.get("/keys")
async def list_keys(service: Service = Depends(admin_service)) -> dict[str, Any]:
    """Every key (never the keys themselves)."""
    return {"keys": [k.to_dict() for k in service.admin.list_keys()]}


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, service: Service = Depends(admin_service)) -> dict[str, Any]:
    """Revoke a key by id or name."""
    if not service.admin.revoke_key(key_id):
        raise HTTPException(404, f"no live key {key_id!r}")
    return {"revoked": key_id}


class PointIn(BaseModel):
    """A WGS84 point."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class SubscriptionIn(BaseModel):
    """A webhook subscription: where, and what to match."""

    url: str
    regions: list[str] | None = None
    point: PointIn | None = None
    radius_km: float | None = Field(None, gt=0, le=2000)
    alert_types: list[str] | None = None


@router.post("/subscriptions", status_code=201)
async def create_subscription(
    body: SubscriptionIn, service: Service = Depends(admin_service)
) -> dict[str, Any]:
    """Subscribe a URL to matching transitions; the signing secret is in this answer only."""
    errors = []
    try:
        await asyncio.to_thread(resolve_target, body.url,
                                allow_private=service.settings.allow_private_webhooks)
    except TargetUnresolved:
        pass  # DNS may be down now; every delivery resolves and checks again
    except TargetRefused as exc:
        errors.append(FieldError("url", str(exc)))
    if body.regions is None and body.point is None:
        errors.append(FieldError("regions", "give regions or a point"))
    if body.regions is not None and body.point is not None:
        errors.append(FieldError("point", "give regions or a point, not both"))
    if body.radius_km is not None and body.point is None:
        errors.append(FieldError("radius_km", "goes with a point"))
    for i, rid in enumerate(body.regions or ()):
        if rid not in service.regions:
            errors.append(FieldError(f"regions[{i}]", f"unknown region {rid!r}"))
    for i, atype in enumerate(body.alert_types or ()):
        if atype not in ALERT_TYPES:
            errors.append(
                FieldError(f"alert_types[{i}]", f"must be one of {', '.join(ALERT_TYPES)}")
            )
    if errors:
        raise ValidationError(errors)
    spec = body.model_dump(exclude={"url"}, exclude_none=True)
    rec = service.admin.create_subscription(body.url, spec, service.ledger.next_seq - 1)
    return {**rec.to_dict(), "secret": rec.secret}


@router.get("/subscriptions")
async def list_subscriptions(service: Service = Depends(admin_service)) -> dict[str, Any]:
    """Every subscription with how far delivery got."""
    return {"subscriptions": [s.to_dict() for s in service.admin.subscriptions()]}


@router.delete("/subscriptions/{sub_id}")
async def delete_subscription(sub_id: str,
                              service: Service = Depends(admin_service)) -> dict[str, Any]:
    """Stop delivering to a subscription."""
    if not service.admin.deactivate_subscription(sub_id):
        raise HTTPException(404, f"no active subscription {sub_id!r}")
    return {"deleted": sub_id}


@router.get("/subscriptions/{sub_id}/deliveries")
async def deliveries(sub_id: str, limit: int = 100,
                     service: Service = Depends(admin_service)) -> dict[str, Any]:
    """The latest delivery attempts of a subscription, newest first."""
    if service.admin.get_subscription(sub_id) is None:
        raise HTTPException(404, f"no subscription {sub_id!r}")
    return {"deliveries": [d.to_dict() for d in service.admin.deliveries(sub_id, limit)]}
