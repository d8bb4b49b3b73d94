"""TomTom Orbis GEM (road matching) under ``/maps/orbis/platform/gem``.

GEM documents listing jobs and reading one; the storage area (upload, list and download
files under a ``storageId``) and the job-creation call are geobatch's design. A storage is a
folder of the tenant's files in geobatch's blob storage; a job reads its input from there and
its result file is written back there under ``result_filename`` as the job succeeds.
"""

from __future__ import annotations

import hashlib
import http
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from geobatch.api.compat.common import error_route, tenant_for_key
from geobatch.api.deps import ServiceDep
from geobatch.errors import (
    BadRequest,
    GeobatchError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from geobatch.io.outputs import OutputFormat
from geobatch.jobs import (
    InputSource,
    Job,
    JobFilter,
    JobRequest,
    JobService,
    JobStatus,
    type_statistics,
)
from geobatch.jobs.hooks import on_finish

STATUS = {
    JobStatus.CREATED: ("queued", "REQUESTED"),
    JobStatus.QUEUED: ("queued", "REQUESTED"),
    JobStatus.RUNNING: ("running", "IN_PROGRESS"),
    JobStatus.PAUSED: ("queued", "REQUESTED"),
    JobStatus.SUCCEEDED: ("finished", "SUCCESS"),
    JobStatus.FAILED: ("failed", "FAILED"),
    JobStatus.CANCELLED: ("cancelled", "FAILED"),
    JobStatus.EXPIRED: ("finished", "SUCCESS"),
}
"""geobatch status -> (status in the job list, status in the job details)."""

STATISTICS = (
    "confidence_threshold",
    "execution_time_sec",
    "kms_processed",
    "num_roads_processed",
    "roads_fully_matched_ratio",
    "roads_matched_ratio",
    "roads_partially_matched_ratio",
    "roads_unmatched_ratio",
)
MATCHING_TYPES = {"road": "road_match"}
RESULT_FORMATS = {".parquet": OutputFormat.PARQUET, ".geojson": OutputFormat.GEOJSON}
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
_FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,190}\.(parquet|geojson)$"
"""A stored file is GeoParquet or GeoJSON, and its name says which."""


class Forbidden(GeobatchError):
    """Forbidden."""

    status = 403
    slug = "forbidden"


def _error(request: Request, exc: GeobatchError) -> Response:
    phrase = http.HTTPStatus(exc.status).phrase
    return JSONResponse({"error": phrase, "message": exc.detail}, status_code=exc.status)


router = APIRouter(
    prefix="/maps/orbis/platform/gem",
    tags=["compat: TomTom Orbis GEM"],
    route_class=error_route(_error),
)


async def _tenant(request: Request) -> str:
    """The tenant of ``tomtom-api-key``; a Bearer token, when sent too, must be a key of the
    same tenant (another tenant's: 403). ``X-Version``, when sent, must be 1."""
    version = request.headers.get("x-version")
    if version is not None and version.strip() != "1":
        raise BadRequest(f"X-Version {version!r} is not supported; use 1.")
    key = request.headers.get("tomtom-api-key")
    authorization = request.headers.get("authorization", "")
    bearer = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
    if key is None and bearer is None:
        raise Unauthorized("API key is missing or invalid.")
    tenant = await tenant_for_key(request, key or bearer)
    if key is not None and bearer is not None and bearer != key:
        try:
            other = await tenant_for_key(request, bearer)
        except Unauthorized:
            raise Unauthorized("The bearer token is not valid.") from None
        if other != tenant:
            raise Forbidden("The bearer token does not grant access to this account.")
    return tenant


TenantDep = Annotated[str, Depends(_tenant)]
StorageId = Annotated[str, Path(pattern=_NAME)]
FileName = Annotated[str, Path(pattern=_FILE_NAME)]


def _folder(tenant: str, storage_id: str) -> str:
    """The storage's folder under ``files/``, apart from every other tenant's."""
    return f"gem/{hashlib.sha256(tenant.encode()).hexdigest()[:16]}/{storage_id}"


def _result_name(input_name: str) -> str | None:
    stem, dot, suffix = input_name.rpartition(".")
    if not dot or f".{suffix}" not in RESULT_FORMATS:
        return None
    return f"{stem}.results.{suffix}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def write_result(service: JobService, job: Job) -> str | None:
    """Write a succeeded GEM job's result file into its storage (unless it is there already)
    and return its name; None for other jobs. The job's results stay where they are, too."""
    name = _result_name(job.metadata.get("gem:inputFileName", ""))
    if job.status is not JobStatus.SUCCEEDED or name is None or "gem:storageId" not in job.metadata:
        return None
    key = f"files/{_folder(job.tenant, job.metadata['gem:storageId'])}/{name}"
    if not service.storage.exists(key):
        fmt = RESULT_FORMATS["." + name.rsplit(".", 1)[1]]
        result = service.download(job.tenant, job.id, errors=False, fmt=fmt)
        with service.storage.open_write(key) as sink:
            for piece in result.chunks:
                sink.write(piece)
    return name


on_finish(write_result)
"""The result file is written as the job succeeds, so that listing the storage shows it."""


async def _result_file(service: JobService, job: Job) -> str | None:
    """The result file's name once the job has succeeded; written here if the server stopped
    between the job's success and the writing of its file."""
    return await anyio.to_thread.run_sync(write_result, service, job)


def _statistics(job: Job) -> dict[str, Any] | None:
    if job.status is not JobStatus.SUCCEEDED:
        return None
    values = type_statistics(job.type, job.statistics.extra)
    return {name: values.get(name) for name in STATISTICS}


async def job_details(service: JobService, tenant: str, job: Job) -> dict[str, Any]:
    return {
        "job_id": job.pk,
        "job_type": "ROAD_MATCHING",
        "overture_release": job.options.get("release"),
        "input_filename": job.metadata.get("gem:inputFileName"),
        "result_filename": await _result_file(service, job),
        "requested_at": _iso(job.created_at),
        "status": STATUS[job.status][1],
        "storage_id": job.metadata.get("gem:storageId"),
        "statistics": _statistics(job),
    }


async def job_summary(service: JobService, tenant: str, job: Job) -> dict[str, Any]:
    summary = {
        "jobRunId": job.id,
        "storageId": job.metadata.get("gem:storageId"),
        "inputFileName": job.metadata.get("gem:inputFileName"),
        "outputFileName": await _result_file(service, job),
        "matchingType": "road",
        "overtureRelease": job.options.get("release"),
        "status": STATUS[job.status][0],
        "createdAt": _iso(job.created_at),
        "modifiedAt": _iso(job.updated_at),
    }
    if summary["outputFileName"] is None:
        del summary["outputFileName"]
    return summary


def _find(service: JobService, tenant: str, job_id: str) -> Job:
    """A job by its integer ``job_id`` or its ``jobRunId``; only GEM's road-matching jobs."""
    job = (
        service.get_by_number(tenant, int(job_id))
        if job_id.isdigit()
        else service.get(tenant, job_id)
    )
    if job.type != "road_match" or "gem:storageId" not in job.metadata:
        raise NotFound(f"No job exists with id {job_id}.")
    return job


class GemJobCreate(BaseModel):
    """A road-matching job over a file in one of the caller's storages (geobatch's design)."""

    model_config = ConfigDict(extra="forbid")

    storageId: str = Field(pattern=_NAME)
    inputFileName: str = Field(pattern=_FILE_NAME)
    matchingType: Literal["road"] = "road"
    overtureRelease: str | None = None


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("application/vnd.apache.parquet", "application/geo+json")
        },
    }
}


@router.put(
    "/storages/{storage_id}/files/{file_name}",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_file(
    request: Request,
    storage_id: StorageId,
    file_name: FileName,
    service: ServiceDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """Store a GeoParquet or GeoJSON file (the request body) in a storage, replacing any
    file of that name."""
    if _result_name(file_name) is None:
        raise InvalidInput("Files are GeoParquet (.parquet) or GeoJSON (.geojson).")
    key = f"files/{_folder(tenant, storage_id)}/{file_name}"
    size = 0
    limit = service.settings.max_upload_bytes
    pieces = request.stream()
    first = b""
    async for first in pieces:
        if first:
            break
    if not first:  # checked before the sink opens: an empty request replaces nothing
        raise InvalidInput("The file is empty.", field="body")
    with service.storage.open_write(key) as sink:
        async for piece in _chain(first, pieces):
            size += len(piece)
            if size > limit:
                raise PayloadTooLarge(f"The file exceeds the limit of {limit} bytes.", limit=limit)
            await anyio.to_thread.run_sync(sink.write, piece)
    return {"storageId": storage_id, "fileName": file_name, "size": size}


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for piece in rest:
        yield piece


@router.get("/storages/{storage_id}/files")
def list_files(storage_id: StorageId, service: ServiceDep, tenant: TenantDep) -> dict[str, Any]:
    """The files in a storage: uploads and written-back results."""
    prefix = f"files/{_folder(tenant, storage_id)}/"
    files = [
        {"fileName": key.removeprefix(prefix), "size": service.storage.size(key)}
        for key in service.storage.list(prefix)
    ]
    return {"storageId": storage_id, "files": files}


@router.get(
    "/storages/{storage_id}/files/{file_name}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
def download_file(
    storage_id: StorageId, file_name: FileName, service: ServiceDep, tenant: TenantDep
) -> StreamingResponse:
    key = f"files/{_folder(tenant, storage_id)}/{file_name}"
    if not service.storage.exists(key):
        raise NotFound(f"No file {file_name} in storage {storage_id}.")

    def pieces() -> Any:
        with service.storage.open_read(key) as source:
            while piece := source.read(1024 * 1024):
                yield piece

    return StreamingResponse(pieces(), media_type="application/octet-stream")


@router.post("/jobs", status_code=status.HTTP_201_CREATED)
async def create_job(body: GemJobCreate, service: ServiceDep, tenant: TenantDep) -> Any:
    """Match the roads of a stored file against a release (``overtureRelease``; the newest
    when not given)."""
    job, _ = await service.create(
        tenant,
        JobRequest(
            type=MATCHING_TYPES[body.matchingType],
            input=InputSource(file_name=f"{_folder(tenant, body.storageId)}/{body.inputFileName}"),
            options={"release": body.overtureRelease},
            metadata={"gem:storageId": body.storageId, "gem:inputFileName": body.inputFileName},
        ),
    )
    return await job_details(service, tenant, job)


@router.get("/jobs")
async def list_jobs(service: ServiceDep, tenant: TenantDep) -> dict[str, Any]:
    """The caller's matching jobs, newest first."""
    found, _ = service.list_jobs(
        JobFilter(tenant=tenant, type="road_match"), page_size=1000, page_token=None
    )
    gem = [job for job in found if "gem:storageId" in job.metadata]
    return {"jobs": [await job_summary(service, tenant, job) for job in gem]}


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, service: ServiceDep, tenant: TenantDep) -> Any:
    """One job by ``job_id`` (integer) or ``jobRunId``; statistics once it has succeeded."""
    return await job_details(service, tenant, _find(service, tenant, job_id))
