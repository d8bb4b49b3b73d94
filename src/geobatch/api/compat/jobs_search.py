"""The jobs search API under ``/immuta``: jobs by bulk id, search, summary by state, and a
long-polled status of many jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from geobatch.api.compat.common import natives_of, newest_jobs
from geobatch.api.deps import ServiceDep, TenantDep
from geobatch.api.schemas import IsoTime
from geobatch.jobs import JOB_TYPES, Job, JobFilter, JobStatus

STATUS = {
    JobStatus.CREATED: "created",
    JobStatus.QUEUED: "created",
    JobStatus.RUNNING: "active",
    JobStatus.PAUSED: "created",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.EXPIRED: "expired",
}
"""geobatch status -> job state. ``retry`` is never reported: geobatch retries chunks, not
jobs, and a job with a retried chunk is still ``active``."""

STATES = ("active", "cancelled", "completed", "created", "expired", "failed", "retry")
MAX_WINDOW = 10_000
"""``offset + size`` at most: offsets are read through from the newest job."""

_NAMES = "|".join(sorted(JOB_TYPES))
JobTypes = Annotated[str, StringConstraints(pattern=rf"^\s*({_NAMES})\s*(,\s*({_NAMES})\s*)*$")]
"""One job type, or several separated by commas."""

router = APIRouter(prefix="/immuta", tags=["compat: jobs search"])


def _output(request: Request, job: Job) -> str | None:
    """Where the results are for a completed job, the reason for a failed one."""
    if job.status is JobStatus.SUCCEEDED:
        return f"{str(request.base_url).rstrip('/')}/v1/jobs/{job.id}/results"
    if job.status is JobStatus.FAILED and job.error:
        return job.error.get("message")
    return None


def _state(request: Request, job: Job) -> dict[str, Any]:
    return {"id": job.id, "state": STATUS[job.status], "output": _output(request, job)}


def _job(request: Request, job: Job) -> dict[str, Any]:
    return {
        **_state(request, job),
        "jobType": job.type,
        "bulkId": job.bulk_id,
        "createdAt": job.created_at.isoformat(),
        "updatedAt": job.updated_at.isoformat(),
        "startedAt": job.started_at.isoformat() if job.started_at else None,
        "completedAt": job.finished_at.isoformat() if job.finished_at else None,
        "metadata": job.metadata,
    }


def _types(job_type: list[str] | None, job_type_brackets: list[str] | None) -> list[str | None]:
    """``jobType`` may come as ``jobType=a&jobType=b``, ``jobType[]=a`` or ``jobType=a,b``."""
    names = [n.strip() for v in (job_type or []) + (job_type_brackets or []) for n in v.split(",")]
    return [n for n in names if n] or [None]


def _jobs(
    service: ServiceDep,
    tenant: str,
    types: list[str | None],
    statuses: tuple[JobStatus, ...],
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Job]:
    filters = (
        JobFilter(
            tenant=tenant, type=kind, status=statuses, created_after=start, created_before=end
        )
        for kind in types
    )
    return newest_jobs(service, filters, limit)


@router.get("/jobs")
def bulk_jobs(
    request: Request,
    service: ServiceDep,
    tenant: TenantDep,
    bulk_id: Annotated[str, Query(alias="bulkId", min_length=1)],
) -> list[dict[str, Any]]:
    """Every job of a bulk submission with its state and output."""
    found, _ = service.list_jobs(
        JobFilter(tenant=tenant, bulk_id=bulk_id), page_size=MAX_WINDOW, page_token=None
    )
    return [_state(request, job) for job in found]


@router.get("/jobs/search")
def search(
    request: Request,
    service: ServiceDep,
    tenant: TenantDep,
    job_type: Annotated[list[JobTypes] | None, Query(alias="jobType")] = None,
    job_type_brackets: Annotated[list[JobTypes] | None, Query(alias="jobType[]")] = None,
    state: Annotated[str | None, Query(pattern=f"^({'|'.join(STATES)})$")] = None,
    start_date: Annotated[IsoTime | None, Query(alias="startDate")] = None,
    end_date: Annotated[IsoTime | None, Query(alias="endDate")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The caller's jobs, newest first; ``next`` is the offset of the next page, if any."""
    if offset + size > MAX_WINDOW:
        size = max(1, MAX_WINDOW - offset)
    statuses = natives_of(STATUS, state, field="state") if state and state != "retry" else ()
    if state == "retry":
        return {"jobs": [], "next": None}
    types = _types(job_type, job_type_brackets)
    found = _jobs(service, tenant, types, statuses, start_date, end_date, offset + size + 1)
    page = found[offset : offset + size]
    more = len(found) > offset + size
    return {
        "jobs": [_job(request, job) for job in page],
        "next": str(offset + size) if more else None,
    }


@router.get("/jobs/summary")
def summary(
    service: ServiceDep,
    tenant: TenantDep,
    job_type: Annotated[list[JobTypes] | None, Query(alias="jobType")] = None,
    job_type_brackets: Annotated[list[JobTypes] | None, Query(alias="jobType[]")] = None,
    start_date: Annotated[IsoTime | None, Query(alias="startDate")] = None,
    end_date: Annotated[IsoTime | None, Query(alias="endDate")] = None,
) -> dict[str, Any]:
    """How many of the caller's jobs of each type are in each state."""
    wanted = set(_types(job_type, job_type_brackets)) - {None}
    counts = service.summary(
        JobFilter(tenant=tenant, created_after=start_date, created_before=end_date)
    )
    types = []
    for kind, by_status in sorted(counts.items()):
        if wanted and kind not in wanted:
            continue
        states = dict.fromkeys(STATES, 0)
        for native, count in by_status.items():
            states[STATUS[JobStatus(native)]] += count
        types.append({"name": kind, "total": sum(states.values()), "states": states})
    return {"jobType": types}


def _whole(value: Any) -> Any:
    """JSON writes an integer as ``23`` or ``23.0``; strings and booleans stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Seconds = Annotated[int, BeforeValidator(_whole)]


class StatusesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobIds: list[str] = Field(min_length=1, max_length=1000)
    wait: Seconds = Field(
        default=0, ge=-1, strict=True, description="seconds; -1 = until all are done"
    )
    pollInterval: Seconds = Field(default=1, ge=1, le=60, strict=True)


@router.post("/jobs/statuses")
async def statuses(
    request: Request, body: StatusesBody, service: ServiceDep, tenant: TenantDep
) -> list[dict[str, Any]]:
    """State and output of each job; with ``wait``, answers once all have ended."""
    wait = service.settings.long_poll_max_seconds if body.wait < 0 else body.wait
    found = await service.statuses(tenant, body.jobIds, wait=wait, poll_interval=body.pollInterval)
    return [_state(request, job) for job in found]
