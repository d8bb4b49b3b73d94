"""Several schedulers on one database, raced: every chunk is leased to one of them at a time,
every job is started (split) and finished exactly once, every webhook is sent once.

Each racer has its own engine (its own connections), as separate scheduler processes do; the
racers are released together by a barrier so their transactions really overlap.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from tests.e2e.receiver import Receiver, serve_receiver
from tests.jobs.test_delivery import callback, event_types, make_job, make_settings, outbox
from tests.jobs.test_store import counts, running_job

from geobatch.errors import InvalidTransition
from geobatch.jobs.database import Database
from geobatch.jobs.delivery import Deliverer
from geobatch.jobs.states import ChunkStatus, JobStatus
from geobatch.jobs.store import JobStore, utcnow
from geobatch.jobs.tables import chunks, jobs

RACERS = 6
T = TypeVar("T")
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def stores(database_url: str) -> Iterator[list[JobStore]]:
    """One store per racer, each on its own engine, like one per scheduler process."""
    databases = [Database(database_url) for _ in range(RACERS)]
    databases[0].migrate()
    yield [JobStore(db) for db in databases]
    for db in databases:
        db.dispose()


def race(actions: list[Callable[[], T]]) -> list[T | BaseException]:
    """Run the actions at once (released together); each one's result or exception."""
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], T]) -> T | BaseException:
        barrier.wait()
        try:
            return action()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(actions)) as pool:
        return list(pool.map(run, actions))


def test_every_chunk_is_leased_to_one_scheduler_at_a_time(stores: list[JobStore]) -> None:
    job = running_job(stores[0], 120)
    leased: dict[str, list[int]] = {}

    def drain(store: JobStore, owner: str) -> int:
        mine = leased.setdefault(owner, [])
        while batch := store.lease_chunks(owner, 7, 60):
            mine.extend(chunk.seq for chunk in batch)
        return len(mine)

    race([lambda s=s, i=i: drain(s, f"scheduler-{i}") for i, s in enumerate(stores)])  # type: ignore[misc]

    every = Counter(seq for seqs in leased.values() for seq in seqs)
    assert sorted(every) == list(range(120))
    assert set(every.values()) == {1}
    assert sum(1 for seqs in leased.values() if seqs) > 1  # they really competed
    owners = {c.seq: c.lease_owner for c in stores[0].chunks_of(job.id)}
    for owner, seqs in leased.items():
        assert all(owners[seq] == owner for seq in seqs)


def test_a_chunk_run_twice_is_counted_once(stores: list[JobStore]) -> None:
    """A slow scheduler's lease expired and another re-ran the chunk: both try to commit."""
    store = stores[0]
    job = running_job(store, 1)
    assert [c.seq for c in store.lease_chunks("slow", 1, 60)] == [0]
    with store.db.write_engine.begin() as connection:
        connection.execute(chunks.update().values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert store.reclaim_expired_leases() == 1
    assert [c.seq for c in stores[1].lease_chunks("fast", 1, 60)] == [0]

    outcomes = race(
        [
            lambda: stores[2].commit_chunk(job.id, 0, "slow", counts()),
            lambda: stores[3].commit_chunk(job.id, 0, "fast", counts()),
            lambda: stores[4].commit_chunk(job.id, 0, "fast", counts()),
        ]
    )

    assert outcomes.count(True) == 1
    assert outcomes[0] is False  # the lease it lost is not its to commit
    assert store.get(job.id).statistics.processed_records == 10
    assert [c.status for c in store.chunks_of(job.id)] == [ChunkStatus.DONE]


def test_a_queued_job_is_started_and_split_by_one_scheduler(stores: list[JobStore]) -> None:
    job_id = make_job(stores[0], callback(events=["job.running"]))

    outcomes = race([lambda s=s: s.transition(job_id, JobStatus.RUNNING) for s in stores])  # type: ignore[misc]

    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, InvalidTransition) for o in outcomes if isinstance(o, Exception))
    assert event_types(stores[0].db, job_id).count("job.running") == 1
    assert [row.event_type for row in outbox(stores[0].db, job_id)] == ["job.running"]


def test_an_abandoned_split_is_taken_over_by_one_scheduler(stores: list[JobStore]) -> None:
    job_id = make_job(stores[0], None)
    stores[0].transition(job_id, JobStatus.RUNNING)
    with stores[0].db.write_engine.begin() as connection:  # its splitter went silent long ago
        connection.execute(jobs.update().values(updated_at=utcnow() - timedelta(hours=1)))
    stale = utcnow() - timedelta(minutes=1)

    outcomes = race([lambda s=s: s.claim_split(job_id, stale) for s in stores])  # type: ignore[misc]

    assert outcomes.count(True) == 1
    assert not stores[0].claim_split(job_id, stale)  # the winner's claim made it fresh again


def test_a_finished_job_is_finalised_and_announced_once(stores: list[JobStore]) -> None:
    job_id = make_job(stores[0], callback(events=["job.succeeded"]))
    stores[0].transition(job_id, JobStatus.RUNNING)

    outcomes = race([lambda s=s: s.transition(job_id, JobStatus.SUCCEEDED) for s in stores])  # type: ignore[misc]

    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert event_types(stores[0].db, job_id).count("job.succeeded") == 1
    assert [row.event_type for row in outbox(stores[0].db, job_id)] == ["job.succeeded"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver(name="127.0.0.1")


def test_racing_delivery_loops_send_every_webhook_once(
    stores: list[JobStore], receiver: Receiver, tmp_path: Path
) -> None:
    hook = callback(url=receiver.url, events=["job.running", "job.succeeded"])
    job_ids = [make_job(stores[0], hook) for _ in range(20)]
    for job_id in job_ids:
        stores[0].transition(job_id, JobStatus.RUNNING)
        stores[0].transition(job_id, JobStatus.SUCCEEDED)
    settings = make_settings(tmp_path, url_allowlist=["127.0.0.1/32"])
    loops = [Deliverer(settings, store.db) for store in stores[:3]]
    claimed = race([lambda d=d: d.claim(1000) for d in loops])  # type: ignore[misc]
    ids = [row.id for rows in claimed if isinstance(rows, list) for row in rows]
    assert len(ids) == len(set(ids)) == 2 * len(job_ids)
    for loop, rows in zip(loops, claimed, strict=True):
        assert isinstance(rows, list)
        for row in rows:
            loop.release(row)

    for loop in loops:
        loop.start()
    try:
        receiver.wait_for(
            lambda: _delivery_states(stores[0].db).get("delivered") == 2 * len(job_ids)
        )
        settled = _delivery_states(stores[0].db)
    finally:
        for loop in loops:
            loop.stop()

    sent = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(sent) == 2 * len(job_ids)
    assert set(sent.values()) == {1}
    bodies = Counter(
        (json.loads(r.body)["data"]["job_id"], json.loads(r.body)["type"])
        for r in receiver.requests
    )
    assert bodies == Counter(
        {(job_id, kind): 1 for job_id in job_ids for kind in ("job.running", "job.succeeded")}
    )
    assert settled == {"delivered": 2 * len(job_ids)}


def _delivery_states(database: Database) -> dict[str, Any]:
    query = sa.text("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1")
    with database.read_engine.connect() as connection:
        return dict(connection.execute(query).all())
