"""The job event log and the webhook outbox, written in the transaction of the change itself.

The store calls :func:`record_state` and :func:`record_progress` inside the transaction that
changes a job, so an event exists if and only if its change committed: a crash can lose
neither, and a rolled-back change leaves none. Each event row is also a server-sent event
(its id is the SSE id); an event the job's callback subscribes to becomes an outbox row that
the delivery loop sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from geobatch.jobs.callbacks import EventType
from geobatch.jobs.database import Database
from geobatch.jobs.states import JobStatus
from geobatch.jobs.tables import job_events, jobs, webhook_deliveries

TERMINAL_EVENTS = frozenset({EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED})

# Statements built once: on the chunk-commit path, building them would cost more than running.
_SNAPSHOT = sa.select(
    jobs.c.type,
    jobs.c.status,
    jobs.c.metadata,
    jobs.c.error,
    jobs.c.callback,
    jobs.c.total_records,
    jobs.c.processed_records,
    jobs.c.successful_records,
    jobs.c.failed_records,
    jobs.c.no_match_records,
).where(jobs.c.id == sa.bindparam("job_id"))
_INSERT_EVENT = job_events.insert().returning(job_events.c.id)
_INSERT_DELIVERY = webhook_deliveries.insert()


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    id: int
    job_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime


def _percent(status: str, processed: int, total: int | None) -> float:
    if status == JobStatus.SUCCEEDED.value:
        return 100.0
    return round(100.0 * processed / total, 2) if total else 0.0


def _snapshot(connection: sa.Connection, job_id: str) -> Any:
    return connection.execute(_SNAPSHOT, {"job_id": job_id}).first()


def _data(job_id: str, row: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "job_id": job_id,
        "job_type": row.type,
        "status": row.status,
        "progress": _percent(row.status, row.processed_records, row.total_records),
        "statistics": {
            "total_records": row.total_records,
            "processed_records": row.processed_records,
            "successful_records": row.successful_records,
            "failed_records": row.failed_records,
            "no_match_records": row.no_match_records,
        },
        "metadata": row.metadata or {},
    }
    if row.error:
        data["error"] = row.error
    return data


def _append(
    connection: sa.Connection, job_id: str, kind: EventType, row: Any, *, notify: bool
) -> None:
    now = datetime.now(UTC)
    data = _data(job_id, row)
    event_id = connection.execute(
        _INSERT_EVENT, {"job_id": job_id, "type": kind.value, "data": data, "created_at": now}
    ).scalar_one()
    callback = row.callback
    if not notify or not callback or kind.value not in callback.get("events", ()):
        return
    message_id = f"msg_{job_id.replace('-', '')}_{event_id}"
    body = {
        "type": kind.value,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": {**data, "event_id": event_id},
    }
    connection.execute(
        _INSERT_DELIVERY,
        {
            "job_id": job_id,
            "event_type": kind.value,
            "message_id": message_id,
            "callback": {k: v for k, v in callback.items() if k != "secret_generated"},
            "body": json.dumps(body, separators=(",", ":")),
            "status": "pending",
            "next_attempt_at": now,
            "created_at": now,
        },
    )


def record_state(connection: sa.Connection, job_id: str, status: JobStatus) -> None:
    """Log that the job entered ``status`` (and queue its webhook if subscribed)."""
    row = _snapshot(connection, job_id)
    if row is not None:
        _append(connection, job_id, EventType(f"job.{status.value}"), row, notify=True)


def record_progress(connection: sa.Connection, job_id: str, processed_delta: int) -> None:
    """Log a committed chunk; the webhook fires when a ``progress_step_percent`` step passes."""
    row = _snapshot(connection, job_id)
    if row is None:
        return
    notify = False
    if row.callback and row.total_records:
        step = row.callback.get("progress_step_percent", 10)
        after = 100.0 * row.processed_records / row.total_records
        before = 100.0 * (row.processed_records - processed_delta) / row.total_records
        notify = int(after // step) > int(before // step)
    _append(connection, job_id, EventType.PROGRESS, row, notify=notify)


def events_after(
    database: Database, job_id: str, after: int, *, limit: int = 500
) -> list[JobEvent]:
    """The job's events with ids above ``after``, oldest first."""
    query = (
        job_events.select()
        .where(job_events.c.job_id == job_id, job_events.c.id > after)
        .order_by(job_events.c.id)
        .limit(limit)
    )
    with database.read_engine.connect() as connection:
        return [
            JobEvent(id=r.id, job_id=r.job_id, type=r.type, data=r.data, created_at=r.created_at)
            for r in connection.execute(query)
        ]
