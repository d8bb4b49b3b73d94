"""``/v1/jobs/{id}/events`` and ``/callback/test``: following a job without polling."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from geobatch.api.deps import JobIdPath, PlatformDep, ServiceDep, TenantDep, WriterDep
from geobatch.api.schemas import CallbackTestResult
from geobatch.errors import Conflict, InvalidInput, NotFound
from geobatch.jobs import Platform
from geobatch.jobs.delivery import send_test
from geobatch.jobs.events import TERMINAL_EVENTS, JobEvent, events_after

router = APIRouter(prefix="/v1/jobs", tags=["events"])

RECONNECT_MS = 1000
"""How soon a disconnected client should come back (the SSE ``retry`` field)."""
FALLBACK_POLL_SECONDS = 1.0
"""Changes made by another process (a scheduler elsewhere) are seen at least this often."""
KEEPALIVE_SECONDS = 15.0


def _resume_point(header: str | None, query: int | None) -> int:
    if header is None or not header.strip():
        return query or 0
    try:
        value = int(header.strip())
    except ValueError:
        raise InvalidInput(
            "Last-Event-ID must be the id of an event this stream sent.", field="Last-Event-ID"
        ) from None
    if value < 0:
        raise InvalidInput("Last-Event-ID cannot be negative.", field="Last-Event-ID")
    return value


def _frame(event: JobEvent) -> str:
    payload = {**event.data, "created_at": event.created_at.isoformat().replace("+00:00", "Z")}
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(payload)}\n\n"


async def _stream(
    platform: Platform, job_id: str, after: int, request: Request
) -> AsyncIterator[str]:
    """Every event after ``after``, in order; ends after the job's terminal event.

    The job's status is read before its events: a terminal status then implies that its
    terminal event (committed with it) is in the batch read, so none is ever cut off.
    """
    yield f"retry: {RECONNECT_MS}\n\n"
    last_sent = time.monotonic()
    while True:
        version = platform.feed.version
        try:
            job = await anyio.to_thread.run_sync(platform.store.get, job_id)
        except NotFound:
            return
        found = await anyio.to_thread.run_sync(events_after, platform.store.db, job_id, after)
        for event in found:
            yield _frame(event)
            after = event.id
            if event.type in TERMINAL_EVENTS:
                return
        if found:
            last_sent = time.monotonic()
            continue
        if job.status.is_terminal or await request.is_disconnected():
            return
        await platform.feed.wait(FALLBACK_POLL_SECONDS, since=version)
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()


@router.get(
    "/{job_id:job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
)
async def job_events(
    request: Request,
    job_id: JobIdPath,
    platform: PlatformDep,
    tenant: TenantDep,
    last_event_id: Annotated[str, Header(alias="Last-Event-ID", pattern=r"^\s*[0-9]*\s*$")] = "",
    after: Annotated[int | None, Query(ge=0, description="resume after this event id")] = None,
) -> StreamingResponse:
    """Server-sent events of the job's state changes and progress, from its creation (or after
    ``Last-Event-ID``) until it ends. Event names: ``job.<status>`` and ``job.progress``."""
    start = _resume_point(last_event_id, after)
    await anyio.to_thread.run_sync(platform.service.get, tenant, job_id)
    return StreamingResponse(
        _stream(platform, job_id, start, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{job_id:job_id}/callback/test", response_model=CallbackTestResult)
def callback_test(job_id: JobIdPath, service: ServiceDep, caller: WriterDep) -> CallbackTestResult:
    """Send a signed ``job.test`` event to the job's callback now and report the answer."""
    job = service.get(caller.tenant, job_id)
    if not job.callback:
        raise Conflict(f"Job {job_id} has no callback to test.")
    message_id, result = send_test(service.settings, job.id, job.callback)
    return CallbackTestResult(
        delivered=result.ok,
        url=job.callback["url"],
        webhook_id=message_id,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=result.error,
        response_excerpt=result.response_excerpt,
    )
