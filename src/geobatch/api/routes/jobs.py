"""``/v1/jobs``: create, find, control and download jobs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from geobatch.api.deps import DownloadTenantDep, JobIdPath, ServiceDep, TenantDep, WriterDep
from geobatch.api.ratelimit import Budget, RateLimiter
from geobatch.api.schemas import (
    IsoTime,
    JobCreate,
    JobList,
    JobPublic,
    JobStatusItem,
    StatusesRequest,
    StatusesResponse,
    Summary,
)
from geobatch.errors import InvalidInput, PayloadTooLarge
from geobatch.io.outputs import MEDIA_TYPES, OutputFormat
from geobatch.jobs import InputSource, JobFilter, JobRequest, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_STATUS_NAMES = "|".join(s.value for s in JobStatus)
STATUS_PATTERN = rf"^\s*({_STATUS_NAMES})\s*(,\s*({_STATUS_NAMES})\s*)*$"
METADATA_PATTERN = "^[^:]*:"

UPLOAD_PIECE_BYTES = 1024 * 1024

_JOB_CREATE_SCHEMA = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
EXTRA_SCHEMAS: dict[str, Any] = {
    "JobCreate": _JOB_CREATE_SCHEMA,
    **_JOB_CREATE_SCHEMA.pop("$defs", {}),
}
"""Schemas the create endpoint's hand-written request body refers to (added to components)."""

_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/geo+json": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "type"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "type": {"type": "string"},
                        "options": {"type": "string", "description": "JSON object"},
                        "metadata": {"type": "string", "description": "JSON object"},
                        "callback": {"type": "string", "description": "JSON object"},
                        "inputColumns": {"type": "string"},
                        "delimiter": {"type": "string"},
                        "bulk_id": {"type": "string"},
                        "priority": {"type": "integer"},
                        "start": {"type": "boolean"},
                    },
                }
            },
        },
    }
}


def _json_object(raw: str | None, name: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name} is not valid JSON: {exc.msg}", field=name) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object", field=name)
    return value


def _bool(raw: str | None, name: str, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{name} must be true or false", field=name)


def _int(raw: str | None, name: str) -> int:
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer", field=name) from None
    if not -100 <= value <= 100:
        raise InvalidInput(f"{name} must be between -100 and 100", field=name)
    return value


def _upload_request(
    params: dict[str, str], media_type: str | None, file_name: str | None, gzip: bool
) -> JobRequest:
    job_type = params.get("type")
    if not job_type:
        raise InvalidInput("type is required (e.g. ?type=validate)", field="type")
    columns = params.get("inputColumns") or params.get("input_columns")
    delimiter = params.get("delimiter") or None
    if delimiter is not None and len(delimiter) != 1:
        raise InvalidInput("delimiter must be one character", field="delimiter")
    metadata = _json_object(params.get("metadata"), "metadata")
    if not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidInput("metadata values must be strings", field="metadata")
    return JobRequest(
        type=job_type,
        input=InputSource(
            media_type=media_type,
            file_name=file_name,
            gzip=gzip,
            delimiter=delimiter,
            input_columns=tuple(c.strip() for c in columns.split(",")) if columns else None,
        ),
        options=_json_object(params.get("options"), "options"),
        metadata=metadata,
        bulk_id=params.get("bulk_id") or params.get("bulkId") or None,
        priority=_int(params.get("priority"), "priority"),
        start=_bool(params.get("start"), "start", True),
        callback=_json_object(params.get("callback"), "callback") or None,
    )


async def _json_body(request: Request, service: ServiceDep) -> bytes:
    """The JSON body, read up to ``max_json_body_bytes`` (a JSON request names its input)."""
    limit = service.settings.max_json_body_bytes
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise PayloadTooLarge(
                f"A JSON job request may be at most {limit} bytes; upload files as the body.",
                limit=limit,
            )
    return bytes(body)


async def _file_pieces(upload: UploadFile) -> AsyncIterator[bytes]:
    while piece := await upload.read(UPLOAD_PIECE_BYTES):
        yield piece


def _json_request(body: JobCreate) -> JobRequest:
    ref = body.input
    if (ref.url is None) == (ref.file_name is None):
        raise InvalidInput("input needs exactly one of url or file_name", field="input")
    return JobRequest(
        type=body.type,
        input=InputSource(
            format=ref.format,
            gzip=ref.compression == "gzip",
            delimiter=ref.delimiter,
            input_columns=tuple(ref.input_columns) if ref.input_columns else None,
            url=str(ref.url) if ref.url else None,
            file_name=ref.file_name,
        ),
        options=body.options,
        metadata=body.metadata,
        bulk_id=body.bulk_id,
        priority=body.priority,
        start=body.start,
        callback=body.callback.model_dump(mode="json", exclude_none=True)
        if body.callback
        else None,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobPublic,
    responses={200: {"model": JobPublic, "description": "the job of an Idempotency-Key reused"}},
    openapi_extra=_CREATE_BODY,
)
async def create_job(
    request: Request,
    response: Response,
    service: ServiceDep,
    caller: WriterDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobPublic:
    """Create a job from an upload (raw body or multipart) or from JSON naming its input."""
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.hit(caller.actor, Budget.CREATE)
    tenant, actor = caller.tenant, caller.actor
    limit = service.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"The upload of {declared} bytes exceeds the limit of {limit} bytes.", limit=limit
        )
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    gzip = request.headers.get("content-encoding", "").lower() == "gzip"
    if media_type == "application/json":
        try:
            body = JobCreate.model_validate_json(await _json_body(request, service))
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        job, created = await service.create(
            tenant, _json_request(body), idempotency_key=idempotency_key, actor=actor
        )
    elif media_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=20)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("multipart upload needs a file field named 'file'", field="file")
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            part_type = (upload.content_type or "").split(";")[0].strip().lower() or None
            job_request = _upload_request(fields, part_type, upload.filename, gzip=False)
            job, created = await service.create(
                tenant,
                job_request,
                _file_pieces(upload),
                idempotency_key=idempotency_key,
                actor=actor,
            )
        finally:
            await form.close()
    else:
        params = dict(request.query_params)
        job_request = _upload_request(params, media_type or None, params.get("file_name"), gzip)
        job, created = await service.create(
            tenant, job_request, request.stream(), idempotency_key=idempotency_key, actor=actor
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobPublic.of(job, str(request.base_url), reveal_secret=created)


def _filter(
    tenant: str,
    type: str | None,
    status_: list[str] | None,
    bulk_id: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    metadata: list[str] | None,
) -> JobFilter:
    statuses = []
    for value in status_ or []:
        for item in value.split(","):
            try:
                statuses.append(JobStatus(item.strip()))
            except ValueError:
                raise InvalidInput(
                    f"unknown status {item!r}; one of {', '.join(s.value for s in JobStatus)}",
                    field="status",
                ) from None
    pairs = {}
    for item in metadata or []:
        key, sep, value = item.partition(":")
        if not sep:
            raise InvalidInput("metadata filters look like key:value", field="metadata")
        pairs[key] = value
    return JobFilter(
        tenant=tenant,
        type=type,
        status=tuple(statuses),
        bulk_id=bulk_id,
        created_after=created_after,
        created_before=created_before,
        metadata=pairs,
    )


@router.get("", response_model=JobList)
def list_jobs(
    request: Request,
    service: ServiceDep,
    tenant: TenantDep,
    type: str | None = None,
    status_: Annotated[
        list[Annotated[str, Query(pattern=STATUS_PATTERN)]] | None,
        Query(alias="status", description="statuses, comma-separated or repeated"),
    ] = None,
    bulk_id: str | None = None,
    created_after: IsoTime | None = None,
    created_before: IsoTime | None = None,
    metadata: Annotated[
        list[Annotated[str, Query(pattern=METADATA_PATTERN)]] | None,
        Query(description="key:value, repeatable"),
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: str | None = None,
) -> JobList:
    """Jobs, newest first, filtered; follow ``next_page_token`` for the next page."""
    flt = _filter(tenant, type, status_, bulk_id, created_after, created_before, metadata)
    found, token = service.list_jobs(flt, page_size=page_size, page_token=page_token)
    base = str(request.base_url)
    return JobList(jobs=[JobPublic.of(job, base) for job in found], next_page_token=token)


@router.get("/summary", response_model=Summary)
def summary(
    service: ServiceDep,
    tenant: TenantDep,
    type: str | None = None,
    bulk_id: str | None = None,
    created_after: IsoTime | None = None,
    created_before: IsoTime | None = None,
    metadata: Annotated[
        list[Annotated[str, Query(pattern=METADATA_PATTERN)]] | None,
        Query(description="key:value, repeatable"),
    ] = None,
) -> Summary:
    """How many jobs of each type are in each state."""
    counts = service.summary(
        _filter(tenant, type, None, bulk_id, created_after, created_before, metadata)
    )
    return Summary(types=counts, total=sum(sum(v.values()) for v in counts.values()))


@router.post("/statuses", response_model=StatusesResponse)
async def statuses(
    request: Request, body: StatusesRequest, service: ServiceDep, tenant: TenantDep
) -> StatusesResponse:
    """Status of many jobs; with ``wait``, answers as soon as all have ended (long poll)."""
    wait = service.settings.long_poll_max_seconds if body.wait < 0 else body.wait
    found = await service.statuses(
        tenant, body.job_ids, wait=wait, poll_interval=body.poll_interval
    )
    base = str(request.base_url)
    items = []
    for job in found:
        public = JobPublic.of(job, base)
        items.append(
            JobStatusItem(
                id=job.id,
                status=public.status,
                progress=public.progress,
                output=public.output,
                error=job.error,
            )
        )
    seen = {job.id for job in found}
    return StatusesResponse(jobs=items, not_found=[i for i in body.job_ids if i not in seen])


@router.get("/{job_id:job_id}", response_model=JobPublic)
async def get_job(
    request: Request, job_id: JobIdPath, service: ServiceDep, tenant: TenantDep
) -> Response:
    """The job: status, statistics, progress, output links, delivery attempts."""

    def read() -> bytes:
        found = service.get(tenant, job_id)
        attempts = service.delivery_attempts(found)
        job = JobPublic.of(found, str(request.base_url), delivery_attempts=attempts)
        return job.model_dump_json().encode()

    # This is the endpoint clients poll. A SQLite read of one row takes a fraction of a
    # millisecond, less than handing it to a worker thread; a database server is waited for
    # on a thread. Serialised here: returning the model would have FastAPI validate it again.
    body = read() if service.store.db.is_sqlite else await anyio.to_thread.run_sync(read)
    return Response(body, media_type="application/json")


@router.post("/{job_id:job_id}/start", response_model=JobPublic)
def start_job(
    request: Request, job_id: JobIdPath, service: ServiceDep, caller: WriterDep
) -> JobPublic:
    """Start a created job, or resume a paused one where it stopped."""
    return JobPublic.of(service.start(caller.tenant, job_id), str(request.base_url))


@router.post("/{job_id:job_id}/stop", response_model=JobPublic)
def stop_job(
    request: Request, job_id: JobIdPath, service: ServiceDep, caller: WriterDep
) -> JobPublic:
    """Pause: no new chunks are dispatched; committed work is kept."""
    return JobPublic.of(service.stop(caller.tenant, job_id), str(request.base_url))


@router.post("/{job_id:job_id}/cancel", response_model=JobPublic)
def cancel_job(
    request: Request, job_id: JobIdPath, service: ServiceDep, caller: WriterDep
) -> JobPublic:
    """Stop for good and discard unfinished work."""
    return JobPublic.of(
        service.cancel(caller.tenant, job_id, actor=caller.actor), str(request.base_url)
    )


@router.delete("/{job_id:job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: JobIdPath, service: ServiceDep, caller: WriterDep) -> Response:
    """Cancel the job if needed and delete it and its files."""
    service.delete(caller.tenant, job_id, actor=caller.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the file, in the format asked for (else the job's output_format)",
        "content": {media: {} for media in MEDIA_TYPES.values()},
        "headers": {
            "X-Geobatch-Partial": {"schema": {"type": "string", "enum": ["true", "false"]}},
            "X-Geobatch-Job-Status": {"schema": {"type": "string"}},
        },
    }
}


def _download(
    service: ServiceDep, tenant: str, job_id: str, fmt: OutputFormat | None, *, errors: bool
) -> StreamingResponse:
    result = service.download(tenant, job_id, errors=errors, fmt=fmt)
    name = f"{job_id}-{'errors' if errors else 'results'}.{result.format.value}"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Geobatch-Partial": "true" if result.partial else "false",
        "X-Geobatch-Job-Status": result.job.status.value,
    }
    return StreamingResponse(result.chunks, media_type=result.media_type, headers=headers)


@router.get(
    "/{job_id:job_id}/results", response_class=StreamingResponse, responses=_DOWNLOAD_RESPONSES
)
def results(
    job_id: JobIdPath,
    service: ServiceDep,
    tenant: DownloadTenantDep,
    format: OutputFormat | None = None,
) -> StreamingResponse:
    """The results so far, streamed; ``X-Geobatch-Partial: true`` until the job has succeeded."""
    return _download(service, tenant, job_id, format, errors=False)


@router.get(
    "/{job_id:job_id}/errors", response_class=StreamingResponse, responses=_DOWNLOAD_RESPONSES
)
def errors(
    job_id: JobIdPath,
    service: ServiceDep,
    tenant: DownloadTenantDep,
    format: OutputFormat | None = None,
) -> StreamingResponse:
    """The error report: one row per record that could not be processed, with a reason."""
    return _download(service, tenant, job_id, format, errors=True)
