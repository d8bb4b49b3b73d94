"""``/v1/audit``: who created, cancelled and deleted which job (admin keys only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Query
from pydantic import BaseModel

from geobatch.api.deps import AdminDep, ServiceDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    job_id: str | None


class AuditList(BaseModel):
    entries: list[AuditEntryPublic]
    next_before: int | None


@router.get("", response_model=AuditList)
async def audit_log(
    service: ServiceDep,
    caller: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="entries older than this id")
    ] = None,
) -> AuditList:
    """The tenant's audit entries, newest first; pass ``next_before`` as ``before`` for more."""
    found = await anyio.to_thread.run_sync(
        lambda: service.audit.entries(caller.tenant, limit=limit, before_id=before)
    )
    return AuditList(
        entries=[
            AuditEntryPublic(id=e.id, at=e.at, actor=e.actor, action=e.action, job_id=e.job_id)
            for e in found
        ],
        next_before=found[-1].id if len(found) == limit else None,
    )
