"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from geobatch.api.deps import PlatformDep
from geobatch.jobs.executor import executor_problem
from geobatch.jobs.scheduler import CHUNK_SECONDS_BUCKETS, SchedulerStats
from geobatch.jobs.states import ChunkStatus
from geobatch.jobs.tables import jobs

READINESS_PROBE_KEY = "readyz"

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "a check failed", "content": {"application/json": {}}}},
)
def readyz(platform: PlatformDep) -> JSONResponse:
    """The job store and blob storage answer, the published releases can be read (with
    ``GEOBATCH_RELEASES_URL``; a listing reused for seconds), the executor can take work and,
    where this process runs one, the scheduler is alive."""
    checks: dict[str, str] = {}
    try:
        with platform.database.read_engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        platform.storage.exists(READINESS_PROBE_KEY)
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"error: {exc.__class__.__name__}"
    if platform.releases.url:
        try:
            platform.releases.published()
            checks["releases"] = "ok"
        except Exception as exc:
            checks["releases"] = f"error: {exc.__class__.__name__}"
    scheduler = platform.scheduler
    try:
        problem = executor_problem(
            scheduler.executor if scheduler else None, platform.settings.executor
        )
    except Exception as exc:
        problem = exc.__class__.__name__
    checks["executor"] = f"error: {problem}" if problem else "ok"
    if scheduler is not None:
        checks["scheduler"] = "ok" if scheduler.is_alive else "stopped"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(platform: PlatformDep) -> str:
    """Prometheus text format: jobs by type and status, records processed, the queue of chunks
    (shared by every replica) and, where a scheduler runs here, its chunk durations and the
    leases it found expired."""
    query = sa.select(
        jobs.c.type, jobs.c.status, sa.func.count(), sa.func.sum(jobs.c.processed_records)
    ).group_by(jobs.c.type, jobs.c.status)
    with platform.database.read_engine.connect() as connection:
        rows = connection.execute(query).all()
    depth = platform.store.queue_depth()
    lines = [
        "# HELP geobatch_jobs Jobs by type and status.",
        "# TYPE geobatch_jobs gauge",
        *(f'geobatch_jobs{{type="{t}",status="{s}"}} {n}' for t, s, n, _ in rows),
        "# HELP geobatch_records_processed Records processed by jobs, by type and status.",
        "# TYPE geobatch_records_processed gauge",
        *(
            f'geobatch_records_processed{{type="{t}",status="{s}"}} {int(p or 0)}'
            for t, s, _, p in rows
        ),
        "# HELP geobatch_queue_depth Chunks of running jobs by status, and jobs queued to start.",
        "# TYPE geobatch_queue_depth gauge",
        *(
            f'geobatch_queue_depth{{state="{state}"}} {depth.get(state, 0)}'
            for state in (*(s.value for s in ChunkStatus), "queued_jobs")
        ),
    ]
    if platform.scheduler is not None:
        lines += _scheduler_lines(platform.scheduler.stats)
    return "\n".join(lines) + "\n"


def _scheduler_lines(stats: SchedulerStats) -> list[str]:
    buckets = [
        f'geobatch_chunk_seconds_bucket{{le="{bound:g}"}} {count}'
        for bound, count in zip(CHUNK_SECONDS_BUCKETS, stats.chunk_seconds_buckets, strict=True)
    ]
    return [
        "# HELP geobatch_chunk_seconds Time to process a chunk, committed by this scheduler.",
        "# TYPE geobatch_chunk_seconds histogram",
        *buckets,
        f'geobatch_chunk_seconds_bucket{{le="+Inf"}} {stats.chunk_count}',
        f"geobatch_chunk_seconds_sum {stats.chunk_seconds_sum:.6f}",
        f"geobatch_chunk_seconds_count {stats.chunk_count}",
        "# HELP geobatch_lease_expiries_total Chunk leases this scheduler found expired.",
        "# TYPE geobatch_lease_expiries_total counter",
        f"geobatch_lease_expiries_total {stats.lease_expiries}",
    ]
