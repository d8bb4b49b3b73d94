"""``GET /v1/jobs/{id}/events`` over real HTTP (uvicorn on a free port, in this process).

The job is driven through the store, step by step, while a client follows the stream, so
every state change and progress step is known and the order can be checked exactly.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from geobatch.client import Client
from geobatch.jobs import Platform
from geobatch.jobs.models import ChunkCounts, NewJob
from geobatch.jobs.states import JobStatus
from geobatch.jobs.store import JobStore

OWNER = "test-owner"


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    data: dict[str, Any]


def new_job(store: JobStore, tenant: str = "default") -> str:
    job_id = str(uuid.uuid4())
    new = NewJob(
        id=job_id,
        tenant=tenant,
        type="validate",
        options={"target_type": "reverse_geocode"},
        input={"format": "csv", "key": "somewhere"},
    )
    store.create(new, status=JobStatus.CREATED)
    return job_id


def run_to_the_end(store: JobStore, job_id: str, chunks: int = 3) -> None:
    """queued → running → split into ``chunks`` of 10 → each committed → succeeded."""
    store.transition(job_id, JobStatus.QUEUED)
    store.transition(job_id, JobStatus.RUNNING)
    store.add_chunks(job_id, [10] * chunks)
    for leased in store.lease_chunks(OWNER, chunks, 60):
        counts = ChunkCounts(
            processed=10, successful=10, failed=0, no_match=0, last_record_id=None, seconds=0.1
        )
        assert store.commit_chunk(leased.job_id, leased.seq, OWNER, counts)
    store.transition(job_id, JobStatus.SUCCEEDED)


def read_stream(url: str, job_id: str, headers: dict[str, str] | None = None) -> list[Event]:
    """Every event until the server ends the stream."""
    events = []
    with (
        httpx.Client(base_url=url, timeout=10) as http,
        connect_sse(http, "GET", f"/v1/jobs/{job_id}/events", headers=headers or {}) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events.extend(parse(source.iter_sse()))
    return events


def parse(stream: Iterator[ServerSentEvent]) -> Iterator[Event]:
    """The job events of a stream (the opening ``retry`` frame carries none)."""
    for sse in stream:
        if sse.data:
            yield Event(id=int(sse.id), type=sse.event, data=json.loads(sse.data))


def follow(url: str, job_id: str) -> tuple[threading.Thread, list[Event]]:
    """Read the stream on a thread; returns once the stream is open."""
    events: list[Event] = []
    opened = threading.Event()

    def run() -> None:
        with (
            httpx.Client(base_url=url, timeout=10) as http,
            connect_sse(http, "GET", f"/v1/jobs/{job_id}/events") as source,
        ):
            opened.set()
            events.extend(parse(source.iter_sse()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert opened.wait(10), "the stream did not open"
    return thread, events


EXPECTED_TYPES = [
    "job.created",
    "job.queued",
    "job.running",
    "job.progress",
    "job.progress",
    "job.progress",
    "job.succeeded",
]


def test_a_live_client_sees_every_change_in_order_and_the_stream_ends(
    platform: Platform, base_url: str
) -> None:
    job_id = new_job(platform.store)
    thread, events = follow(base_url, job_id)
    run_to_the_end(platform.store, job_id)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the stream did not end after the job succeeded"
    assert [e.type for e in events] == EXPECTED_TYPES
    ids = [e.id for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [e.data["status"] for e in events] == [
        "created",
        "queued",
        "running",
        "running",
        "running",
        "running",
        "succeeded",
    ]
    assert [e.data["progress"] for e in events[3:]] == [33.33, 66.67, 100.0, 100.0]
    assert events[-1].data["statistics"]["processed_records"] == 30
    assert all(e.data["job_id"] == job_id for e in events)


def test_resume_with_last_event_id(platform: Platform, base_url: str) -> None:
    job_id = new_job(platform.store)
    run_to_the_end(platform.store, job_id)
    everything = read_stream(base_url, job_id)
    assert [e.type for e in everything] == EXPECTED_TYPES
    resumed = read_stream(base_url, job_id, {"Last-Event-ID": str(everything[2].id)})
    assert resumed == everything[3:]
    assert read_stream(base_url, job_id, {"Last-Event-ID": str(everything[-1].id)}) == []
    with httpx.Client(base_url=base_url) as http:
        after = http.get(f"/v1/jobs/{job_id}/events", params={"after": everything[4].id})
    assert [line for line in after.text.splitlines() if line.startswith("event:")] == [
        f"event: {e.type}" for e in everything[5:]
    ]


def test_a_cancelled_job_ends_its_stream(platform: Platform, base_url: str) -> None:
    job_id = new_job(platform.store)
    thread, events = follow(base_url, job_id)
    platform.store.transition(job_id, JobStatus.QUEUED)
    platform.store.transition(job_id, JobStatus.CANCELLED)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [e.type for e in events] == ["job.created", "job.queued", "job.cancelled"]


def test_unknown_jobs_and_bad_resume_points_are_problems(platform: Platform, base_url: str) -> None:
    other = new_job(platform.store, tenant="someone-else")
    mine = new_job(platform.store)
    with httpx.Client(base_url=base_url) as http:
        for job_id in ("no-such-job", other):
            response = http.get(f"/v1/jobs/{job_id}/events")
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"
        response = http.get(f"/v1/jobs/{mine}/events", headers={"Last-Event-ID": "abc"})
        assert response.status_code == 422
        assert "Last-Event-ID" in response.json()["detail"]


def test_the_client_follows_the_stream_until_the_job_ends(
    platform: Platform, base_url: str
) -> None:
    job_id = new_job(platform.store)
    with Client(base_url) as client:
        updates = client.wait(job_id)
        assert next(updates)["status"] == "created"
        seen: list[dict[str, Any]] = []
        reader = threading.Thread(target=lambda: seen.extend(updates), daemon=True)
        reader.start()
        run_to_the_end(platform.store, job_id)
        reader.join(timeout=10)
        assert not reader.is_alive(), "Client.wait did not return after the job ended"
    assert [job["status"] for job in seen[:3]] == ["created", "queued", "running"]
    assert seen[-1]["status"] == "succeeded"
    assert seen[-1]["statistics"]["processed_records"] == 30
    percents = [job["progress"]["percent"] for job in seen]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
