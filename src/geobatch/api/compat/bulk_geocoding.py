"""The bulk geocoding API under ``/v1/bulk/jobs``: geocode jobs whose input is a URL, with a
signed callback, in that API's own job resource and problem details."""

from __future__ import annotations

import http
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, WithJsonSchema

from geobatch.api.compat.common import drop_none, error_route
from geobatch.api.deps import ServiceDep, TenantDep
from geobatch.api.problems import problem
from geobatch.api.ratelimit import KeyedLimit
from geobatch.errors import GeobatchError, InvalidInput
from geobatch.io.outputs import MEDIA_TYPES
from geobatch.jobs import InputSource, Job, JobRequest, JobService, JobStatus
from geobatch.jobs.callbacks import CallbackSpec, public_callback
from geobatch.jobs.types.geocode import GeocodeOptions

STATUS = {
    JobStatus.CREATED: "pending",
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "processing",
    JobStatus.PAUSED: "paused",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.EXPIRED: "expired",
}
"""geobatch status -> bulk job status."""

POLL_LIMIT = "2/second"
"""The documented limit on status polls, counted per job."""


def _problem(request: Request, exc: GeobatchError) -> Response:
    detail = exc.detail
    job_id = request.path_params.get("job_id")
    if exc.status == 404 and job_id:
        detail = f"No job exists with id {job_id}."
    title = http.HTTPStatus(exc.status).phrase
    return problem(exc.status, exc.slug, title, detail, request.url.path, **exc.extra)


router = APIRouter(
    prefix="/v1/bulk/jobs", tags=["compat: bulk geocoding"], route_class=error_route(_problem)
)


class BulkInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transport: Literal["https", "http"] = "https"
    url: HttpUrl
    compression: Literal["gzip", "none"] | None = None


class BulkJobCreate(BaseModel):
    """A bulk geocoding job: where its records are, and whom to tell when it is done."""

    model_config = ConfigDict(extra="forbid")

    input: BulkInput
    callback: CallbackSpec | None = None
    options: Annotated[dict[str, Any], WithJsonSchema(GeocodeOptions.model_json_schema())] = Field(
        default_factory=dict, description="the geocode job type's options"
    )
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def bulk_job(service: JobService, job: Job) -> dict[str, Any]:
    """The job in the bulk API's shape; the callback secret is never shown."""
    stats = job.statistics
    callback = None
    if job.callback:
        shown = public_callback(job.callback)
        callback = {k: shown[k] for k in ("url", "signature_header", "retry_policy")}
    attempts = service.delivery_attempts(job) or []
    return {
        "id": job.id,
        "status": STATUS[job.status],
        "submitted_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.finished_at),
        "input": drop_none(
            {
                "transport": job.input.get("url", "").split(":", 1)[0] or None,
                "url": job.input.get("url"),
                "compression": "gzip" if job.input.get("gzip") else None,
            }
        ),
        "callback": callback,
        "options": drop_none({k: v for k, v in job.options.items() if k != "release"}),
        "metadata": job.metadata,
        "statistics": {
            "total_records": stats.total_records,
            "processed_records": stats.processed_records,
            "successful_records": stats.successful_records + stats.no_match_records,
            "failed_records": stats.failed_records,
            "last_record_id": stats.last_record_id,
        },
        "delivery_attempts": [
            {
                "attempt": a["attempt"],
                "status_code": a["status_code"],
                "delivered_at": _iso(a["delivered_at"] or a["attempted_at"]),
                "duration_ms": round(a["duration_ms"]),
                "error": a["error"],
            }
            for a in attempts
        ],
        "error": job.error,
    }


async def _poll_allowed(request: Request, job_id: str, tenant: TenantDep) -> str:
    limit: KeyedLimit | None = getattr(request.app.state, "bulk_poll_limit", None)
    if limit is None:
        settings = request.app.state.platform.settings
        limit = KeyedLimit(POLL_LIMIT, settings, "Job status may only be polled twice per second.")
        request.app.state.bulk_poll_limit = limit
    limit.hit(f"bulk-poll:{tenant}:{job_id}")
    return tenant


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_job(
    body: BulkJobCreate, response: Response, service: ServiceDep, tenant: TenantDep
) -> dict[str, Any]:
    """Submit a geocoding job over the records at ``input.url``."""
    url = str(body.input.url)
    if not url.startswith(f"{body.input.transport}://"):
        raise InvalidInput(
            f"input.url must use the {body.input.transport} transport", field="input.url"
        )
    job, _ = await service.create(
        tenant,
        JobRequest(
            type="geocode",
            input=InputSource(url=url, gzip=body.input.compression == "gzip"),
            options=body.options,
            metadata=body.metadata,
            callback=body.callback.model_dump(mode="json", exclude_none=True)
            if body.callback
            else None,
        ),
    )
    response.headers["Location"] = f"/v1/bulk/jobs/{job.id}"
    return bulk_job(service, job)


@router.get("/{job_id}")
def get_job(
    job_id: str, service: ServiceDep, tenant: Annotated[str, Depends(_poll_allowed)]
) -> dict[str, Any]:
    """The latest status of a bulk job; polled at most twice a second per job."""
    return bulk_job(service, service.get(tenant, job_id))


@router.delete("/{job_id}")
def cancel_job(job_id: str, service: ServiceDep, tenant: TenantDep) -> dict[str, Any]:
    """Cancel the job; its unfinished work is discarded."""
    return bulk_job(service, service.cancel(tenant, job_id))


@router.get(
    "/{job_id}/results",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {media: {} for media in MEDIA_TYPES.values()},
            "description": "the results, in the job's output_format",
        }
    },
)
def results(job_id: str, service: ServiceDep, tenant: TenantDep) -> StreamingResponse:
    """The geocoded records in the job's ``output_format``."""
    result = service.download(tenant, job_id, errors=False)
    return StreamingResponse(result.chunks, media_type=result.media_type)
