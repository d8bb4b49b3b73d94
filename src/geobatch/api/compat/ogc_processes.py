"""OGC API - Processes - Part 1: Core under ``/ogcapi``: each job type is a process.

Execution is synchronous for small inline inputs (the results come back in the answer) and
asynchronous with ``Prefer: respond-async``, for inputs given by ``href`` or too large to wait
for: then the answer is ``201`` with the job, whose results are links to the job's files.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from geobatch import __version__
from geobatch.api.compat.common import error_route, natives_of, newest_jobs
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
]
"""The classes whose requirements the tests exercise; not OpenAPI 3.0 (the document covers
the whole server), HTML, callbacks, nor Job list (``/jobs`` filters by process, status and
limit, but not yet by datetime or duration)."""

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


@router.get("/jobs")
def jobs(
    request: Request,
    service: ServiceDep,
    tenant: TenantDep,
    process_id: Annotated[list[ProcessId] | None, Query(alias="processID")] = None,
    status_: Annotated[list[OgcStatus] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The caller's jobs, newest first, optionally of some processes and in some states."""
    statuses = tuple(
        native for name in status_ or [] for native in natives_of(STATUS, name, field="status")
    )
    kinds: list[str | None] = [None]
    if process_id:  # an unknown process has no jobs
        kinds = [name for name in process_id if name in JOB_TYPES]
    filters = (JobFilter(tenant=tenant, type=kind, status=statuses) for kind in kinds)
    return {
        "jobs": [status_info(request, job) for job in newest_jobs(service, filters, limit)],
        "links": [_link(f"{_base(request)}/jobs", "self", "jobs")],
    }


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
