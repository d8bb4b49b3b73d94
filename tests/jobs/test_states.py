"""Job states: the transition table's properties, and the store enforcing exactly that table.

A hypothesis test drives random sequences of requested transitions through ``JobStore.transition``
on a real SQLite database and checks that the store accepts exactly what ``can_transition``
allows, refuses the rest with a 409 ``InvalidTransition`` that leaves the job untouched, and sets
the queued/started/finished timestamps when it should.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geobatch.errors import InvalidTransition, NotFound
from geobatch.jobs.database import Database
from geobatch.jobs.models import Job, NewJob
from geobatch.jobs.states import TERMINAL, TRANSITIONS, ChunkStatus, JobStatus, can_transition
from geobatch.jobs.store import JobStore, utcnow

S = JobStatus
ALL = list(JobStatus)
NON_TERMINAL = [s for s in JobStatus if s not in TERMINAL]

# The documented life cycle (states.py module docstring), edge by edge: source -> target.
EXPECTED_EDGES = {
    (S.CREATED, S.QUEUED),
    (S.PAUSED, S.QUEUED),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.PAUSED),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.SUCCEEDED),
    (S.QUEUED, S.FAILED),
    (S.RUNNING, S.FAILED),
    (S.CREATED, S.CANCELLED),
    (S.QUEUED, S.CANCELLED),
    (S.RUNNING, S.CANCELLED),
    (S.PAUSED, S.CANCELLED),
    (S.SUCCEEDED, S.EXPIRED),
    (S.FAILED, S.EXPIRED),
    (S.CANCELLED, S.EXPIRED),
}


def targets_of(source: JobStatus) -> set[JobStatus]:
    return {target for target in JobStatus if can_transition(source, target)}


def reachable_from(start: JobStatus) -> set[JobStatus]:
    seen = {start}
    frontier = [start]
    while frontier:
        for target in targets_of(frontier.pop()):
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


# -- the table ------------------------------------------------------------------------------


def test_table_is_exactly_the_documented_life_cycle() -> None:
    edges = {(source, target) for source in JobStatus for target in JobStatus}
    allowed = {(source, target) for source, target in edges if can_transition(source, target)}
    assert allowed == EXPECTED_EDGES


def test_every_target_state_except_created_has_an_entry() -> None:
    assert set(TRANSITIONS) == set(JobStatus) - {S.CREATED}


@pytest.mark.parametrize("source", ALL)
def test_asking_whether_a_job_can_go_back_to_created_is_a_plain_no(source: JobStatus) -> None:
    assert can_transition(source, S.CREATED) is False


def test_store_refuses_a_move_back_to_created_with_409(sqlite_store: JobStore) -> None:
    job = create_job(sqlite_store, S.QUEUED)
    with pytest.raises(InvalidTransition) as refused:
        sqlite_store.transition(job.id, S.CREATED)
    assert refused.value.status == 409
    assert sqlite_store.get(job.id) == job


@pytest.mark.parametrize("source", NON_TERMINAL)
def test_every_non_terminal_state_can_be_cancelled(source: JobStatus) -> None:
    assert can_transition(source, S.CANCELLED)


@pytest.mark.parametrize("source", [S.SUCCEEDED, S.FAILED, S.CANCELLED])
def test_finished_states_only_expire(source: JobStatus) -> None:
    assert targets_of(source) == {S.EXPIRED}


def test_expired_is_final() -> None:
    assert targets_of(S.EXPIRED) == set()


@pytest.mark.parametrize("source", ALL)
def test_nothing_returns_to_created_and_no_state_loops_to_itself(source: JobStatus) -> None:
    assert not can_transition(source, S.CREATED)
    assert not can_transition(source, source)


def test_is_terminal_matches_terminal_set() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {
        S.SUCCEEDED,
        S.FAILED,
        S.CANCELLED,
        S.EXPIRED,
    }
    assert set(NON_TERMINAL) == {S.CREATED, S.QUEUED, S.RUNNING, S.PAUSED}


def test_every_state_is_reachable_from_created_and_every_job_can_end() -> None:
    assert reachable_from(S.CREATED) == set(JobStatus)
    for source in JobStatus:
        assert S.EXPIRED in reachable_from(source), source


def test_only_a_running_job_succeeds_and_a_paused_job_resumes_through_the_queue() -> None:
    assert {s for s in JobStatus if can_transition(s, S.SUCCEEDED)} == {S.RUNNING}
    assert targets_of(S.PAUSED) == {S.QUEUED, S.CANCELLED}


def test_status_values_are_the_wire_names() -> None:
    assert [s.value for s in JobStatus] == [
        "created",
        "queued",
        "running",
        "paused",
        "succeeded",
        "failed",
        "cancelled",
        "expired",
    ]
    assert [s.value for s in ChunkStatus] == ["pending", "leased", "done"]


# -- the store enforces the table ------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[JobStore]:
    database = Database(f"sqlite:///{tmp_path / 'states.db'}")
    database.migrate()
    yield JobStore(database)
    database.dispose()


def create_job(store: JobStore, status: JobStatus, tenant: str = "tenant-a") -> Job:
    new = NewJob(
        id=str(uuid.uuid4()), tenant=tenant, type="validate", options={}, input={"format": "csv"}
    )
    return store.create(new, status=status)


def check_accepted(
    before: Job, after: Job, target: JobStatus, start: datetime, end: datetime
) -> None:
    """The job after an accepted transition: new status, timestamps set as documented."""
    assert after.status is target
    assert start <= after.updated_at <= end
    assert after.created_at == before.created_at
    if target is S.QUEUED:
        assert after.queued_at is not None
        assert start <= after.queued_at <= end
    else:
        assert after.queued_at == before.queued_at
    if target is S.RUNNING and before.started_at is None:
        assert after.started_at is not None
        assert start <= after.started_at <= end
    else:
        # started_at records the first start; a resumed job keeps it.
        assert after.started_at == before.started_at
    if target in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        assert after.finished_at is not None
        assert start <= after.finished_at <= end
    else:
        # expiring keeps the moment the job finished; no other move finishes a job.
        assert after.finished_at == before.finished_at


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    initial=st.sampled_from([S.CREATED, S.QUEUED]),
    targets=st.lists(st.sampled_from(ALL), min_size=1, max_size=12),
)
def test_store_accepts_exactly_the_allowed_transitions(
    sqlite_store: JobStore, initial: JobStatus, targets: list[JobStatus]
) -> None:
    job = create_job(sqlite_store, initial)
    assert job.status is initial
    assert job.started_at is None
    assert job.finished_at is None
    assert (job.queued_at is not None) == (initial is S.QUEUED)
    for target in targets:
        current = sqlite_store.get(job.id)
        assert current == job
        start = utcnow()
        if can_transition(current.status, target):
            after = sqlite_store.transition(job.id, target)
            check_accepted(current, after, target, start, utcnow())
            job = after
        else:
            with pytest.raises(InvalidTransition) as refused:
                sqlite_store.transition(job.id, target)
            assert refused.value.status == 409
            assert refused.value.extra["current_status"] == current.status.value
            assert current.status.value in str(refused.value)
            assert sqlite_store.get(job.id) == current, "a refused transition changed the job"
    assert sqlite_store.get(job.id).status is job.status


def test_transition_by_another_tenant_is_not_found_and_changes_nothing(
    sqlite_store: JobStore,
) -> None:
    job = create_job(sqlite_store, S.QUEUED, tenant="tenant-a")
    with pytest.raises(NotFound):
        sqlite_store.transition(job.id, S.CANCELLED, tenant="tenant-b")
    assert sqlite_store.get(job.id) == job
    moved = sqlite_store.transition(job.id, S.CANCELLED, tenant="tenant-a")
    assert moved.status is S.CANCELLED


def test_transition_of_an_unknown_job_is_not_found(sqlite_store: JobStore) -> None:
    with pytest.raises(NotFound):
        sqlite_store.transition(str(uuid.uuid4()), S.QUEUED)


def test_extra_values_are_written_with_the_transition(sqlite_store: JobStore) -> None:
    job = create_job(sqlite_store, S.QUEUED)
    sqlite_store.transition(job.id, S.RUNNING)
    failed = sqlite_store.transition(
        job.id, S.FAILED, error={"code": "bad_header", "message": "no lat column"}
    )
    assert failed.error == {"code": "bad_header", "message": "no lat column"}
    assert failed.finished_at is not None


def test_resume_keeps_first_start_and_requeues(sqlite_store: JobStore) -> None:
    job = create_job(sqlite_store, S.QUEUED)
    first = sqlite_store.transition(job.id, S.RUNNING)
    paused = sqlite_store.transition(job.id, S.PAUSED)
    requeued = sqlite_store.transition(job.id, S.QUEUED)
    assert requeued.queued_at is not None
    assert job.queued_at is not None
    assert requeued.queued_at > job.queued_at
    resumed = sqlite_store.transition(job.id, S.RUNNING)
    assert first.started_at is not None
    assert paused.started_at == resumed.started_at == first.started_at


def test_a_finished_job_cannot_be_cancelled(sqlite_store: JobStore) -> None:
    job = create_job(sqlite_store, S.QUEUED)
    sqlite_store.transition(job.id, S.RUNNING)
    sqlite_store.transition(job.id, S.SUCCEEDED)
    with pytest.raises(InvalidTransition):
        sqlite_store.transition(job.id, S.CANCELLED)
    assert sqlite_store.get(job.id).status is S.SUCCEEDED
