"""OGC API - Processes - Part 1: Core under ``/ogcapi``: each job type is a process.

Execution is synchronous for small inline inputs (the results come back in the answer) and
asynchronous with ``Prefer: respond-async``, for inputs given by ``href`` or too large to wait
for: then the answer is ``201`` with the job, whose results are links to the job's files.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from geobatch import __version__
from geobatch.api.compat.common import error_route, jobs_page, natives_of
from geobatch.api.deps import ServiceDep, TenantDep
from geobatch.api.problems import PROBLEM_MEDIA_TYPE
from geobatch.errors import GeobatchError, InvalidInput, NotFound
from geobatch.io.outputs import OutputFormat
from geobatch.jobs import JOB_TYPES, InputSource, Job, JobFilter, JobRequest, JobService, JobStatus
from geobatch.jobs.types import JobType

STATUS = {
    JobStatus.CREATED: "accepted",
    JobStatus.QUEUED: "accepted",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "accepted",
    JobStatus.SUCCEEDED: "successful",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "dismissed",
    JobStatus.EXPIRED: "dismissed",
}
"""geobatch status -> OGC job status."""

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
]
"""The classes whose requirements the tests exercise; not OpenAPI 3.0 (the document covers
the whole server), HTML, nor callbacks."""

OgcStatus = Literal["accepted", "running", "successful", "failed", "dismissed"]
ProcessId = Annotated[str, StringConstraints(pattern=f"^({'|'.join(sorted(JOB_TYPES))})$")]

SYNC_MAX_RECORDS = 1000
SYNC_WAIT_SECONDS = 60.0
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"


def _exception(request: Request, exc: GeobatchError) -> Response:
    kind = exc.slug
    if exc.status == 404:
        path = request.url.path
        kind = "no-such-process" if "/processes/" in path else "no-such-job"
        if path.endswith("/results") and exc.extra.get("not_ready"):
            kind = "result-not-ready"
    body = {
        "type": EXCEPTIONS + kind if exc.status == 404 else f"https://geobatch.dev/problems/{kind}",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": request.url.path,
    }
    return JSONResponse(body, status_code=exc.status, media_type=PROBLEM_MEDIA_TYPE)


router = APIRouter(
    prefix="/ogcapi", tags=["compat: OGC API - Processes"], route_class=error_route(_exception)
)


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/ogcapi"


def _link(href: str, rel: str, title: str, media: str = "application/json") -> dict[str, str]:
    return {"href": href, "rel": rel, "type": media, "title": title}


def _kind(process_id: str) -> JobType:
    kind = JOB_TYPES.get(process_id)
    if kind is None:
        raise NotFound(f"No process {process_id!r}; see /ogcapi/processes.")
    return kind


def _summary(request: Request, kind: JobType) -> dict[str, Any]:
    first_line = (kind.options_model.__doc__ or "").strip().splitlines()
    return {
        "id": kind.name,
        "title": kind.name.replace("_", " "),
        "description": first_line[0] if first_line else kind.name,
        "version": __version__,
        "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
        "outputTransmission": ["value", "reference"],
        "links": [_link(f"{_base(request)}/processes/{kind.name}", "self", "process")],
    }


def _description(request: Request, kind: JobType) -> dict[str, Any]:
    options = kind.options_model.model_json_schema()
    records_schema: dict[str, Any] = {
        "oneOf": [
            {"type": "array", "items": {"type": "object"}},
            {"type": "object", "description": "a GeoJSON FeatureCollection"},
        ]
    }
    inputs: dict[str, Any] = {
        "records": {
            "title": "records",
            "description": "The records, inline (objects, or a FeatureCollection) or by href.",
            "schema": records_schema,
            "minOccurs": 1,
            "maxOccurs": 1,
        }
    }
    for name, schema in options.get("properties", {}).items():
        inputs[name] = {
            "title": name,
            "description": schema.get("description", name),
            "schema": {k: v for k, v in schema.items() if k not in ("title", "description")},
            "minOccurs": 0,
            "maxOccurs": 1,
        }
    outputs = {
        "results": {
            "title": "results",
            "description": "One feature per answer, best first, with recId, seqNumber, seqLength.",
            "schema": {"type": "object", "contentMediaType": "application/geo+json"},
        },
        "errors": {
            "title": "errors",
            "description": "One row per record that could not be processed, with its reason.",
            "schema": {"type": "array", "items": {"type": "object"}},
        },
    }
    return {**_summary(request, kind), "inputs": inputs, "outputs": outputs}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def status_info(request: Request, job: Job, *, status_name: str | None = None) -> dict[str, Any]:
    url = f"{_base(request)}/jobs/{job.id}"
    links = [_link(url, "self", "job status")]
    if job.status is JobStatus.SUCCEEDED:
        links.append(_link(f"{url}/results", f"{REL}results", "job results"))
    total = job.statistics.total_records
    percent = 100 * job.statistics.processed_records // total if total else 0
    return {
        "jobID": job.id,
        "processID": job.type,
        "type": "process",
        "status": status_name or STATUS[job.status],
        "message": (job.error or {}).get("message", ""),
        "created": _iso(job.created_at),
        "started": _iso(job.started_at),
        "finished": _iso(job.finished_at),
        "updated": _iso(job.updated_at),
        "progress": 100 if job.status is JobStatus.SUCCEEDED else percent,
        "links": links,
    }


class Href(BaseModel):
    href: str = Field(min_length=1)


class FeatureCollection(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["FeatureCollection"]
    features: list[dict[str, Any]]


class Inputs(BaseModel):
    """The process's inputs: ``records`` and the job type's options (see the process)."""

    model_config = ConfigDict(extra="allow")

    records: list[dict[str, Any]] | FeatureCollection | Href = Field(
        description="the records, inline (objects, or a FeatureCollection) or by href"
    )


class Execute(BaseModel):
    model_config = ConfigDict(extra="allow")

    inputs: Inputs
    outputs: dict[str, Any] | None = None
    response: str = "document"


_EXECUTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the results of a synchronous execution"},
    201: {
        "description": "the job of an asynchronous execution",
        "content": {"application/json": {"schema": {"type": "object"}}},
        "headers": {"Location": {"schema": {"type": "string"}, "description": "the job"}},
    },
}


def _records_body(records: list[dict[str, Any]] | FeatureCollection) -> tuple[bytes, str]:
    """Inline records as an upload: a FeatureCollection as GeoJSON, objects as CSV."""
    if isinstance(records, FeatureCollection):
        return records.model_dump_json().encode(), "application/geo+json"
    names = list(dict.fromkeys(name for record in records for name in record))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode(), "text/csv"


async def _one(body: bytes) -> Any:
    yield body


def _results_document(service: JobService, tenant: str, job: Job) -> dict[str, Any]:
    results = service.download(tenant, job.id, errors=False, fmt=OutputFormat.GEOJSON)
    errors = service.download(tenant, job.id, errors=True, fmt=OutputFormat.CSV)
    return {
        "results": json.loads(b"".join(results.chunks)),
        "errors": list(csv.DictReader(io.StringIO(b"".join(errors.chunks).decode()))),
    }


@router.get("")
@router.get("/", include_in_schema=False)
def landing(request: Request) -> dict[str, Any]:
    base = _base(request)
    root = str(request.base_url).rstrip("/")
    return {
        "title": "geobatch",
        "description": "Bulk geocoding, reverse geocoding, lookup and road matching as processes.",
        "links": [
            _link(base, "self", "this document"),
            _link(
                f"{root}/openapi.json",
                "service-desc",
                "the API definition",
                "application/vnd.oai.openapi+json;version=3.1",
            ),
            _link(f"{base}/conformance", "conformance", "conformance classes"),
            _link(f"{base}/processes", f"{REL}processes", "processes"),
            _link(f"{base}/jobs", f"{REL}job-list", "jobs"),
        ],
    }


@router.get("/conformance")
def conformance() -> dict[str, list[str]]:
    return {"conformsTo": CONFORMANCE}


@router.get("/processes")
def processes(request: Request, _tenant: TenantDep) -> dict[str, Any]:
    return {
        "processes": [_summary(request, kind) for _, kind in sorted(JOB_TYPES.items())],
        "links": [_link(f"{_base(request)}/processes", "self", "processes")],
    }


@router.get("/processes/{process_id}")
def process(request: Request, process_id: str, _tenant: TenantDep) -> dict[str, Any]:
    return _description(request, _kind(process_id))


@router.post("/processes/{process_id}/execution", responses=_EXECUTE_RESPONSES)
async def execute(
    request: Request,
    process_id: str,
    body: Execute,
    service: ServiceDep,
    tenant: TenantDep,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    """Run the process: synchronously for small inline inputs, else as a job (``201``)."""
    kind = _kind(process_id)
    inputs = body.inputs.model_dump(exclude={"records"}, by_alias=True)
    records = body.inputs.records
    wants_async = "respond-async" in (prefer or "")
    if isinstance(records, Href):
        source, upload = InputSource(url=records.href), None
        wants_async = True
    else:
        data, media_type = _records_body(records)
        source, upload = InputSource(media_type=media_type), _one(data)
        count = len(records.features) if isinstance(records, FeatureCollection) else len(records)
        wants_async = wants_async or count > SYNC_MAX_RECORDS
    job, _ = await service.create(
        tenant, JobRequest(type=kind.name, input=source, options=inputs), upload
    )
    if not wants_async:
        [job] = await service.statuses(tenant, [job.id], wait=SYNC_WAIT_SECONDS, poll_interval=0.2)
        if job.status is JobStatus.SUCCEEDED:
            return JSONResponse(_results_document(service, tenant, job))
        if job.status is JobStatus.FAILED:
            raise InvalidInput((job.error or {}).get("message", "The job failed."))
    location = f"{_base(request)}/jobs/{job.id}"
    headers = {"Location": location}
    if wants_async:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(
        status_info(request, job), status_code=status.HTTP_201_CREATED, headers=headers
    )


DURATION_STATES = (
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.EXPIRED,
)
"""States a duration filter considers when no status is named: running or done."""


def _instant(text: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"datetime: {text!r} is not an RFC 3339 date-time", field="datetime"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def created_range(value: str | None) -> tuple[datetime | None, datetime | None]:
    """``datetime`` (an instant, or an interval ``start/end`` with ``..`` or nothing for an
    open end) as the store's half-open range of ``created``: from ``start``, before ``end``."""
    if not value:
        return None, None
    start_text, sep, end_text = value.partition("/")
    start = _instant(start_text)
    end = _instant(end_text) if sep else start
    if not sep and start is None:
        raise InvalidInput("datetime: an instant or an interval start/end", field="datetime")
    if start and end and end < start:
        raise InvalidInput("datetime: the interval ends before it starts", field="datetime")
    return start, end + timedelta(microseconds=1) if end else None


def _duration(job: Job, now: datetime) -> float | None:
    """Seconds from start to finish, or to now while it runs; None when it never started."""
    if job.started_at is None:
        return None
    end = job.finished_at or (now if job.status is JobStatus.RUNNING else None)
    return (end - job.started_at).total_seconds() if end else None


@router.get("/jobs")
def jobs(
    request: Request,
    service: ServiceDep,
    tenant: TenantDep,
    type_: Annotated[list[str] | None, Query(alias="type")] = None,
    process_id: Annotated[list[ProcessId] | None, Query(alias="processID")] = None,
    status_: Annotated[list[OgcStatus] | None, Query(alias="status")] = None,
    datetime_: Annotated[str | None, Query(alias="datetime")] = None,
    min_duration: Annotated[int | None, Query(alias="minDuration", ge=0)] = None,
    max_duration: Annotated[int | None, Query(alias="maxDuration", ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10,
    page: Annotated[int | None, Query(ge=1, description="cursor from a next link")] = None,
) -> dict[str, Any]:
    """The caller's jobs, newest first: of some processes, in some states, created within
    ``datetime``, running or having run ``minDuration`` to ``maxDuration`` seconds."""
    statuses = tuple(
        native for name in status_ or [] for native in natives_of(STATUS, name, field="status")
    )
    timed = min_duration is not None or max_duration is not None
    if timed and not statuses:
        statuses = DURATION_STATES
    after, before = created_range(datetime_)
    kinds: list[str | None] = [None]
    if process_id:  # an unknown process has no jobs
        kinds = [name for name in process_id if name in JOB_TYPES]
    if type_ and "process" not in type_:
        kinds = []  # every job here is a process's
    filters = [
        JobFilter(
            tenant=tenant, type=kind, status=statuses, created_after=after, created_before=before
        )
        for kind in kinds
    ]
    now = datetime.now(UTC)

    def lasted(job: Job) -> bool:
        if not timed:
            return True
        seconds = _duration(job, now)
        return (
            seconds is not None
            and (min_duration is None or seconds >= min_duration)
            and (max_duration is None or seconds <= max_duration)
        )

    found, cursor = jobs_page(service, filters, limit=limit, before=page, keep=lasted)
    links = [_link(str(request.url), "self", "this page of jobs")]
    if cursor is not None:
        links.append(_link(str(request.url.include_query_params(page=cursor)), "next", "more jobs"))
    if page is not None:
        links.append(_link(str(request.url.remove_query_params("page")), "first", "first page"))
    return {"jobs": [status_info(request, job) for job in found], "links": links}


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str, service: ServiceDep, tenant: TenantDep) -> Any:
    return status_info(request, service.get(tenant, job_id))


@router.get("/jobs/{job_id}/results")
def results(request: Request, job_id: str, service: ServiceDep, tenant: TenantDep) -> Any:
    """Links to the results and the error report, once the job is successful."""
    found = service.get(tenant, job_id)
    if found.status is not JobStatus.SUCCEEDED:
        raise NotFound(
            f"Job {job_id} is {STATUS[found.status]}; it has no results yet.", not_ready=True
        )
    native = f"{str(request.base_url).rstrip('/')}/v1/jobs/{job_id}"
    return {
        "results": {"href": f"{native}/results?format=geojson", "type": "application/geo+json"},
        "errors": {"href": f"{native}/errors?format=csv", "type": "text/csv"},
    }


@router.delete("/jobs/{job_id}")
def dismiss(request: Request, job_id: str, service: ServiceDep, tenant: TenantDep) -> Any:
    """Dismiss: cancel the job if it still runs, and delete it and its files."""
    found = service.get(tenant, job_id)
    service.delete(tenant, job_id)
    return status_info(request, found, status_name="dismissed")
