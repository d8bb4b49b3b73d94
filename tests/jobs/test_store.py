"""The job store on real SQLite and PostgreSQL databases.

Jobs: creation, tenant isolation, every list filter, keyset pagination (also while jobs are
being created), summaries and idempotency keys. Chunks: leasing, committing exactly once,
expired and renewed leases, commits refused after a cancel, and fair leasing across jobs,
tenants and priorities.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from geobatch.errors import InvalidTransition, NotFound
from geobatch.jobs.database import Database
from geobatch.jobs.models import ChunkCounts, Job, JobFilter, NewJob
from geobatch.jobs.states import ChunkStatus, JobStatus
from geobatch.jobs.store import JobStore, LeasedChunk, utcnow
from geobatch.jobs.tables import chunks

S = JobStatus
LONG_LEASE = 60.0


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    database = Database(database_url)
    database.migrate()
    yield JobStore(database)
    database.dispose()


# -- helpers --------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def tick_clock(after: datetime) -> None:
    """Return once utcnow() is past ``after``, so consecutive jobs get distinct timestamps."""
    wait_for(lambda: utcnow() > after, timeout=1.0, what="the clock to move")


def make_job(
    store: JobStore,
    *,
    tenant: str = "tenant-a",
    status: JobStatus = S.QUEUED,
    type: str = "validate",
    bulk_id: str | None = None,
    metadata: dict[str, str] | None = None,
    priority: int = 0,
) -> Job:
    new = NewJob(
        id=str(uuid.uuid4()),
        tenant=tenant,
        type=type,
        options={"target_type": "reverse_geocode"},
        input={"format": "csv", "key": "somewhere"},
        metadata=metadata or {},
        bulk_id=bulk_id,
        priority=priority,
    )
    return store.create(new, status=status)


def running_job(
    store: JobStore, chunk_count: int, *, tenant: str = "tenant-a", priority: int = 0
) -> Job:
    """A running job whose input was split into ``chunk_count`` pending chunks of 10 records."""
    job = make_job(store, tenant=tenant, priority=priority)
    store.transition(job.id, S.RUNNING)
    store.add_chunks(job.id, [10] * chunk_count)
    return store.get(job.id)


def counts(processed: int = 10, *, successful: int = 7, failed: int = 3) -> ChunkCounts:
    return ChunkCounts(
        processed=processed,
        successful=successful,
        failed=failed,
        no_match=1,
        last_record_id=f"rec-{processed}",
        seconds=0.5,
        extra={"invalid_records": 2.0},
    )


def ids(found: list[Job]) -> set[str]:
    return {job.id for job in found}


def listed(store: JobStore, flt: JobFilter) -> set[str]:
    found, cursor = store.list_jobs(flt, page_size=1000, before_pk=None)
    assert cursor is None
    return ids(found)


def chunk_statuses(store: JobStore, job_id: str) -> list[ChunkStatus]:
    return [chunk.status for chunk in store.chunks_of(job_id)]


def committed_at(store: JobStore, job_id: str) -> dict[int, datetime | None]:
    with store.db.read_engine.connect() as connection:
        rows = connection.execute(
            sa.select(chunks.c.seq, chunks.c.committed_at).where(chunks.c.job_id == job_id)
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def page_through(store: JobStore, flt: JobFilter, page_size: int) -> list[list[Job]]:
    """Every page, following the cursor until the store says there are no more."""
    pages: list[list[Job]] = []
    cursor: int | None = None
    for _ in range(1000):
        page, cursor = store.list_jobs(flt, page_size=page_size, before_pk=cursor)
        assert len(page) <= page_size
        pages.append(page)
        if cursor is None:
            return pages
        assert len(page) == page_size, "only the last page may be short"
    raise AssertionError("pagination did not end")


def run_together(action: Callable[[], object], threads: int) -> list[object]:
    """Run ``action`` on ``threads`` threads released at once; results or raised exceptions."""
    barrier = threading.Barrier(threads)
    results: list[object] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome = action()
        except BaseException as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(results) == threads, "a thread did not finish"
    return results


def grew(items: list[str]) -> Callable[[], bool]:
    """A condition that holds once ``items`` is longer than it is now."""
    size = len(items)
    return lambda: len(items) > size


def wait_until_lease_expired(store: JobStore, job_id: str, seq: int) -> None:
    chunk = store.chunks_of(job_id)[seq]
    assert chunk.lease_expires_at is not None
    expires = chunk.lease_expires_at
    wait_for(lambda: utcnow() > expires, timeout=2.0, what="the lease to run out")


# -- jobs -----------------------------------------------------------------------------------


def test_create_and_get_round_trip(store: JobStore) -> None:
    before = utcnow()
    job = make_job(
        store,
        bulk_id="bulk-1",
        metadata={"team": "roads", "run": "7"},
        priority=3,
    )
    after = utcnow()
    assert store.get(job.id) == job
    assert store.get(job.id, tenant="tenant-a") == job
    assert job.status is S.QUEUED
    assert job.tenant == "tenant-a"
    assert job.type == "validate"
    assert job.bulk_id == "bulk-1"
    assert job.priority == 3
    assert job.metadata == {"team": "roads", "run": "7"}
    assert job.options == {"target_type": "reverse_geocode"}
    assert job.input == {"format": "csv", "key": "somewhere"}
    assert job.error is None
    for moment in (job.created_at, job.updated_at, job.queued_at):
        assert moment is not None
        assert moment.tzinfo is not None
        assert before <= moment <= after
    assert job.started_at is None
    assert job.finished_at is None
    assert job.expires_at is None
    assert not job.split_done
    assert job.chunk_count is None
    stats = job.statistics
    assert stats.total_records is None
    assert (stats.processed_records, stats.successful_records, stats.failed_records) == (0, 0, 0)
    assert stats.no_match_records == 0
    assert stats.processing_seconds == 0
    assert stats.extra == {}
    assert job.created_at.utcoffset() == timedelta(0)
    # a job created with start=false is not queued; pks follow creation order
    waiting = make_job(store, status=S.CREATED)
    assert waiting.status is S.CREATED
    assert waiting.queued_at is None
    assert waiting.pk > job.pk


def test_another_tenants_job_is_not_found(store: JobStore) -> None:
    job = make_job(store, tenant="tenant-a")
    with pytest.raises(NotFound):
        store.get(job.id, tenant="tenant-b")
    with pytest.raises(NotFound):
        store.get(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        store.transition(job.id, S.CANCELLED, tenant="tenant-b")
    assert store.get(job.id).status is S.QUEUED
    assert store.get_many([job.id], tenant="tenant-b") == []
    assert listed(store, JobFilter(tenant="tenant-b")) == set()
    assert store.summary(JobFilter(tenant="tenant-b")) == {}


def test_get_many_keeps_the_requested_order_and_skips_unknown(store: JobStore) -> None:
    a, b, c = (make_job(store) for _ in range(3))
    other = make_job(store, tenant="tenant-b")
    found = store.get_many([c.id, "nope", a.id, other.id, b.id], tenant="tenant-a")
    assert [job.id for job in found] == [c.id, a.id, b.id]


def test_list_filters(store: JobStore) -> None:
    geo = make_job(store, type="geocode", bulk_id="b1", metadata={"team": "x", "env": "prod"})
    tick_clock(geo.created_at)
    val = make_job(store, bulk_id="b1", metadata={"team": "y"})
    tick_clock(val.created_at)
    cancelled = make_job(store, metadata={"team": "x", "env": "test"})
    store.transition(cancelled.id, S.CANCELLED)
    tick_clock(cancelled.created_at)
    created = make_job(store, status=S.CREATED, bulk_id="b2")
    foreign = make_job(store, tenant="tenant-b", bulk_id="b1", metadata={"team": "x"})
    everyone = {geo.id, val.id, cancelled.id, created.id}

    def flt(**kwargs: object) -> set[str]:
        return listed(store, JobFilter(tenant="tenant-a", **kwargs))  # type: ignore[arg-type]

    assert flt() == everyone
    assert foreign.id not in flt()
    assert flt(type="geocode") == {geo.id}
    assert flt(type="validate") == everyone - {geo.id}
    assert flt(type="lookup") == set()
    assert flt(status=(S.QUEUED,)) == {geo.id, val.id}
    assert flt(status=(S.CANCELLED, S.CREATED)) == {cancelled.id, created.id}
    assert flt(status=(S.SUCCEEDED,)) == set()
    assert flt(bulk_id="b1") == {geo.id, val.id}
    assert flt(bulk_id="b2") == {created.id}
    assert flt(bulk_id="b3") == set()
    # created_after is inclusive, created_before exclusive
    assert flt(created_after=val.created_at) == {val.id, cancelled.id, created.id}
    assert flt(created_before=val.created_at) == {geo.id}
    assert flt(created_after=val.created_at, created_before=created.created_at) == {
        val.id,
        cancelled.id,
    }
    # the same instant in another time zone means the same thing
    plus_two = timezone(timedelta(hours=2))
    assert flt(created_after=val.created_at.astimezone(plus_two)) == {
        val.id,
        cancelled.id,
        created.id,
    }
    assert flt(created_after=utcnow() + timedelta(seconds=5)) == set()
    assert flt(metadata={"team": "x"}) == {geo.id, cancelled.id}
    assert flt(metadata={"team": "x", "env": "prod"}) == {geo.id}
    assert flt(metadata={"team": "z"}) == set()
    assert flt(metadata={"absent": "x"}) == set()
    assert flt(type="geocode", bulk_id="b1", metadata={"team": "x"}, status=(S.QUEUED,)) == {geo.id}
    assert flt(type="geocode", metadata={"team": "y"}) == set()


METADATA_KEYS = ["cost-center", "a.b", "with space", "Straße", 'q"uote', "$x", "1", "日本"]


def test_metadata_filter_matches_any_key(store: JobStore) -> None:
    for key in METADATA_KEYS:
        wanted = make_job(store, metadata={key: "value-ä 1"})
        make_job(store, metadata={key: "other"})
        make_job(store, metadata={"plain": "value-ä 1"})
        found = listed(store, JobFilter(tenant="tenant-a", metadata={key: "value-ä 1"}))
        assert found == {wanted.id}, f"metadata key {key!r}"


PAGINATION_CASES = [(23, 5), (20, 5), (1, 1), (3, 10), (0, 3)]


def test_pagination_visits_each_job_once(store: JobStore) -> None:
    for total, page_size in PAGINATION_CASES:
        tenant = f"tenant-{total}-{page_size}"
        made = [make_job(store, tenant=tenant).id for _ in range(total)]
        pages = page_through(store, JobFilter(tenant=tenant), page_size)
        assert [job.id for page in pages for job in page] == list(reversed(made))
        # no empty trailing page when the total is a multiple of the page size
        assert len(pages) == max(1, -(-total // page_size)), (total, page_size)


def test_pagination_with_a_filter(store: JobStore) -> None:
    wanted = [make_job(store, bulk_id="keep" if i % 3 == 0 else "drop").id for i in range(30)]
    keep = [job_id for i, job_id in enumerate(wanted) if i % 3 == 0]
    pages = page_through(store, JobFilter(tenant="tenant-a", bulk_id="keep"), page_size=3)
    assert [job.id for page in pages for job in page] == list(reversed(keep))
    assert [len(page) for page in pages] == [3, 3, 3, 1]


def test_pagination_while_another_thread_creates_jobs(store: JobStore) -> None:
    existing = [make_job(store).id for _ in range(30)]
    created: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def creator() -> None:
        try:
            while not stop.is_set():
                created.append(make_job(store).id)
                time.sleep(0.001)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=creator, daemon=True)
    thread.start()
    try:
        flt = JobFilter(tenant="tenant-a")
        seen: list[Job] = []
        cursor: int | None = None
        while True:
            # let the other thread create at least one job between every two page fetches
            wait_for(grew(created), what="a job created by the other thread")
            page, cursor = store.list_jobs(flt, page_size=4, before_pk=cursor)
            seen.extend(page)
            if cursor is None:
                break
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not failures
    assert len(created) >= 8
    seen_ids = [job.id for job in seen]
    assert len(seen_ids) == len(set(seen_ids)), "a job was listed twice"
    assert set(existing) <= set(seen_ids), "a job that existed before paging was skipped"
    assert set(seen_ids) <= set(existing) | set(created)
    pks = [job.pk for job in seen]
    assert pks == sorted(pks, reverse=True)


def test_summary_counts_by_type_and_status(store: JobStore) -> None:
    for _ in range(3):
        make_job(store, bulk_id="b1")
    make_job(store, status=S.CREATED)
    done = make_job(store, type="geocode", bulk_id="b1")
    store.transition(done.id, S.CANCELLED)
    make_job(store, type="geocode", bulk_id="b1")
    make_job(store, tenant="tenant-b")
    assert store.summary(JobFilter(tenant="tenant-a")) == {
        "validate": {"queued": 3, "created": 1},
        "geocode": {"cancelled": 1, "queued": 1},
    }
    assert store.summary(JobFilter(tenant="tenant-a", bulk_id="b1")) == {
        "validate": {"queued": 3},
        "geocode": {"cancelled": 1, "queued": 1},
    }
    assert store.summary(JobFilter(tenant="tenant-a", type="geocode")) == {
        "geocode": {"cancelled": 1, "queued": 1}
    }
    assert store.summary(JobFilter(tenant="tenant-b")) == {"validate": {"queued": 1}}


def test_orderings(store: JobStore) -> None:
    """Lists are newest first; the scheduler takes queued jobs by priority, then age."""
    low = make_job(store, priority=0)
    high = make_job(store, priority=5)
    later_low = make_job(store, priority=0)
    waiting = make_job(store, status=S.CREATED, priority=9)
    found = store.jobs_in([S.QUEUED])
    assert [job.id for job in found] == [high.id, low.id, later_low.id]
    listed_, _ = store.list_jobs(JobFilter(tenant="tenant-a"), page_size=10, before_pk=None)
    assert [job.id for job in listed_] == [waiting.id, later_low.id, high.id, low.id]


# -- idempotency keys -----------------------------------------------------------------------


def test_idempotency_key_claim_complete_release(store: JobStore) -> None:
    assert store.claim_idempotency_key("tenant-a", "k1") is None
    # claimed again while the first request is in flight: no job yet
    assert store.claim_idempotency_key("tenant-a", "k1") == (None, None)
    # keys belong to a tenant
    assert store.claim_idempotency_key("tenant-b", "k1") is None
    store.complete_idempotency_key("tenant-a", "k1", "job-1", "hash-1")
    assert store.claim_idempotency_key("tenant-a", "k1") == ("job-1", "hash-1")
    # a completed key is never released
    store.release_idempotency_key("tenant-a", "k1")
    assert store.claim_idempotency_key("tenant-a", "k1") == ("job-1", "hash-1")
    # a failed request releases its key, so a retry can claim it afresh
    store.release_idempotency_key("tenant-b", "k1")
    assert store.claim_idempotency_key("tenant-b", "k1") is None
    assert store.claim_idempotency_key("tenant-b", "k1") == (None, None)


def test_concurrent_claims_of_one_key_have_one_winner(store: JobStore) -> None:
    for round_ in range(5):
        key = f"key-{round_}"
        results = run_together(lambda key=key: store.claim_idempotency_key("tenant-a", key), 6)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"claims raised instead of reporting the key as taken: {errors!r}"
        assert results.count(None) == 1
        assert results.count((None, None)) == 5


# -- chunks ---------------------------------------------------------------------------------


def test_add_chunks_records_the_split(store: JobStore) -> None:
    job = make_job(store)
    store.transition(job.id, S.RUNNING)
    store.add_chunks(job.id, [1000, 1000, 17])
    job = store.get(job.id)
    assert job.split_done
    assert job.chunk_count == 3
    assert job.statistics.total_records == 2017
    found = store.chunks_of(job.id)
    assert [(c.seq, c.records, c.status, c.attempts) for c in found] == [
        (0, 1000, ChunkStatus.PENDING, 0),
        (1, 1000, ChunkStatus.PENDING, 0),
        (2, 17, ChunkStatus.PENDING, 0),
    ]
    assert all(c.lease_owner is None and c.lease_expires_at is None for c in found)
    assert store.chunk_progress(job.id) == (0, 3)
    # a split done again replaces the first one
    store.add_chunks(job.id, [5, 5])
    job = store.get(job.id)
    assert job.chunk_count == 2
    assert job.statistics.total_records == 10
    assert [c.seq for c in store.chunks_of(job.id)] == [0, 1]
    # an input without records splits into no chunks
    empty = make_job(store)
    store.transition(empty.id, S.RUNNING)
    assert store.add_chunks(empty.id, [])
    empty = store.get(empty.id)
    assert empty.split_done
    assert empty.chunk_count == 0
    assert empty.statistics.total_records == 0
    assert store.chunk_progress(empty.id) == (0, 0)


@pytest.mark.parametrize("status", [S.CANCELLED, None])
def test_a_split_of_a_cancelled_or_deleted_job_is_refused(
    store: JobStore, status: S | None
) -> None:
    job = make_job(store)
    store.transition(job.id, S.RUNNING)
    if status is None:
        store.delete(job.id)
    else:
        store.transition(job.id, status)
    assert not store.add_chunks(job.id, [10, 10])
    with store.db.read_engine.connect() as connection:
        left = connection.execute(sa.select(sa.func.count()).select_from(chunks)).scalar_one()
    assert left == 0
    if status is not None:
        found = store.get(job.id)
        assert not found.split_done
        assert found.statistics.total_records is None


def test_only_running_split_jobs_are_leased(store: JobStore) -> None:
    queued = make_job(store)
    store.add_chunks(queued.id, [10])
    unsplit = make_job(store)
    store.transition(unsplit.id, S.RUNNING)
    paused = running_job(store, 2)
    store.transition(paused.id, S.PAUSED)
    cancelled = running_job(store, 2)
    store.transition(cancelled.id, S.CANCELLED)
    assert store.lease_chunks("owner-1", 10, LONG_LEASE) == []
    live = running_job(store, 3)
    before = utcnow()
    leased = store.lease_chunks("owner-1", 2, LONG_LEASE)
    assert [(c.job_id, c.seq, c.attempts) for c in leased] == [(live.id, 0, 1), (live.id, 1, 1)]
    found = store.chunks_of(live.id)
    assert [c.status for c in found] == [
        ChunkStatus.LEASED,
        ChunkStatus.LEASED,
        ChunkStatus.PENDING,
    ]
    for chunk in found[:2]:
        assert chunk.lease_owner == "owner-1"
        assert chunk.lease_expires_at is not None
        assert chunk.lease_expires_at >= before + timedelta(seconds=LONG_LEASE - 1)
    assert found[2].lease_owner is None
    assert [c.seq for c in store.lease_chunks("owner-2", 10, LONG_LEASE)] == [2]
    assert store.lease_chunks("owner-2", 10, LONG_LEASE) == []
    assert store.lease_chunks("owner-2", 0, LONG_LEASE) == []


def test_commit_adds_counts_exactly_once(store: JobStore) -> None:
    job = running_job(store, 2)
    # a chunk that was never leased cannot be committed
    assert not store.commit_chunk(job.id, 0, "owner-1", counts())
    assert chunk_statuses(store, job.id) == [ChunkStatus.PENDING, ChunkStatus.PENDING]
    store.lease_chunks("owner-1", 2, LONG_LEASE)
    before = utcnow()
    assert store.commit_chunk(job.id, 0, "owner-1", counts(10, successful=7, failed=3))
    after = utcnow()
    # the same commit again, and one by a different owner, change nothing
    assert not store.commit_chunk(job.id, 0, "owner-1", counts(10))
    assert not store.commit_chunk(job.id, 0, "owner-2", counts(10))
    assert not store.commit_chunk(job.id, 1, "owner-2", counts(10))
    stats = store.get(job.id).statistics
    assert stats.processed_records == 10
    assert stats.successful_records == 7
    assert stats.failed_records == 3
    assert stats.no_match_records == 1
    assert stats.processing_seconds == pytest.approx(0.5)
    assert stats.extra == {"invalid_records": 2.0}
    assert stats.last_record_id == "rec-10"
    assert chunk_statuses(store, job.id) == [ChunkStatus.DONE, ChunkStatus.LEASED]
    at = committed_at(store, job.id)
    assert at[1] is None
    assert at[0] is not None
    assert before <= at[0] <= after
    assert store.done_seqs(job.id) == [0]
    assert store.chunk_progress(job.id) == (1, 2)
    # the rightful owner still commits the other chunk; statistics add up
    assert store.commit_chunk(job.id, 1, "owner-1", counts(9, successful=9, failed=0))
    stats = store.get(job.id).statistics
    assert stats.processed_records == 19
    assert stats.successful_records == 16
    assert stats.failed_records == 3
    assert stats.no_match_records == 2
    assert stats.extra == {"invalid_records": 4.0}
    assert stats.last_record_id == "rec-9"
    assert store.done_seqs(job.id) == [0, 1]
    assert store.chunk_progress(job.id) == (2, 2)
    done = store.chunks_of(job.id)[0]
    assert done.lease_owner is None
    assert done.lease_expires_at is None


def test_last_record_id_is_of_the_furthest_chunk_whatever_the_commit_order(
    store: JobStore,
) -> None:
    job = running_job(store, 3)
    store.lease_chunks("owner-1", 3, LONG_LEASE)
    assert store.commit_chunk(job.id, 2, "owner-1", counts(30))
    assert store.get(job.id).statistics.last_record_id == "rec-30"
    assert store.commit_chunk(job.id, 0, "owner-1", counts(10))
    assert store.commit_chunk(job.id, 1, "owner-1", counts(20))
    assert store.get(job.id).statistics.last_record_id == "rec-30"


def test_concurrent_commits_of_one_chunk_count_once(store: JobStore) -> None:
    job = running_job(store, 1)
    store.lease_chunks("owner-1", 1, LONG_LEASE)
    outcomes = run_together(lambda: store.commit_chunk(job.id, 0, "owner-1", counts(10)), 4)
    assert sorted(outcomes, key=repr) == [False, False, False, True]
    assert store.get(job.id).statistics.processed_records == 10


def test_expired_lease_returns_the_chunk_and_refuses_the_old_owner(store: JobStore) -> None:
    job = running_job(store, 2)
    store.lease_chunks("old-owner", 1, 0.01)
    store.lease_chunks("keeper", 1, LONG_LEASE)
    wait_until_lease_expired(store, job.id, 0)
    assert store.reclaim_expired_leases() == 1
    assert store.reclaim_expired_leases() == 0
    first, second = store.chunks_of(job.id)
    assert first.status is ChunkStatus.PENDING
    assert first.lease_owner is None
    assert first.lease_expires_at is None
    assert first.attempts == 1
    assert second.status is ChunkStatus.LEASED, "an unexpired lease was reclaimed"
    assert second.lease_owner == "keeper"
    # the old owner finishes late: refused, nothing counted
    assert not store.commit_chunk(job.id, 0, "old-owner", counts(10))
    assert store.get(job.id).statistics.processed_records == 0
    # the chunk runs again under a new lease and counts once
    again = store.lease_chunks("new-owner", 5, LONG_LEASE)
    assert again == [LeasedChunk(job_id=job.id, seq=0, attempts=2)]
    assert not store.commit_chunk(job.id, 0, "old-owner", counts(10))
    assert store.commit_chunk(job.id, 0, "new-owner", counts(10))
    assert store.get(job.id).statistics.processed_records == 10


def test_commit_refused_after_cancel(store: JobStore) -> None:
    job = running_job(store, 2)
    store.lease_chunks("owner-1", 2, LONG_LEASE)
    assert store.commit_chunk(job.id, 0, "owner-1", counts(10))
    store.transition(job.id, S.CANCELLED)
    assert not store.commit_chunk(job.id, 1, "owner-1", counts(10))
    job = store.get(job.id)
    assert job.status is S.CANCELLED
    assert job.statistics.processed_records == 10
    assert store.done_seqs(job.id) == [0]
    assert chunk_statuses(store, job.id)[1] is not ChunkStatus.DONE


def test_chunk_in_flight_when_paused_still_commits_and_no_more_are_leased(
    store: JobStore,
) -> None:
    job = running_job(store, 3)
    store.lease_chunks("owner-1", 1, LONG_LEASE)
    store.transition(job.id, S.PAUSED)
    assert store.commit_chunk(job.id, 0, "owner-1", counts(10))
    assert store.lease_chunks("owner-1", 5, LONG_LEASE) == []
    assert store.get(job.id).statistics.processed_records == 10
    store.transition(job.id, S.QUEUED)
    store.transition(job.id, S.RUNNING)
    assert [c.seq for c in store.lease_chunks("owner-1", 5, LONG_LEASE)] == [1, 2]


def test_renew_keeps_a_lease_alive(store: JobStore) -> None:
    job = running_job(store, 2)
    store.lease_chunks("owner-1", 1, 0.01)
    store.lease_chunks("owner-2", 1, 0.01)
    wait_until_lease_expired(store, job.id, 0)
    wait_until_lease_expired(store, job.id, 1)
    # owner-1 renews its chunk; owner-2 tries to renew a chunk it does not hold
    store.renew_leases("owner-1", [(job.id, 0)], LONG_LEASE)
    store.renew_leases("owner-2", [(job.id, 0)], 0.01)
    store.renew_leases("owner-1", [(job.id, 1)], LONG_LEASE)
    assert store.reclaim_expired_leases() == 1
    first, second = store.chunks_of(job.id)
    assert first.status is ChunkStatus.LEASED
    assert first.lease_owner == "owner-1"
    assert first.lease_expires_at is not None
    assert first.lease_expires_at > utcnow() + timedelta(seconds=LONG_LEASE / 2)
    assert second.status is ChunkStatus.PENDING
    assert store.commit_chunk(job.id, 0, "owner-1", counts(10))
    store.renew_leases("owner-1", [], LONG_LEASE)


def test_release_returns_a_chunk_only_for_its_owner(store: JobStore) -> None:
    job = running_job(store, 1)
    store.lease_chunks("owner-1", 1, LONG_LEASE)
    store.release_chunk(job.id, 0, "owner-2")
    assert chunk_statuses(store, job.id) == [ChunkStatus.LEASED]
    store.release_chunk(job.id, 0, "owner-1")
    assert chunk_statuses(store, job.id) == [ChunkStatus.PENDING]
    assert not store.commit_chunk(job.id, 0, "owner-1", counts())
    assert store.lease_chunks("owner-2", 1, LONG_LEASE)[0].attempts == 2


def test_concurrent_leases_never_hand_out_a_chunk_twice(store: JobStore) -> None:
    job = running_job(store, 30)
    owners = ["owner-0", "owner-1", "owner-2"]

    def lease() -> list[LeasedChunk]:
        return store.lease_chunks(owners.pop(), 30, LONG_LEASE)

    batches = run_together(lease, 3)
    keys = [(c.job_id, c.seq) for batch in batches for c in batch]  # type: ignore[union-attr]
    assert len(keys) == len(set(keys))
    assert len(keys) == 30
    found = store.chunks_of(job.id)
    assert all(c.status is ChunkStatus.LEASED for c in found)
    assert all(c.lease_owner is not None for c in found)


# -- fairness -------------------------------------------------------------------------------


def test_two_jobs_of_one_tenant_share_leases_evenly(store: JobStore) -> None:
    first = running_job(store, 10)
    second = running_job(store, 10)
    leased = store.lease_chunks("owner-1", 6, LONG_LEASE)
    per_job = Counter(c.job_id for c in leased)
    assert per_job == {first.id: 3, second.id: 3}
    # within a job, chunks go in input order
    assert [c.seq for c in leased if c.job_id == first.id] == [0, 1, 2]
    assert [c.seq for c in leased if c.job_id == second.id] == [0, 1, 2]


def test_leases_interleave_by_tenant(store: JobStore) -> None:
    a1 = running_job(store, 10, tenant="A")
    a2 = running_job(store, 10, tenant="A")
    b1 = running_job(store, 10, tenant="B")
    tenant_of = {a1.id: "A", a2.id: "A", b1.id: "B"}
    leased = store.lease_chunks("owner-1", 6, LONG_LEASE)
    order = [tenant_of[c.job_id] for c in leased]
    assert order in (["A", "B"] * 3, ["B", "A"] * 3)
    per_job = Counter(c.job_id for c in leased)
    assert per_job[b1.id] == 3
    assert per_job[a1.id] + per_job[a2.id] == 3
    assert per_job[a1.id] >= 1
    assert per_job[a2.id] >= 1


def test_chunks_already_in_flight_count_toward_fairness(store: JobStore) -> None:
    busy = running_job(store, 10)
    assert len(store.lease_chunks("owner-1", 4, LONG_LEASE)) == 4
    idle = running_job(store, 10)
    leased = store.lease_chunks("owner-2", 4, LONG_LEASE)
    assert [c.job_id for c in leased] == [idle.id] * 4
    leased = store.lease_chunks("owner-2", 4, LONG_LEASE)
    assert Counter(c.job_id for c in leased) == {busy.id: 2, idle.id: 2}


def test_higher_priority_is_leased_first(store: JobStore) -> None:
    low = running_job(store, 10, tenant="A", priority=0)
    high = running_job(store, 4, tenant="B", priority=5)
    leased = store.lease_chunks("owner-1", 6, LONG_LEASE)
    assert [c.job_id for c in leased] == [high.id] * 4 + [low.id] * 2
    assert [c.seq for c in leased] == [0, 1, 2, 3, 0, 1]


def test_lease_order_across_rounds_is_fair(store: JobStore) -> None:
    """Leasing one chunk at a time (a busy scheduler) still alternates between tenants."""
    a = running_job(store, 5, tenant="A")
    b = running_job(store, 5, tenant="B")
    order = []
    for _ in range(6):
        (leased,) = store.lease_chunks("owner-1", 1, LONG_LEASE)
        order.append(leased.job_id)
    assert order in ([a.id, b.id] * 3, [b.id, a.id] * 3)


def test_finished_jobs_are_not_leased_and_expire_and_delete(
    store: JobStore,
) -> None:
    job = running_job(store, 1)
    past = utcnow() - timedelta(seconds=1)
    store.transition(job.id, S.CANCELLED, expires_at=past)
    live = make_job(store)
    assert store.lease_chunks("owner-1", 5, LONG_LEASE) == []
    expired = store.expired_jobs(utcnow())
    assert [j.id for j in expired] == [job.id]
    assert live.id not in ids(expired)
    assert store.expired_jobs(past - timedelta(seconds=1)) == []
    store.transition(job.id, S.EXPIRED)
    assert store.expired_jobs(utcnow()) == []
    # deleting a job removes it and its chunks
    store.delete(job.id)
    with pytest.raises(NotFound):
        store.get(job.id)
    assert store.chunks_of(job.id) == []


def test_racing_cancel_and_succeed_have_one_winner(store: JobStore) -> None:
    for _ in range(5):
        job = running_job(store, 1)
        targets = [S.CANCELLED, S.SUCCEEDED]

        def attempt(job_id: str = job.id, targets: list[JobStatus] = targets) -> JobStatus:
            target = targets.pop()  # atomic: each thread gets one of the two
            store.transition(job_id, target)
            return target

        outcomes = run_together(attempt, 2)
        winners = [o for o in outcomes if isinstance(o, JobStatus)]
        losers = [o for o in outcomes if isinstance(o, InvalidTransition)]
        assert len(winners) == 1
        assert len(losers) == 1
        assert store.get(job.id).status is winners[0]
