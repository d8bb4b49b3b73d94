"""The platform end to end in-process: service, scheduler, worker processes and job store.

Jobs are created through ``JobService.create`` with a streamed CSV body, run by the real
scheduler and a local process pool (two workers, 1,000-record chunks), on SQLite and on
PostgreSQL. Pause and cancel need a job caught between two chunks, so those tests drive the
same ``Scheduler`` tick by tick instead of on its thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from geobatch.config import Settings
from geobatch.errors import Gone, InvalidTransition, NotFound
from geobatch.io.outputs import OutputFormat, read_output
from geobatch.jobs import layout
from geobatch.jobs.executor import make_executor
from geobatch.jobs.models import Job
from geobatch.jobs.runtime import Platform, open_platform
from geobatch.jobs.scheduler import Scheduler
from geobatch.jobs.service import InputSource, JobRequest
from geobatch.jobs.states import ChunkStatus, JobStatus
from geobatch.jobs.tables import chunks
from geobatch.jobs.tasks import ChunkCounts
from geobatch.jobs.types import job_type
from geobatch.reference import Release

TENANT = "tenant-a"
S = JobStatus
DEADLINE_SECONDS = 60.0
MANUAL_CHUNK = 250
MANUAL_ROWS = 10 * MANUAL_CHUNK


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    rec_id: str
    lat: str
    lon: str

    @property
    def reason(self) -> str | None:
        """What the validate engine must say about this row (the reference)."""
        for name, text, limit in (("lat", self.lat, 90), ("lon", self.lon, 180)):
            try:
                value = float(text)
            except ValueError:
                return f"{name} is not a number"
            if not -limit <= value <= limit:
                return f"{name} is outside -{limit}..{limit}"
        return None


def make_rows(count: int, prefix: str = "r") -> list[Row]:
    """Rows with a known share of invalid ones: bad lat every 7th, bad lon every 11th."""
    rows = []
    for i in range(count):
        lat = "95.5" if i % 7 == 3 else f"{(i % 179) - 89}.25"
        lon = "abc" if i % 11 == 5 else f"{(i % 359) - 179}.5"
        rows.append(Row(f"{prefix}{i}", lat, lon))
    return rows


def csv_bytes(rows: list[Row], extra_lines: dict[int, str] | None = None) -> bytes:
    """A CSV of ``rows``; ``extra_lines`` puts raw lines before the row with that index."""
    lines = ["recId,lat,lon"]
    for index, row in enumerate(rows):
        if extra_lines and index in extra_lines:
            lines.append(extra_lines[index])
        lines.append(f"{row.rec_id},{row.lat},{row.lon}")
    return ("\n".join(lines) + "\n").encode()


async def stream(data: bytes, piece: int = 16_384) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), piece):
        yield data[offset : offset + piece]


def create_job(
    platform: Platform,
    data: bytes,
    *,
    start: bool = True,
    job_type: str = "validate",
    options: dict[str, Any] | None = None,
) -> Job:
    request = JobRequest(
        type=job_type,
        input=InputSource(media_type="text/csv", file_name="points.csv"),
        options={"target_type": "reverse_geocode"} if options is None else options,
        start=start,
    )
    job, is_new = asyncio.run(platform.service.create(TENANT, request, stream(data)))
    assert is_new
    return job


# -- waiting and reading --------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def wait_for_status(platform: Platform, job_id: str, status: JobStatus) -> Job:
    def reached() -> bool:
        current = platform.store.get(job_id).status
        assert current is status or not current.is_terminal, f"job ended {current}"
        return current is status

    wait_for(reached, f"job {job_id} to become {status.value}")
    return platform.store.get(job_id)


def results(platform: Platform, job_id: str, *, errors: bool = False) -> list[dict[str, Any]]:
    download = platform.service.download(TENANT, job_id, errors=errors, fmt=OutputFormat.PARQUET)
    return read_output(b"".join(download.chunks), OutputFormat.PARQUET)


def commit_times(platform: Platform, job_id: str) -> list[datetime]:
    with platform.database.read_engine.connect() as connection:
        found = connection.execute(
            sa.select(chunks.c.committed_at).where(chunks.c.job_id == job_id)
        ).scalars()
        return sorted(at for at in found if at is not None)


def chunk_states(platform: Platform, job_id: str) -> Counter[ChunkStatus]:
    return Counter(chunk.status for chunk in platform.store.chunks_of(job_id))


def work_files(platform: Platform, job_id: str) -> list[str]:
    return [key for prefix in layout.work_prefixes(job_id) for key in platform.storage.list(prefix)]


def check_results(found: list[dict[str, Any]], rows: list[Row]) -> None:
    """Each row exactly once, in input order, with the verdict the reference expects."""
    assert [r["recId"] for r in found] == [row.rec_id for row in rows]
    assert [r["reason"] for r in found] == [row.reason for row in rows]
    assert [r["valid"] for r in found] == [row.reason is None for row in rows]


def check_statistics(job: Job, rows: list[Row], *, total: int, failed: int = 0) -> None:
    invalid = sum(row.reason is not None for row in rows)
    stats = job.statistics
    assert stats.total_records == total
    assert stats.processed_records == total
    assert stats.successful_records == len(rows) - invalid
    assert stats.failed_records == failed
    assert stats.no_match_records == 0
    assert stats.extra == {"invalid_records": invalid}


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    """The platform with its scheduler running on a thread."""
    opened = open_platform(settings)
    try:
        yield opened
    finally:
        opened.close()


@dataclass
class Manual:
    """The platform with a scheduler that runs only when the test ticks it."""

    platform: Platform
    scheduler: Scheduler

    def tick_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            self.scheduler.tick()
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def tick_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.scheduler.tick()
            time.sleep(0.01)

    def in_flight(self, job_id: str) -> int:
        return chunk_states(self.platform, job_id)[ChunkStatus.LEASED]

    def idle(self) -> bool:
        """No chunk or split is running in a worker (the scheduler has collected them all)."""
        return not self.scheduler._chunks and not self.scheduler._splits


@pytest.fixture
def manual(settings: Settings) -> Iterator[Manual]:
    # smaller chunks: ten of them from a small input, so a job is easily caught in between
    settings = settings.model_copy(update={"chunk_size": MANUAL_CHUNK})
    opened = open_platform(settings, run_scheduler=False)
    scheduler = Scheduler(settings, opened.store, opened.storage)
    scheduler.executor = make_executor(settings)
    try:
        yield Manual(opened, scheduler)
    finally:
        scheduler.executor.shutdown(wait=True, cancel_futures=True)
        opened.close()


# -- jobs run by the scheduler thread -------------------------------------------------------


def test_validate_job_counts_every_record(platform: Platform) -> None:
    rows = make_rows(5000)
    created = create_job(platform, csv_bytes(rows))
    # the scheduler may already have picked it up when create reads it back
    assert created.status in (S.QUEUED, S.RUNNING)
    assert created.queued_at is not None
    job = wait_for_status(platform, created.id, S.SUCCEEDED)
    check_statistics(job, rows, total=5000)
    assert job.split_done
    assert job.chunk_count == 5
    assert platform.store.done_seqs(job.id) == [0, 1, 2, 3, 4]
    assert platform.store.chunk_progress(job.id) == (5, 5)
    assert [c.records for c in platform.store.chunks_of(job.id)] == [1000] * 5
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.created_at <= job.started_at <= job.finished_at
    assert job.expires_at is not None
    assert job.expires_at - job.finished_at == pytest.approx(
        timedelta(days=platform.settings.retention_days), abs=timedelta(seconds=5)
    )
    assert job.error is None
    check_results(results(platform, job.id), rows)
    assert results(platform, job.id, errors=True) == []
    download = platform.service.download(TENANT, job.id, errors=False, fmt=OutputFormat.CSV)
    assert not download.partial


def test_fast_job_types_get_bigger_chunks(platform: Platform, helsinki: Release) -> None:
    """Reverse geocoding answers a record in microseconds: its chunks hold ten times more."""
    rows = [Row(f"p{i}", f"60.{1600 + i % 200}", f"24.{9300 + i % 300}") for i in range(12_000)]
    options = {"release": helsinki.manifest.id}
    job = create_job(platform, csv_bytes(rows), job_type="reverse_geocode", options=options)
    job = wait_for_status(platform, job.id, S.SUCCEEDED)
    size = platform.settings.chunk_size * job_type("reverse_geocode").chunk_scale
    assert size == 10_000
    assert [c.records for c in platform.store.chunks_of(job.id)] == [size, 12_000 - size]
    assert job.statistics.processed_records == 12_000
    assert [r["recId"] for r in results(platform, job.id)] == [row.rec_id for row in rows]


def test_malformed_rows_go_to_the_error_report(platform: Platform) -> None:
    rows = make_rows(2500)
    bad = {10: "bad-1,1,2,3", 1500: "bad-2", 2499: "bad-3,1,2,3,4"}
    job = create_job(platform, csv_bytes(rows, bad))
    job = wait_for_status(platform, job.id, S.SUCCEEDED)
    check_statistics(job, rows, total=2503, failed=3)
    check_results(results(platform, job.id), rows)
    errors = results(platform, job.id, errors=True)
    assert [e["recId"] for e in errors] == ["bad-1", "bad-2", "bad-3"]
    assert {e["code"] for e in errors} == {"malformed_row"}
    assert errors[0]["input"] == "bad-1,1,2,3"
    assert "expected 3 fields, found 4" in errors[0]["message"]
    assert "found 1" in errors[1]["message"]


def test_header_only_csv_succeeds_with_no_records(platform: Platform) -> None:
    job = create_job(platform, b"recId,lat,lon\n")
    job = wait_for_status(platform, job.id, S.SUCCEEDED)
    assert job.split_done
    assert job.chunk_count == 0
    assert job.statistics.total_records == 0
    assert job.statistics.processed_records == 0
    assert platform.store.done_seqs(job.id) == []
    assert results(platform, job.id) == []
    assert results(platform, job.id, errors=True) == []
    # An empty error report still names its columns, so a CSV reader sees a valid file.
    report = platform.service.download(TENANT, job.id, errors=True, fmt=OutputFormat.CSV)
    assert b"".join(report.chunks).decode().splitlines() == ['"recId","code","message","input"']


def test_job_created_without_start_waits_for_start(platform: Platform) -> None:
    waiting = create_job(platform, csv_bytes(make_rows(10, "w")), start=False)
    assert waiting.status is S.CREATED
    assert waiting.queued_at is None
    # another job runs to the end meanwhile: the scheduler had every chance to pick it up
    other = create_job(platform, csv_bytes(make_rows(10, "o")))
    wait_for_status(platform, other.id, S.SUCCEEDED)
    still = platform.store.get(waiting.id)
    assert still.status is S.CREATED
    assert still.started_at is None
    assert not still.split_done
    assert platform.store.chunks_of(waiting.id) == []
    started = platform.service.start(TENANT, waiting.id)
    assert started.status in (S.QUEUED, S.RUNNING)  # the scheduler may be quick
    rows = make_rows(10, "w")
    job = wait_for_status(platform, waiting.id, S.SUCCEEDED)
    check_statistics(job, rows, total=10)
    check_results(results(platform, job.id), rows)


# -- pause and cancel, with the scheduler ticked by the test --------------------------------


def first_chunk_committed(manual: Manual, job_id: str) -> Callable[[], bool]:
    return lambda: chunk_states(manual.platform, job_id)[ChunkStatus.DONE] >= 1


def test_pause_stops_dispatch_and_start_resumes(manual: Manual) -> None:
    platform = manual.platform
    rows = make_rows(MANUAL_ROWS)
    job = create_job(platform, csv_bytes(rows))
    manual.tick_until(first_chunk_committed(manual, job.id), "the first chunk to commit")
    paused = platform.service.stop(TENANT, job.id)
    assert paused.status is S.PAUSED
    assert chunk_states(platform, job.id)[ChunkStatus.PENDING] >= 2
    # chunks already running finish and are kept; nothing new is leased
    manual.tick_until(lambda: manual.in_flight(job.id) == 0, "running chunks to commit")
    done_at_pause = platform.store.done_seqs(job.id)
    manual.tick_for(0.3)
    assert platform.store.get(job.id).status is S.PAUSED
    assert platform.store.done_seqs(job.id) == done_at_pause
    states = chunk_states(platform, job.id)
    assert states[ChunkStatus.LEASED] == 0
    assert states[ChunkStatus.PENDING] == 10 - len(done_at_pause)
    assert states[ChunkStatus.PENDING] >= 2
    partial = platform.service.download(TENANT, job.id, errors=False, fmt=OutputFormat.PARQUET)
    assert partial.partial
    kept = read_output(b"".join(partial.chunks), OutputFormat.PARQUET)
    assert len(kept) == MANUAL_CHUNK * len(done_at_pause)
    # stopping twice is a conflict, starting resumes
    with pytest.raises(InvalidTransition):
        platform.service.stop(TENANT, job.id)
    assert platform.service.start(TENANT, job.id).status is S.QUEUED
    manual.tick_until(
        lambda: platform.store.get(job.id).status is S.SUCCEEDED, "the resumed job to succeed"
    )
    finished = platform.store.get(job.id)
    check_statistics(finished, rows, total=MANUAL_ROWS)
    assert platform.store.done_seqs(job.id) == list(range(10))
    assert all(chunk.attempts == 1 for chunk in platform.store.chunks_of(job.id))
    check_results(results(platform, job.id), rows)


def test_cancel_discards_results(manual: Manual) -> None:
    platform = manual.platform
    rows = make_rows(MANUAL_ROWS)
    job = create_job(platform, csv_bytes(rows))
    manual.tick_until(first_chunk_committed(manual, job.id), "the first chunk to commit")
    cancelled = platform.service.cancel(TENANT, job.id)
    assert cancelled.status is S.CANCELLED
    assert cancelled.finished_at is not None
    with pytest.raises(Gone):
        platform.service.download(TENANT, job.id, errors=False, fmt=OutputFormat.PARQUET)
    with pytest.raises(Gone):
        platform.service.download(TENANT, job.id, errors=True, fmt=OutputFormat.CSV)
    # chunks that were running come back: their commits are refused and their files dropped
    processed = platform.store.get(job.id).statistics.processed_records
    manual.tick_until(manual.idle, "running chunks to come back")
    manual.tick_for(0.2)
    after = platform.store.get(job.id)
    assert after.status is S.CANCELLED
    assert after.statistics.processed_records == processed
    assert after.statistics.total_records == MANUAL_ROWS
    assert work_files(platform, job.id) == []
    assert platform.storage.exists(layout.input_key(job.id)), "cancel keeps the input"
    with pytest.raises(InvalidTransition):
        platform.service.start(TENANT, job.id)


def test_a_chunk_failing_after_a_cancel_leaves_no_part(manual: Manual) -> None:
    """A cancel deletes the files a running chunk is writing, so the chunk may fail after it
    wrote its result part: that part is dropped too, and only the input is kept."""
    platform = manual.platform
    job = create_job(platform, csv_bytes(make_rows(MANUAL_ROWS)))
    manual.tick_until(first_chunk_committed(manual, job.id), "the first chunk to commit")
    # One chunk is held back (leased elsewhere): the job still runs when the others are done.
    (leased,) = platform.store.lease_chunks("elsewhere", 1, 60)
    manual.tick_until(manual.idle, "the other chunks to come back")
    assert platform.store.get(job.id).status is S.RUNNING
    platform.service.cancel(TENANT, job.id)
    with platform.storage.open_write(layout.result_key(job.id, leased.seq)) as sink:
        sink.write(b"half a chunk")
    failed: Future[ChunkCounts] = Future()
    failed.set_exception(FileNotFoundError("errors/ was deleted"))
    manual.scheduler._chunks[failed] = leased
    manual.tick_for(0.1)
    assert work_files(platform, job.id) == []
    assert platform.storage.exists(layout.input_key(job.id))


def test_two_jobs_share_the_workers(manual: Manual) -> None:
    """Both jobs are started before the scheduler looks: the second one's chunks do not wait
    for the first job to finish (fair leasing by chunks in flight)."""
    platform = manual.platform
    big_rows = make_rows(20 * MANUAL_CHUNK, "big")
    small_rows = make_rows(3 * MANUAL_CHUNK, "small")
    big = create_job(platform, csv_bytes(big_rows), start=False)
    small = create_job(platform, csv_bytes(small_rows), start=False)
    platform.service.start(TENANT, big.id)
    platform.service.start(TENANT, small.id)

    def both_done() -> bool:
        found = platform.store.get_many([big.id, small.id], tenant=TENANT)
        return all(job.status is S.SUCCEEDED for job in found)

    manual.tick_until(both_done, "both jobs to succeed")
    check_statistics(platform.store.get(big.id), big_rows, total=len(big_rows))
    check_statistics(platform.store.get(small.id), small_rows, total=len(small_rows))
    big_commits = commit_times(platform, big.id)
    small_commits = commit_times(platform, small.id)
    assert len(big_commits) == 20
    assert len(small_commits) == 3
    assert small_commits[0] < big_commits[-1], "the second job waited for the first to finish"
    check_results(results(platform, big.id), big_rows)
    check_results(results(platform, small.id), small_rows)


def test_jobs_of_other_tenants_are_invisible_to_control(platform: Platform) -> None:
    job = create_job(platform, csv_bytes(make_rows(10)), start=False)
    with pytest.raises(NotFound):
        platform.service.start("tenant-b", job.id)
    with pytest.raises(NotFound):
        platform.service.download("tenant-b", job.id, errors=False, fmt=OutputFormat.CSV)
    assert platform.store.get(job.id).status is S.CREATED
