"""Request and response bodies of the HTTP API (pydantic models, snake_case JSON)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, HttpUrl, JsonValue

from geobatch.io.inputs import InputFormat
from geobatch.jobs import JOB_TYPES, Job, progress, type_statistics
from geobatch.jobs.callbacks import CallbackSpec, RetryPolicy, public_callback

_JOB_TYPE_NAMES: list[JsonValue] = [*sorted(JOB_TYPES)]


def _iso_only(value: object) -> object:
    """Timestamps are ISO 8601 text: a bare number would be read as Unix seconds."""
    if not isinstance(value, str):
        return value
    try:
        float(value)  # any spelling of a number: 12, -1.5, 2.2e-309, inf
    except ValueError:
        return value
    raise ValueError("expected an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]
"""A date-time query parameter: ISO 8601 only."""


class InputRef(BaseModel):
    """A job's input when it is not uploaded with the request: a URL or a stored file."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("url", "file_name")
            ]
        },
    )

    url: HttpUrl | None = None
    storage_id: Literal["default"] | None = None
    file_name: str | None = Field(default=None, min_length=1, max_length=1024)
    format: InputFormat | None = None
    compression: Literal["gzip", "none"] | None = None
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    input_columns: list[str] | None = None


class JobCreate(BaseModel):
    """Create a job whose input is a URL or a stored file (uploads go as the request body)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        min_length=1,
        max_length=40,
        json_schema_extra={"enum": _JOB_TYPE_NAMES},
    )
    input: InputRef
    options: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)
    bulk_id: str | None = Field(default=None, max_length=200)
    priority: int = Field(default=0, ge=-100, le=100)
    start: bool = True
    callback: CallbackSpec | None = None


class Statistics(BaseModel):
    """The common counts, plus the job type's own statistics as further fields."""

    model_config = ConfigDict(extra="allow")

    total_records: int | None
    processed_records: int
    successful_records: int
    failed_records: int
    no_match_records: int
    last_record_id: str | None
    records_per_second: float | None


class Progress(BaseModel):
    percent: float
    records_per_second: float | None
    eta_seconds: float | None


class Output(BaseModel):
    results_url: str
    errors_url: str
    formats: list[str]
    partial: bool
    expires_at: datetime | None


class CallbackPublic(BaseModel):
    """A job's callback as its owner sees it: the secret only in the creation answer, and
    only when the server generated it."""

    url: str
    signature_header: str
    events: list[str]
    progress_step_percent: int
    retry_policy: RetryPolicy
    secret: str | None = None


class DeliveryAttempt(BaseModel):
    """One try at delivering one event to the job's callback."""

    event_type: str
    webhook_id: str = Field(description="the webhook-id header, the same on every retry")
    attempt: int
    attempted_at: datetime
    status_code: int | None
    delivered_at: datetime | None
    duration_ms: float
    error: str | None
    next_attempt_at: datetime | None = Field(description="when the next try is due, if any")


class JobPublic(BaseModel):
    id: str
    type: str
    status: str
    priority: int
    bulk_id: str | None
    metadata: dict[str, str]
    options: dict[str, Any]
    release: str | None = Field(description="The reference release the job matches against.")
    input: dict[str, Any]
    error: dict[str, str] | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    statistics: Statistics
    progress: Progress
    output: Output | None
    callback: CallbackPublic | None = None
    delivery_attempts: list[DeliveryAttempt] | None = Field(
        default=None, description="webhook deliveries so far; on GET of a job with a callback"
    )

    @classmethod
    def of(
        cls,
        job: Job,
        base_url: str,
        *,
        delivery_attempts: list[dict[str, Any]] | None = None,
        reveal_secret: bool = False,
    ) -> JobPublic:
        now = datetime.now(UTC)
        moving = progress(job, now)
        stats = job.statistics
        job_input = {k: v for k, v in job.input.items() if k != "key" and v is not None}
        if "gzip" in job_input:
            job_input["compression"] = "gzip" if job_input.pop("gzip") else None
        output = None
        if job.started_at is not None and job.status.value not in (
            "failed",
            "cancelled",
            "expired",
        ):
            url = f"{base_url.rstrip('/')}/v1/jobs/{job.id}"
            output = Output(
                results_url=f"{url}/results",
                errors_url=f"{url}/errors",
                formats=["csv", "geojson", "parquet"],
                partial=job.status.value != "succeeded",
                expires_at=job.expires_at,
            )
        return cls(
            id=job.id,
            type=job.type,
            status=job.status.value,
            priority=job.priority,
            bulk_id=job.bulk_id,
            metadata=job.metadata,
            options=job.options,
            release=job.options.get("release"),
            input=job_input,
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            queued_at=job.queued_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            expires_at=job.expires_at,
            statistics=Statistics(
                total_records=stats.total_records,
                processed_records=stats.processed_records,
                successful_records=stats.successful_records,
                failed_records=stats.failed_records,
                no_match_records=stats.no_match_records,
                last_record_id=stats.last_record_id,
                records_per_second=moving["records_per_second"],
                **type_statistics(job.type, stats.extra),
            ),
            progress=Progress(
                percent=moving["percent"] or 0.0,
                records_per_second=moving["records_per_second"],
                eta_seconds=moving["eta_seconds"],
            ),
            output=output,
            callback=CallbackPublic.model_validate(
                public_callback(job.callback, reveal_secret=reveal_secret)
            )
            if job.callback
            else None,
            delivery_attempts=[
                DeliveryAttempt(webhook_id=a["message_id"], **a) for a in delivery_attempts
            ]
            if delivery_attempts is not None
            else None,
        )


class CallbackTestResult(BaseModel):
    """What the job's callback receiver answered to a signed ``job.test`` event."""

    delivered: bool = Field(description="the receiver answered 2xx")
    url: str
    webhook_id: str
    status_code: int | None
    duration_ms: float
    error: str | None
    response_excerpt: str = Field(description="the start of the receiver's answer")


class JobList(BaseModel):
    jobs: list[JobPublic]
    next_page_token: str | None


class StatusesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_ids: list[str] = Field(min_length=1, max_length=1000)
    wait: float = Field(
        default=0,
        ge=-1,
        strict=True,
        description="seconds to wait for all to end; -1 = the maximum",
    )
    poll_interval: float = Field(default=1.0, ge=0.05, le=60, strict=True)


class JobStatusItem(BaseModel):
    id: str
    status: str
    progress: Progress
    output: Output | None
    error: dict[str, str] | None


class StatusesResponse(BaseModel):
    jobs: list[JobStatusItem]
    not_found: list[str]


class Summary(BaseModel):
    types: dict[str, dict[str, int]]
    total: int
