"""`GET /api/v1/cluster`: which node this is and who leads; events refused after their `202`.

On an embedded server (no `--bus`) the one node is its own leader and nothing is ever refused
after its `202` (the embedded ingest decides before answering).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query

from tocsin.api.read import reader
from tocsin.service import Service

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/cluster", tags=["cluster"])


@router.get("")
async def cluster(service: Service = Depends(reader)) -> dict[str, Any]:
    """This node, whether it leads, who leads (null while nobody does), and how far it got."""
    return await service.status()


@router.get("/rejected")
async def rejected(
    after: int = Query(0, ge=0, le=2**63 - 1,
                       description="events stream position to list after"),
    limit: int = Query(100, ge=1, le=1000),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """Events an ingest node accepted (`202`) that the leader then refused, with the reasons."""
    rows = await asyncio.to_thread(service.log.rejections, after, limit)
    return {"rejected": [r.to_dict() for r in rows]}


@router.get("/event")
async def event_status(
    source: str = Query(..., description="the event's source"),
    id: str = Query(..., description="the event's id"),
    service: Service = Depends(reader),
) -> dict[str, Any]:
    """What became of an event: `logged` (with its seq), `rejected` (why), or `unknown` (not
    received, or still on its way to the leader)."""
    seq = await asyncio.to_thread(service.log.find_event, source, id)
    if seq is not None:
        return {"source": source, "id": id, "status": "logged", "seq": seq}
    refusal = await asyncio.to_thread(service.log.rejection, source, id)
    if refusal is not None:
        return {"source": source, "id": id, "status": "rejected", **refusal.to_dict()}
    return {"source": source, "id": id, "status": "unknown"}
