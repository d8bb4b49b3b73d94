"""HERE Batch API v7 under ``/v7``: jobs of geocode, revgeocode and lookup records.

HERE job ids are the geobatch id with a ``JOB-`` prefix; the record format (delimiters,
columns, output type) rides along in the job's metadata under ``here:`` keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from geobatch import __version__
from geobatch.api.compat.common import error_route, natives_of, newest_jobs, tenant_for_key
from geobatch.api.compat.here_v7_records import (
    RecordFormat,
    here_errors,
    here_results,
    native_csv,
    output_columns,
)
from geobatch.api.deps import ServiceDep
from geobatch.errors import GeobatchError, InvalidInput, NotFound
from geobatch.io.outputs import OutputFormat
from geobatch.jobs import InputSource, Job, JobFilter, JobRequest, JobService, JobStatus
from geobatch.jobs.catalog import ReleaseCatalog

SERVICES = {
    "hrn:here:service::olp-here:search-geocode-7": "geocode",
    "hrn:here:service::olp-here:search-revgeocode-7": "reverse_geocode",
    "hrn:here:service::olp-here:search-lookup-7": "lookup",
}
"""``serviceHrn`` -> geobatch job type."""

STATUS = {
    JobStatus.CREATED: "submitted",
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "inProgress",
    JobStatus.PAUSED: "stopped",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failure",
    JobStatus.CANCELLED: "deleted",
    JobStatus.EXPIRED: "deleted",
}
"""geobatch status -> HERE status (``pending``, HERE's validation step, never shows)."""

_ERROR_CODES = {
    400: "E6004001",
    401: "E6004011",
    404: "E6004041",
    409: "E6004091",
    429: "E6004291",
}
_ACTIONS = {
    401: "Pass a valid key as apiKey or as Authorization: Bearer.",
    404: "Check the job id.",
    409: "Check the job's status first.",
    429: "Wait until one of your running jobs has ended, then try again.",
}


def _error(request: Request, exc: GeobatchError) -> Response:
    if exc.status == 401:
        body: dict[str, Any] = {"error": "Unauthorized", "error_description": exc.detail}
    else:
        status_code = 400 if exc.status == 422 else exc.status
        body = {
            "title": "Job not found" if exc.status == 404 else exc.title,
            "status": status_code,
            "code": _ERROR_CODES.get(status_code, f"E600{status_code}0"),
            "cause": exc.detail,
            "action": _ACTIONS.get(status_code, "Correct the request and send it again."),
            "correlationId": request.headers.get("x-correlation-id") or str(uuid.uuid4()),
        }
    headers = {}
    if "retry_after" in exc.extra:
        headers["Retry-After"] = str(exc.extra["retry_after"])
    if request.headers.get("x-request-id"):
        headers["X-Request-ID"] = request.headers["x-request-id"]
    return JSONResponse(body, status_code=body.get("status", exc.status), headers=headers)


class _HereRoute(error_route(_error)):  # type: ignore[misc]
    """Echoes ``X-Request-ID`` and ``X-Correlation-ID`` on every answer, as HERE does."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def echoed(request: Request) -> Response:
            response: Response = await handler(request)
            for name in ("x-request-id", "x-correlation-id"):
                if name in request.headers and name not in response.headers:
                    response.headers[name] = request.headers[name]
            return response

        return echoed


router = APIRouter(prefix="/v7", tags=["compat: HERE Batch v7"], route_class=_HereRoute)


async def _tenant(
    request: Request, api_key: Annotated[str | None, Query(alias="apiKey")] = None
) -> str:
    return await tenant_for_key(request, api_key)


TenantDep = Annotated[str, Depends(_tenant)]


def _native_id(job_id: str) -> str:
    return job_id.removeprefix("JOB-")


def _get(service: JobService, tenant: str, job_id: str) -> Job:
    job = service.get(tenant, _native_id(job_id))
    if job.type not in SERVICES.values():
        raise NotFound(f"No job {job_id}.")
    return job


def _hrn(job: Job) -> str:
    return job.metadata.get("here:serviceHrn") or next(
        hrn for hrn, kind in SERVICES.items() if kind == job.type
    )


def _format(job: Job) -> RecordFormat:
    meta = job.metadata
    delimiter = meta.get("here:outputDelimiter", "|")
    return RecordFormat(
        job_type=job.type,
        output_delimiter=delimiter,
        output_columns=output_columns(meta.get("here:outputColumns"), delimiter),
        output_type=meta.get("here:outputType", "csv"),
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def job_response(request: Request, job: Job, *, status_name: str | None = None) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "id": f"JOB-{job.id}",
        "serviceHrn": _hrn(job),
        "tag": job.metadata.get("here:tag"),
        "billingTags": [t for t in job.metadata.get("here:billingTags", "").split(",") if t],
        "status": status_name or STATUS[job.status],
        "href": f"{base}/v7/batch/jobs/JOB-{job.id}",
    }


def records_of(job: Job) -> dict[str, int]:
    """HERE's record counts of a job."""
    stats = job.statistics
    total = stats.total_records or 0
    return {
        "total": total,
        "valid": stats.processed_records - stats.failed_records,
        "invalid": stats.failed_records,
        "processed": stats.processed_records,
        "pending": max(0, total - stats.processed_records),
        "succeeded": stats.successful_records + stats.no_match_records,
        "failed": stats.failed_records,
    }


def job_detail(request: Request, job: Job) -> dict[str, Any]:
    response = job_response(request, job)
    notifications = job.metadata.get("here:notificationIds", "")
    return {
        **response,
        "created": _iso(job.created_at),
        "started": _iso(job.started_at),
        "ended": _iso(job.finished_at),
        "records": records_of(job),
        "resultsHref": f"{response['href']}/results",
        "errorsHref": f"{response['href']}/errors",
        "outputType": job.metadata.get("here:outputType", "csv"),
        "notificationIds": [i for i in notifications.split(",") if i],
    }


def _delimiter(value: str, name: str) -> str:
    if len(value) != 1 or value in '\r\n"':
        raise InvalidInput(f"{name} must be one character other than a quote", field=name)
    return value


@router.post(
    "/batch/jobs",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "minLength": 1}}
                for media in ("text/plain", "text/csv")
            },
        }
    },
)
async def create_job(
    request: Request,
    service: ServiceDep,
    tenant: TenantDep,
    service_hrn: Annotated[
        str, Query(alias="serviceHrn", json_schema_extra={"enum": sorted(SERVICES)})
    ],
    tag: str | None = None,
    billing_tags: Annotated[list[str] | None, Query(alias="billingTags")] = None,
    input_delimiter: Annotated[str, Query(alias="inputDelimiter")] = "|",
    output_delimiter: Annotated[str, Query(alias="outputDelimiter")] = "|",
    input_columns: Annotated[str | None, Query(alias="inputColumns")] = None,
    output_columns_: Annotated[str | None, Query(alias="outputColumns")] = None,
    output_type: Annotated[str, Query(alias="outputType", pattern="^(csv|jsonl)$")] = "csv",
    start_job: Annotated[bool, Query(alias="startJob")] = True,
    notification_ids: Annotated[list[str] | None, Query(alias="notificationIds")] = None,
) -> dict[str, Any]:
    """Create a job from delimited records in the body (``text/plain`` or ``text/csv``);
    the notifications named by ``notificationIds`` are called when it ends."""
    from geobatch.api.compat.here_v7_notifications import check_ids  # routes import this

    if service_hrn not in SERVICES:
        raise InvalidInput(
            f"serviceHrn {service_hrn!r} is not one of {', '.join(SERVICES)}", field="serviceHrn"
        )
    fmt = RecordFormat(
        job_type=SERVICES[service_hrn],
        input_delimiter=_delimiter(input_delimiter, "inputDelimiter"),
        input_columns=tuple(c.strip() for c in input_columns.split(input_delimiter))
        if input_columns
        else None,
    )
    output_delimiter = _delimiter(output_delimiter, "outputDelimiter")
    output_columns(output_columns_, output_delimiter)
    metadata = {
        "here:serviceHrn": service_hrn,
        "here:outputDelimiter": output_delimiter,
        "here:outputType": output_type,
    }
    if output_columns_:
        metadata["here:outputColumns"] = output_columns_
    if tag:
        metadata["here:tag"] = tag
    if billing_tags:
        metadata["here:billingTags"] = ",".join(billing_tags)
    ids = [i.strip() for raw in notification_ids or [] for i in raw.split(",") if i.strip()]
    if ids:
        metadata["here:notificationIds"] = ",".join(check_ids(service, tenant, ids))
    job, _ = await service.create(
        tenant,
        JobRequest(
            type=fmt.job_type,
            input=InputSource(media_type="text/csv", file_name="records.csv"),
            options={"output_format": "csv"},
            metadata=metadata,
            start=start_job,
        ),
        native_csv(request.stream(), fmt),
    )
    return job_response(request, job)


@router.get("/batch/jobs")
def list_jobs(
    request: Request,
    service: ServiceDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    status_: Annotated[
        str,
        Query(alias="status", json_schema_extra={"enum": ["any", *sorted(set(STATUS.values()))]}),
    ] = "any",
    tag: str | None = None,
) -> dict[str, Any]:
    """The caller's HERE jobs, newest first."""
    page = _matching(service, tenant, status_, tag, limit=offset + limit)[offset:]
    items = [job_detail(request, job) for job in page]
    return {"limit": limit, "count": len(items), "items": items}


def _matching(
    service: JobService, tenant: str, status_name: str, tag: str | None, *, limit: int
) -> list[Job]:
    statuses = () if status_name == "any" else natives_of(STATUS, status_name, field="status")
    metadata = {"here:tag": tag} if tag else {}
    filters = (
        JobFilter(tenant=tenant, status=statuses, metadata={**metadata, "here:serviceHrn": hrn})
        for hrn in SERVICES
    )
    return newest_jobs(service, filters, limit)


@router.delete("/batch/jobs")
def delete_jobs(
    service: ServiceDep,
    tenant: TenantDep,
    status_: Annotated[
        str | None,
        Query(alias="status", json_schema_extra={"enum": ["any", *sorted(set(STATUS.values()))]}),
    ] = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """Delete every HERE job with the given status and/or tag (one of them is required)."""
    if status_ is None and tag is None:
        raise InvalidInput("Name the jobs to delete with status, tag or both.", field="status")
    jobs = _matching(service, tenant, status_ or "any", tag, limit=10_000)
    for job in jobs:
        service.delete(tenant, job.id)
    return {"total": len(jobs), "jobIds": [f"JOB-{job.id}" for job in jobs]}


@router.get("/batch/jobs/{job_id}")
def get_job(request: Request, job_id: str, service: ServiceDep, tenant: TenantDep) -> Any:
    return job_detail(request, _get(service, tenant, job_id))


@router.delete("/batch/jobs/{job_id}")
def delete_job(request: Request, job_id: str, service: ServiceDep, tenant: TenantDep) -> Any:
    job = _get(service, tenant, job_id)
    service.delete(tenant, job.id)
    return job_response(request, job, status_name="deleted")


@router.put("/batch/jobs/{job_id}/start")
def start_job(request: Request, job_id: str, service: ServiceDep, tenant: TenantDep) -> Any:
    """Start, or resume a stopped job where it stopped; a started or finished job is left as
    it is, a deleted one cannot start."""
    job = _get(service, tenant, job_id)
    if job.status in (JobStatus.CREATED, JobStatus.PAUSED):
        job = service.start(tenant, job.id)
    elif job.status in (JobStatus.CANCELLED, JobStatus.EXPIRED):
        raise InvalidInput(f"Job {job_id} was deleted; it cannot start.")
    return job_response(request, job)


@router.put("/batch/jobs/{job_id}/stop")
def stop_job(request: Request, job_id: str, service: ServiceDep, tenant: TenantDep) -> Any:
    job = _get(service, tenant, job_id)
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        job = service.stop(tenant, job.id)
    elif job.status is not JobStatus.PAUSED:
        raise InvalidInput(f"Job {job_id} is {STATUS[job.status]}; only a started job stops.")
    return job_response(request, job)


_LINES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "one line per record, delimited (outputType csv) or JSON (jsonl)",
        "content": {"text/plain": {}, "application/x-ndjson": {}},
    },
    204: {"description": "the job has none"},
}


def _stream(service: JobService, tenant: str, job_id: str, *, errors: bool) -> Response:
    job = _get(service, tenant, job_id)
    if job.status is not JobStatus.SUCCEEDED:
        what = "errors" if errors else "results"
        raise NotFound(f"The {what} of job {job_id} are not available yet ({STATUS[job.status]}).")
    stats = job.statistics
    count = stats.failed_records if errors else stats.processed_records - stats.failed_records
    if count == 0:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    fmt = _format(job)
    native = service.download(tenant, job.id, errors=errors, fmt=OutputFormat.CSV)
    lines = here_errors(native.chunks, fmt) if errors else here_results(native.chunks, fmt)
    name = f"JOB-{job.id}-{'errors' if errors else 'results'}.txt"
    media = "application/x-ndjson" if fmt.output_type == "jsonl" else "text/plain"
    return StreamingResponse(
        lines, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get(
    "/batch/jobs/{job_id}/results", response_class=StreamingResponse, responses=_LINES_RESPONSES
)
def results(job_id: str, service: ServiceDep, tenant: TenantDep) -> Response:
    """The result lines: 404 until the job has completed, 204 when it has none."""
    return _stream(service, tenant, job_id, errors=False)


@router.get(
    "/batch/jobs/{job_id}/errors", response_class=StreamingResponse, responses=_LINES_RESPONSES
)
def errors(job_id: str, service: ServiceDep, tenant: TenantDep) -> Response:
    """One line per record that could not be processed: 404 until completed, 204 if none."""
    return _stream(service, tenant, job_id, errors=True)


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/version")
def version(service: ServiceDep) -> dict[str, Any]:
    """The API and server versions, and the reference releases as data versions."""
    releases = ReleaseCatalog.for_settings(service.settings).list()
    return {
        "apiVersion": "v7",
        "serviceVersion": __version__,
        "dataVersions": [{"name": m.name, "version": m.id} for m in releases],
    }


@router.get("/openapi")
def openapi(request: Request) -> dict[str, Any]:
    """This API's part of the server's OpenAPI document."""
    document: dict[str, Any] = request.app.openapi()
    paths = {p: v for p, v in document["paths"].items() if p.startswith("/v7/")}
    return {**document, "paths": paths, "info": {**document["info"], "title": "geobatch: /v7"}}
