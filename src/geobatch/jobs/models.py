"""Domain records of the job store: frozen dataclasses built from database rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geobatch.jobs.states import ChunkStatus, JobStatus


@dataclass(frozen=True, kw_only=True)
class JobStatistics:
    total_records: int | None
    processed_records: int
    successful_records: int
    failed_records: int
    no_match_records: int
    last_record_id: str | None
    processing_seconds: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Job:
    id: str
    pk: int
    tenant: str
    type: str
    status: JobStatus
    priority: int
    bulk_id: str | None
    metadata: dict[str, str]
    options: dict[str, Any]
    input: dict[str, Any]
    error: dict[str, str] | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    split_done: bool
    chunk_count: int | None
    statistics: JobStatistics
    callback: dict[str, Any] | None = None
    """The callback as stored, secret included: never show it as is (see callbacks.py)."""

    @classmethod
    def from_row(cls, row: Any) -> Job:
        m = row._mapping
        return cls(
            id=m["id"],
            pk=m["pk"],
            tenant=m["tenant"],
            type=m["type"],
            status=JobStatus(m["status"]),
            priority=m["priority"],
            bulk_id=m["bulk_id"],
            metadata=m["metadata"] or {},
            options=m["options"] or {},
            input=m["input"] or {},
            error=m["error"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            queued_at=m["queued_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            expires_at=m["expires_at"],
            split_done=bool(m["split_done"]),
            chunk_count=m["chunk_count"],
            statistics=JobStatistics(
                total_records=m["total_records"],
                processed_records=m["processed_records"],
                successful_records=m["successful_records"],
                failed_records=m["failed_records"],
                no_match_records=m["no_match_records"],
                last_record_id=m["last_record_id"],
                processing_seconds=m["processing_seconds"],
                extra=m["extra_statistics"] or {},
            ),
            callback=m.get("callback"),
        )


@dataclass(frozen=True, kw_only=True)
class NewJob:
    """What a caller asks for when creating a job (validated at the edge)."""

    id: str
    tenant: str
    type: str
    options: dict[str, Any]
    input: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    bulk_id: str | None = None
    priority: int = 0
    callback: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Chunk:
    job_id: str
    seq: int
    status: ChunkStatus
    records: int
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class ChunkCounts:
    """What processing one chunk adds to its job's statistics."""

    processed: int
    successful: int
    failed: int
    no_match: int
    last_record_id: str | None
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    tenant: str
    type: str | None = None
    status: tuple[JobStatus, ...] = ()
    bulk_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
