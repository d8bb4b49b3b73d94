"""Per-tenant quotas: how many jobs may run at once, and how many input bytes may be kept."""

from __future__ import annotations

import sqlalchemy as sa

from geobatch.config import Settings
from geobatch.errors import QuotaExceeded
from geobatch.jobs.database import Database
from geobatch.jobs.states import JobStatus
from geobatch.jobs.tables import jobs

ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
RETRY_SECONDS = 30


def check_running(database: Database, tenant: str, settings: Settings) -> None:
    """Refuse (429) to queue one more job while the tenant has its quota of active jobs."""
    limit = settings.max_running_jobs
    if not limit:
        return
    query = sa.select(sa.func.count()).where(jobs.c.tenant == tenant, jobs.c.status.in_(ACTIVE))
    with database.read_engine.connect() as connection:
        active = connection.execute(query).scalar_one()
    if active >= limit:
        raise QuotaExceeded(
            f"The tenant already has {active} jobs queued or running; the quota is {limit}. "
            "Retry when one has finished, or create the job with start=false.",
            retry_after=RETRY_SECONDS,
            quota=limit,
        )


def stored_bytes(database: Database, tenant: str) -> int:
    """Bytes of uploaded inputs the tenant's jobs keep (jobs whose files were not deleted)."""
    query = sa.select(jobs.c.input).where(
        jobs.c.tenant == tenant, jobs.c.status != JobStatus.EXPIRED.value
    )
    with database.read_engine.connect() as connection:
        return sum(
            int((row.input or {}).get("size_bytes") or 0) for row in connection.execute(query)
        )


def storage_room(database: Database, tenant: str, settings: Settings) -> int | None:
    """Bytes the tenant may still upload; None without a storage quota."""
    if not settings.max_stored_bytes:
        return None
    return max(0, settings.max_stored_bytes - stored_bytes(database, tenant))
