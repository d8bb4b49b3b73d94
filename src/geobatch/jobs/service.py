"""The job service: what the HTTP API and the CLI both call to create and manage jobs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO

import anyio

from geobatch.config import Settings
from geobatch.engines.result import ERROR_COLUMNS
from geobatch.errors import (
    Conflict,
    Gone,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PayloadTooLarge,
    StorageQuotaExceeded,
    UnsupportedMediaType,
)
from geobatch.io.inputs import InputError, InputFormat, format_from_media_type
from geobatch.io.inputs.limits import UploadGuard
from geobatch.io.outputs import MEDIA_TYPES, OutputFormat, stream_parts
from geobatch.io.storage import BlobStorage
from geobatch.jobs import layout, quotas
from geobatch.jobs.audit import AuditLog
from geobatch.jobs.callbacks import resolve_callback
from geobatch.jobs.changes import ChangeFeed
from geobatch.jobs.delivery import attempts_of
from geobatch.jobs.models import Job, JobFilter, NewJob
from geobatch.jobs.releases import resolve_for
from geobatch.jobs.states import JobStatus
from geobatch.jobs.store import JobStore, utcnow
from geobatch.jobs.tasks import check_header, input_limits, inspect_input
from geobatch.jobs.types import job_type
from geobatch.jobs.urls import check_url

WRITE_BUFFER_BYTES = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class InputSource:
    """Where a job's input comes from: an upload in the request, a URL, or a stored file."""

    format: InputFormat | None = None
    gzip: bool = False
    delimiter: str | None = None
    input_columns: tuple[str, ...] | None = None
    url: str | None = None
    file_name: str | None = None
    media_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    type: str
    input: InputSource
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    bulk_id: str | None = None
    priority: int = 0
    start: bool = True
    callback: dict[str, Any] | None = None

    def fingerprint(self) -> str:
        payload = json.dumps(
            {
                "type": self.type,
                "input": dict(self.input.__dict__.items()),
                "options": self.options,
                "metadata": self.metadata,
                "bulk_id": self.bulk_id,
                "priority": self.priority,
                "start": self.start,
                "callback": self.callback,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class ResultStream:
    chunks: Iterator[bytes]
    format: OutputFormat
    media_type: str
    partial: bool
    job: Job


_TOO_LARGE_CODES = frozenset({"decompressed_too_large", "compression_ratio_too_high"})


def _input_error(exc: InputError) -> InvalidInput | UnsupportedMediaType | PayloadTooLarge:
    if exc.code == "unsupported_format":
        return UnsupportedMediaType(exc.message, code=exc.code)
    if exc.code in _TOO_LARGE_CODES:
        return PayloadTooLarge(exc.message, code=exc.code)
    return InvalidInput(exc.message, code=exc.code)


class JobService:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        storage: BlobStorage,
        feed: ChangeFeed,
        wake_scheduler: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.feed = feed
        self.audit = AuditLog(store.db)
        self._wake_scheduler = wake_scheduler

    # -- creating ---------------------------------------------------------------------------

    async def create(
        self,
        tenant: str,
        request: JobRequest,
        body: AsyncIterator[bytes] | None = None,
        *,
        idempotency_key: str | None = None,
        actor: str = "-",
    ) -> tuple[Job, bool]:
        """Create a job; returns it and whether it is new (False: an idempotent retry).

        ``actor`` names the caller in the audit log (a key id, never a key).
        """
        kind = job_type(request.type)
        if request.start:
            await anyio.to_thread.run_sync(
                quotas.check_running, self.store.db, tenant, self.settings
            )
        options = kind.parse_options(request.options).model_dump()
        if kind.uses_release:
            manifest = await anyio.to_thread.run_sync(
                resolve_for, self.settings, options.get("release")
            )
            options["release"] = manifest.id
        callback = None
        if request.callback is not None:
            callback = await anyio.to_thread.run_sync(
                resolve_callback, request.callback, self.settings
            )
        if idempotency_key is None:
            job, _ = await self._create(tenant, request, options, body, callback)
            await anyio.to_thread.run_sync(self.audit.record, tenant, actor, "create", job.id)
            return job, True
        claimed = await anyio.to_thread.run_sync(
            self.store.claim_idempotency_key, tenant, idempotency_key
        )
        if claimed is not None:
            return await self._replay(tenant, request, body, idempotency_key, *claimed), False
        try:
            job, digest = await self._create(tenant, request, options, body, callback)
        except BaseException:
            await anyio.to_thread.run_sync(
                self.store.release_idempotency_key, tenant, idempotency_key
            )
            raise
        await anyio.to_thread.run_sync(
            self.store.complete_idempotency_key, tenant, idempotency_key, job.id, digest
        )
        await anyio.to_thread.run_sync(self.audit.record, tenant, actor, "create", job.id)
        return job, True

    async def _replay(
        self,
        tenant: str,
        request: JobRequest,
        body: AsyncIterator[bytes] | None,
        key: str,
        job_id: str | None,
        stored_hash: str | None,
    ) -> Job:
        if job_id is None:
            raise Conflict(f"A request with Idempotency-Key {key!r} is still in progress.")
        digest = hashlib.sha256(request.fingerprint().encode())
        if body is not None:
            async for piece in body:
                digest.update(piece)
        if digest.hexdigest() != stored_hash:
            raise InvalidInput(
                f"Idempotency-Key {key!r} was already used with a different request.",
                field="Idempotency-Key",
            )
        return self.store.get(job_id, tenant=tenant)

    async def _create(
        self,
        tenant: str,
        request: JobRequest,
        options: dict[str, Any],
        body: AsyncIterator[bytes] | None,
        callback: dict[str, Any] | None = None,
    ) -> tuple[Job, str]:
        job_id = str(uuid.uuid4())
        source = request.input
        digest = hashlib.sha256(request.fingerprint().encode())
        job_input = self._describe_input(job_id, source, has_body=body is not None)
        if body is not None:
            job_input["size_bytes"] = await self._receive(
                tenant, job_id, body, digest, self._guard(job_input)
            )
        try:
            if job_input.get("url") is None:
                columns = await anyio.to_thread.run_sync(self._inspect, job_input)
                check_header(request.type, options, columns)
                job_input["columns"] = list(columns)
        except InputError as exc:
            self.storage.delete_prefix(layout.job_prefix(job_id))
            raise _input_error(exc) from None
        new = NewJob(
            id=job_id,
            tenant=tenant,
            type=request.type,
            options=options,
            input=job_input,
            metadata=request.metadata,
            bulk_id=request.bulk_id,
            priority=request.priority,
            callback=callback,
        )
        status = JobStatus.QUEUED if request.start else JobStatus.CREATED
        job = await anyio.to_thread.run_sync(lambda: self.store.create(new, status=status))
        if request.start:
            self._wake_scheduler()
        return job, digest.hexdigest()

    def _describe_input(
        self, job_id: str, source: InputSource, *, has_body: bool
    ) -> dict[str, Any]:
        named = source.file_name or (
            source.url.rsplit("/", 1)[-1].split("?")[0] if source.url else None
        )
        detected = format_from_media_type(source.media_type, named)
        if source.format is not None:
            fmt, gz = source.format, source.gzip
        elif detected is not None:
            fmt, gz = detected[0], detected[1] or source.gzip
        else:
            raise UnsupportedMediaType(
                f"Unsupported input type {source.media_type or named or 'unknown'}; send text/csv, "
                "application/geo+json or application/vnd.apache.parquet (optionally gzipped).",
                code="unsupported_format",
            )
        described: dict[str, Any] = {
            "format": fmt.value,
            "gzip": gz,
            "delimiter": source.delimiter,
            "input_columns": list(source.input_columns) if source.input_columns else None,
        }
        if fmt is InputFormat.GEOJSON:
            described["max_geometry_coordinates"] = self.settings.max_geometry_coordinates
        if has_body:
            described["key"] = layout.input_key(job_id)
        elif source.url:
            check_url(source.url, self.settings.url_allowlist, what="input URL")
            described.update(url=source.url, key=layout.input_key(job_id))
        elif source.file_name:
            key = f"files/{source.file_name.lstrip('/')}"
            if ".." in key.split("/") or not self.storage.exists(key):
                raise InvalidInput(
                    f"No stored file named {source.file_name!r}.", field="input.file_name"
                )
            described.update(file_name=source.file_name, key=key)
        else:
            raise InvalidInput(
                "The job needs an input: upload a file, or name input.url or input.file_name."
            )
        return described

    def _guard(self, job_input: dict[str, Any]) -> UploadGuard:
        limits = input_limits(self.settings)
        return UploadGuard(limits, InputFormat(job_input["format"]), job_input.get("delimiter"))

    async def _receive(
        self,
        tenant: str,
        job_id: str,
        body: AsyncIterator[bytes],
        digest: Any,
        guard: UploadGuard,
    ) -> int:
        """Stream an upload into storage, enforcing the size and input limits as bytes arrive."""
        limit = self.settings.max_upload_bytes
        room = await anyio.to_thread.run_sync(
            quotas.storage_room, self.store.db, tenant, self.settings
        )
        received = 0
        buffer = bytearray()
        key = layout.input_key(job_id)
        try:
            with self.storage.open_write(key) as sink:
                async for piece in body:
                    received += len(piece)
                    if received > limit:
                        raise PayloadTooLarge(
                            f"The upload exceeds the limit of {limit} bytes.", limit=limit
                        )
                    if room is not None and received > room:
                        raise StorageQuotaExceeded(
                            f"The upload exceeds the tenant's storage quota "
                            f"({self.settings.max_stored_bytes} bytes, {room} left).",
                            limit=self.settings.max_stored_bytes,
                        )
                    try:
                        guard.feed(piece)
                    except InputError as exc:
                        raise _input_error(exc) from None
                    digest.update(piece)
                    buffer += piece
                    if len(buffer) >= WRITE_BUFFER_BYTES:
                        await anyio.to_thread.run_sync(sink.write, bytes(buffer))
                        buffer.clear()
                if buffer:
                    await anyio.to_thread.run_sync(sink.write, bytes(buffer))
        except BaseException:
            self.storage.delete_prefix(layout.job_prefix(job_id))
            raise
        if received == 0:
            self.storage.delete_prefix(layout.job_prefix(job_id))
            raise InvalidInput("The input is empty.", code="empty_input")
        return received

    def _inspect(self, job_input: dict[str, Any]) -> tuple[str, ...]:
        with self.storage.open_read(job_input["key"]) as source:
            return inspect_input(source, job_input, input_limits(self.settings))

    # -- reading ----------------------------------------------------------------------------

    def get(self, tenant: str, job_id: str) -> Job:
        return self.store.get(job_id, tenant=tenant)

    def get_by_number(self, tenant: str, number: int) -> Job:
        """The job with this serial number (its ``pk``), for APIs whose job ids are integers."""
        found, _ = self.store.list_jobs(JobFilter(tenant=tenant), page_size=1, before_pk=number + 1)
        if not found or found[0].pk != number:
            raise NotFound(f"No job exists with id {number}.")
        return found[0]

    def delivery_attempts(self, job: Job) -> list[dict[str, Any]] | None:
        """Every webhook delivery attempt for the job's events; None if it has no callback."""
        return attempts_of(self.store.db, job.id) if job.callback else None

    def list_jobs(
        self, flt: JobFilter, *, page_size: int, page_token: str | None
    ) -> tuple[list[Job], str | None]:
        before = _decode_token(page_token) if page_token else None
        found, next_pk = self.store.list_jobs(flt, page_size=page_size, before_pk=before)
        return found, _encode_token(next_pk) if next_pk is not None else None

    def summary(self, flt: JobFilter) -> dict[str, dict[str, int]]:
        return self.store.summary(flt)

    async def statuses(
        self, tenant: str, job_ids: list[str], *, wait: float, poll_interval: float
    ) -> list[Job]:
        """Current jobs; with ``wait``, return as soon as all are terminal or the time is up."""
        deadline = time.monotonic() + min(wait, self.settings.long_poll_max_seconds)
        while True:
            version = self.feed.version
            found = await anyio.to_thread.run_sync(
                lambda: self.store.get_many(job_ids, tenant=tenant)
            )
            remaining = deadline - time.monotonic()
            if remaining <= 0 or all(job.status.is_terminal for job in found):
                return found
            await self.feed.wait(min(poll_interval, remaining), since=version)

    # -- control ----------------------------------------------------------------------------

    def start(self, tenant: str, job_id: str) -> Job:
        if self.store.get(job_id, tenant=tenant).status in (JobStatus.CREATED, JobStatus.PAUSED):
            quotas.check_running(self.store.db, tenant, self.settings)
        job = self.store.transition(job_id, JobStatus.QUEUED, tenant=tenant)
        self._wake_scheduler()
        return job

    def stop(self, tenant: str, job_id: str) -> Job:
        return self.store.transition(job_id, JobStatus.PAUSED, tenant=tenant)

    def cancel(self, tenant: str, job_id: str, *, actor: str = "-") -> Job:
        job = self.store.transition(
            job_id,
            JobStatus.CANCELLED,
            tenant=tenant,
            expires_at=utcnow() + timedelta(days=self.settings.retention_days),
        )
        for prefix in layout.work_prefixes(job_id):
            self.storage.delete_prefix(prefix)
        self.audit.record(tenant, actor, "cancel", job_id)
        return job

    def delete(self, tenant: str, job_id: str, *, actor: str = "-") -> None:
        job = self.store.get(job_id, tenant=tenant)
        if not job.status.is_terminal:
            with contextlib.suppress(InvalidTransition):
                self.store.transition(job_id, JobStatus.CANCELLED, tenant=tenant)
        self.storage.delete_prefix(layout.job_prefix(job_id))
        self.store.delete(job_id)
        self.audit.record(tenant, actor, "delete", job_id)

    # -- downloads --------------------------------------------------------------------------

    def download(
        self, tenant: str, job_id: str, *, errors: bool, fmt: OutputFormat | None = None
    ) -> ResultStream:
        """Stream the results (or the error report) of every committed chunk, in input order.

        Before a job succeeds this is partial: whatever chunks have committed so far. The
        format defaults to the job's ``output_format`` option.
        """
        job = self.store.get(job_id, tenant=tenant)
        fmt = fmt or OutputFormat(job.options.get("output_format", "csv"))
        if job.status is JobStatus.EXPIRED:
            raise Gone(f"Job {job_id} has expired; its files were deleted.")
        if job.status is JobStatus.CANCELLED:
            raise Gone(f"Job {job_id} was cancelled; its results were discarded.")
        if job.status is JobStatus.FAILED:
            raise Conflict(
                f"Job {job_id} failed and has no results: {(job.error or {}).get('message')}"
            )
        key_of = layout.error_key if errors else layout.result_key
        storage = self.storage

        def opener(key: str) -> Callable[[], BinaryIO]:
            return lambda: storage.open_read(key)

        parts = [opener(key_of(job_id, seq)) for seq in self.store.done_seqs(job_id)]
        # The error report's columns are fixed, so even an empty one has its CSV header.
        schema = ERROR_COLUMNS if errors else None
        return ResultStream(
            chunks=stream_parts(parts, fmt, schema=schema),
            format=fmt,
            media_type=MEDIA_TYPES[fmt],
            partial=job.status is not JobStatus.SUCCEEDED,
            job=job,
        )


def _encode_token(pk: int) -> str:
    return f"p{pk}"


def _decode_token(token: str) -> int:
    try:
        if not token.startswith("p"):
            raise ValueError(token)
        return int(token[1:])
    except ValueError:
        raise InvalidInput(
            "page_token is not a token this server issued.", field="page_token"
        ) from None


def progress(job: Job, now: datetime) -> dict[str, float | None]:
    """Percent done, throughput and a time-to-finish estimate, from the job's counters."""
    stats = job.statistics
    total = stats.total_records
    percent = (
        100.0 * stats.processed_records / total if total else (100.0 if job.split_done else 0.0)
    )
    if job.status is JobStatus.SUCCEEDED:
        percent = 100.0
    end = job.finished_at or now
    elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
    rate = stats.processed_records / elapsed if elapsed > 0 else None
    eta = None
    if rate and total and not job.status.is_terminal:
        eta = max(0.0, (total - stats.processed_records) / rate)
    return {"percent": round(percent, 2), "records_per_second": rate, "eta_seconds": eta}
