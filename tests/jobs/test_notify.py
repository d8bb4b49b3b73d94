"""Several replicas on one PostgreSQL: a change committed by one wakes waiters on another."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from tests.jobs.test_scheduler import TENANT, create_job, csv_bytes, make_rows

from geobatch.config import Settings
from geobatch.jobs.runtime import Platform, open_platform
from geobatch.jobs.states import JobStatus

LONG_POLL_INTERVAL = 30.0
WAKE_WITHIN_SECONDS = 0.5


@pytest.fixture
def replicas(settings: Settings) -> Iterator[tuple[Platform, Platform]]:
    """Two API replicas without schedulers of their own, on the same database and storage."""
    first = open_platform(settings, run_scheduler=False)
    second = open_platform(settings, run_scheduler=False)
    try:
        for replica in (first, second):
            assert replica.listener is not None
            assert replica.listener.listening.wait(10)
        yield first, second
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_long_poll_on_one_replica_wakes_when_another_replica_ends_the_job(
    replicas: tuple[Platform, Platform],
) -> None:
    polled, other = replicas
    job = create_job(polled, csv_bytes(make_rows(10)), start=False)
    changed_at: list[float] = []

    def cancel_elsewhere() -> None:
        time.sleep(0.5)
        other.service.cancel(TENANT, job.id)
        changed_at.append(time.monotonic())

    canceller = threading.Thread(target=cancel_elsewhere)
    canceller.start()
    started = time.monotonic()
    found = asyncio.run(
        polled.service.statuses(
            TENANT, [job.id], wait=LONG_POLL_INTERVAL, poll_interval=LONG_POLL_INTERVAL
        )
    )
    returned_at = time.monotonic()
    canceller.join()

    assert [j.status for j in found] == [JobStatus.CANCELLED]
    assert returned_at - started < LONG_POLL_INTERVAL / 2
    assert returned_at - changed_at[0] < WAKE_WITHIN_SECONDS


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_each_replica_hears_every_change_of_the_others(
    replicas: tuple[Platform, Platform],
) -> None:
    first, second = replicas
    before = second.feed.version
    jobs = [create_job(first, csv_bytes(make_rows(5)), start=False) for _ in range(3)]
    deadline = time.monotonic() + 5
    while second.feed.version - before < len(jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert second.feed.version - before >= len(jobs)
    assert {j.id for j in second.store.get_many([j.id for j in jobs], tenant=TENANT)} == {
        j.id for j in jobs
    }
