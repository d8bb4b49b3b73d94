"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from geobatch.api.deps import PlatformDep
from geobatch.jobs.tables import jobs

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(platform: PlatformDep) -> JSONResponse:
    """The job store answers and, where this process runs one, the scheduler is alive."""
    checks: dict[str, str] = {}
    try:
        with platform.database.read_engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    if platform.scheduler is not None:
        checks["scheduler"] = "ok" if platform.scheduler.is_alive else "stopped"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(platform: PlatformDep) -> str:
    """Prometheus text format: jobs by type and status, records processed."""
    query = sa.select(
        jobs.c.type, jobs.c.status, sa.func.count(), sa.func.sum(jobs.c.processed_records)
    ).group_by(jobs.c.type, jobs.c.status)
    with platform.database.read_engine.connect() as connection:
        rows = connection.execute(query).all()
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
    ]
    return "\n".join(lines) + "\n"
