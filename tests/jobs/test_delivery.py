"""The event log and webhook outbox on real databases, and the delivery loop's bookkeeping.

Events are written in the transaction of the change that causes them; the outbox rows are
claimed with leases, settled once, retried on the policy's schedule and given up after
``max_attempts``; a send is bounded and re-checks the URL.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.receiver import HANG, Receiver, serve_receiver

from geobatch.config import Settings
from geobatch.errors import InvalidTransition
from geobatch.jobs import events
from geobatch.jobs.database import Database
from geobatch.jobs.delivery import (
    IDLE_SECONDS,
    MAX_RESPONSE_BYTES,
    Deliverer,
    SendResult,
    attempts_of,
    http_client,
    send,
)
from geobatch.jobs.models import ChunkCounts, NewJob
from geobatch.jobs.states import JobStatus
from geobatch.jobs.store import JobStore, utcnow
from geobatch.jobs.tables import webhook_deliveries
from geobatch.jobs.urls import pinned

S = JobStatus
SECRET = "whsec_" + "a" * 32


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def store(database: Database) -> JobStore:
    return JobStore(database)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver(name="127.0.0.1")


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path, _env_file=None, **values)  # type: ignore[call-arg]


def callback(**values: Any) -> dict[str, Any]:
    return {
        "url": "http://127.0.0.1:9/hook",
        "secret": SECRET,
        "signature_header": "webhook-signature",
        "events": ["job.progress", "job.running", "job.succeeded"],
        "progress_step_percent": 25,
        "retry_policy": {
            "max_attempts": 3,
            "initial_delay_seconds": 10,
            "strategy": "exponential",
            "jitter": 0,
        },
        **values,
    }


def make_job(store: JobStore, hook: dict[str, Any] | None) -> str:
    job_id = str(uuid.uuid4())
    new = NewJob(
        id=job_id,
        tenant="t",
        type="validate",
        options={},
        input={"format": "csv", "key": "k"},
        callback=hook,
    )
    store.create(new, status=S.QUEUED)
    return job_id


def event_types(database: Database, job_id: str) -> list[str]:
    return [e.type for e in events.events_after(database, job_id, 0)]


def outbox(database: Database, job_id: str) -> list[Any]:
    with database.read_engine.connect() as connection:
        return list(
            connection.execute(
                webhook_deliveries.select()
                .where(webhook_deliveries.c.job_id == job_id)
                .order_by(webhook_deliveries.c.id)
            )
        )


def run_chunks(store: JobStore, job_id: str, sizes: list[int]) -> None:
    store.add_chunks(job_id, sizes)
    for leased in sorted(store.lease_chunks("o", len(sizes), 60), key=lambda c: c.seq):
        counts = ChunkCounts(
            processed=sizes[leased.seq],
            successful=sizes[leased.seq],
            failed=0,
            no_match=0,
            last_record_id=None,
            seconds=0.0,
        )
        assert store.commit_chunk(job_id, leased.seq, "o", counts)


# -- the event log and the outbox ---------------------------------------------------------------


def test_every_change_is_logged_and_subscribed_ones_are_queued(
    store: JobStore, database: Database
) -> None:
    job_id = make_job(store, callback())
    store.transition(job_id, S.RUNNING)
    run_chunks(store, job_id, [10] * 10)
    store.transition(job_id, S.SUCCEEDED)
    assert event_types(database, job_id) == [
        "job.queued",
        "job.running",
        *["job.progress"] * 10,
        "job.succeeded",
    ]
    queued = outbox(database, job_id)
    # Progress is pushed each time 25 % pass: after 30 %, 50 %, 80 % and 100 %.
    assert [row.event_type for row in queued] == [
        "job.running",
        *["job.progress"] * 4,
        "job.succeeded",
    ]
    assert all(row.status == "pending" and row.attempts == 0 for row in queued)
    assert len({row.message_id for row in queued}) == len(queued)
    assert '"progress":30.0' in queued[1].body
    assert '"progress":100.0' in queued[-1].body


def test_a_job_without_callback_queues_nothing(store: JobStore, database: Database) -> None:
    job_id = make_job(store, None)
    store.transition(job_id, S.RUNNING)
    assert event_types(database, job_id) == ["job.queued", "job.running"]
    assert outbox(database, job_id) == []


def test_the_event_is_part_of_the_state_change_transaction(
    store: JobStore, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing the event fails, the state change is rolled back with it; a refused
    transition writes no event."""
    job_id = make_job(store, callback())

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(events, "_append", broken)
    with pytest.raises(RuntimeError):
        store.transition(job_id, S.RUNNING)
    monkeypatch.undo()
    assert store.get(job_id).status is S.QUEUED
    with pytest.raises(InvalidTransition):
        store.transition(job_id, S.SUCCEEDED)
    assert event_types(database, job_id) == ["job.queued"]
    assert outbox(database, job_id) == []


def test_deleting_a_job_keeps_its_pending_deliveries(store: JobStore, database: Database) -> None:
    job_id = make_job(store, callback(events=["job.cancelled"]))
    store.transition(job_id, S.CANCELLED)
    store.delete(job_id)
    assert event_types(database, job_id) == []
    assert [row.event_type for row in outbox(database, job_id)] == ["job.cancelled"]


# -- claiming and settling ------------------------------------------------------------------------


def test_claims_are_exclusive_and_settled_once(
    store: JobStore, database: Database, tmp_path: Path
) -> None:
    job_id = make_job(store, callback())
    store.transition(job_id, S.RUNNING)
    settings = make_settings(tmp_path)
    first, second = Deliverer(settings, database), Deliverer(settings, database)
    (claimed,) = first.claim(10)
    assert claimed.attempt == 1
    assert second.claim(10) == [], "a leased row is not claimed twice"
    first.record(claimed, SendResult(status_code=200, duration_ms=3.0, error=None))
    assert second.claim(10) == []
    (row,) = outbox(database, job_id)
    assert (row.status, row.attempts, row.lease_owner) == ("delivered", 1, None)
    (attempt,) = attempts_of(database, job_id)
    assert attempt["status_code"] == 200
    assert attempt["delivered_at"] is not None
    assert attempt["next_attempt_at"] is None


def test_failures_retry_on_the_policy_schedule_then_give_up(
    store: JobStore, database: Database, tmp_path: Path
) -> None:
    job_id = make_job(store, callback())
    store.transition(job_id, S.RUNNING)
    deliverer = Deliverer(make_settings(tmp_path), database)

    def fail_once(result: SendResult) -> None:
        with database.write_engine.begin() as connection:  # make the row due now
            connection.execute(webhook_deliveries.update().values(next_attempt_at=utcnow()))
        (claimed,) = deliverer.claim(10)
        deliverer.record(claimed, result)

    timeout = SendResult(status_code=None, duration_ms=500.0, error="no answer within 0.5 s")
    fail_once(SendResult(status_code=500, duration_ms=1.0, error="HTTP 500"))
    fail_once(SendResult(status_code=429, duration_ms=1.0, error="HTTP 429", retry_after=120))
    fail_once(timeout)
    logged = attempts_of(database, job_id)
    assert [a["attempt"] for a in logged] == [1, 2, 3]
    waits = [
        (a["next_attempt_at"] - a["attempted_at"]).total_seconds()
        for a in logged
        if a["next_attempt_at"]
    ]
    assert len(waits) == 2
    assert 10 <= waits[0] < 11, "after the first failure: initial_delay_seconds"
    assert 120 <= waits[1] < 121, "the receiver's Retry-After replaces the policy's 20 s"
    assert logged[-1]["next_attempt_at"] is None
    assert logged[-1]["error"] == "no answer within 0.5 s"
    (row,) = outbox(database, job_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert deliverer.claim(10) == []


def test_a_dead_senders_lease_runs_out_and_its_late_answer_is_ignored(
    store: JobStore, database: Database, tmp_path: Path
) -> None:
    job_id = make_job(store, callback())
    store.transition(job_id, S.RUNNING)
    settings = make_settings(tmp_path)
    dead, alive = Deliverer(settings, database), Deliverer(settings, database)
    (lost,) = dead.claim(10)
    with database.write_engine.begin() as connection:
        connection.execute(
            webhook_deliveries.update().values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    (taken,) = alive.claim(10)
    assert taken.message_id == lost.message_id
    alive.record(taken, SendResult(status_code=204, duration_ms=1.0, error=None))
    dead.record(lost, SendResult(status_code=500, duration_ms=1.0, error="HTTP 500"))
    (row,) = outbox(database, job_id)
    assert row.status == "delivered"
    assert [a["status_code"] for a in attempts_of(database, job_id)] == [204]


def test_a_row_released_on_stop_goes_out_next_without_a_lost_attempt(
    store: JobStore, database: Database, tmp_path: Path
) -> None:
    job_id = make_job(store, callback())
    store.transition(job_id, S.RUNNING)
    settings = make_settings(tmp_path)
    stopping, next_one = Deliverer(settings, database), Deliverer(settings, database)
    (claimed,) = stopping.claim(10)
    stopping.release(claimed)
    (again,) = next_one.claim(10)
    assert again.message_id == claimed.message_id
    assert again.attempt == 1
    assert attempts_of(database, job_id) == []


def test_the_loop_sleeps_until_the_next_retry_is_due(
    store: JobStore, database: Database, tmp_path: Path
) -> None:
    deliverer = Deliverer(make_settings(tmp_path), database)
    assert deliverer.seconds_to_next_due() == IDLE_SECONDS, "an empty outbox: the longest nap"
    job_id = make_job(store, callback())
    store.transition(job_id, S.RUNNING)
    assert deliverer.seconds_to_next_due() == 0.0, "a row due now"
    assert len(deliverer.claim(10)) == 1
    assert deliverer.seconds_to_next_due() == IDLE_SECONDS, "its lease runs out much later"
    with database.write_engine.begin() as connection:
        connection.execute(
            webhook_deliveries.update().values(
                status="pending", next_attempt_at=utcnow() + timedelta(seconds=0.4)
            )
        )
    assert 0.2 < deliverer.seconds_to_next_due() <= 0.4, "a retry due in 0.4 s"


def test_an_idle_loop_does_not_poll_and_a_change_wakes_it(
    store: JobStore, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliverer = Deliverer(make_settings(tmp_path), database)
    looked: list[float] = []
    claim = deliverer.claim

    def counted(limit: int) -> list[Any]:
        looked.append(time.monotonic())
        return claim(limit)

    monkeypatch.setattr(deliverer, "claim", counted)
    deliverer.start()
    try:
        time.sleep(2.0)
        assert len(looked) <= 4, f"an empty outbox was looked at {len(looked)} times in 2 s"
        job_id = make_job(store, callback(url="http://127.0.0.1:9/hook"))
        store.transition(job_id, S.RUNNING)
        before = len(looked)
        woken = time.monotonic()
        threading.Thread(target=deliverer.wake).start()
        deadline = time.monotonic() + IDLE_SECONDS / 2
        while len(looked) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(looked) > before, "a change makes the loop look at once"
        assert looked[before] - woken < IDLE_SECONDS / 2
    finally:
        deliverer.stop()


def test_settled_deliveries_are_forgotten_after_the_retention(
    store: JobStore, database: Database, tmp_path: Path
) -> None:
    job_id = make_job(store, callback())
    store.transition(job_id, S.RUNNING)
    store.transition(job_id, S.SUCCEEDED)
    deliverer = Deliverer(make_settings(tmp_path, retention_days=1), database)
    claimed = deliverer.claim(10)
    deliverer.record(claimed[0], SendResult(status_code=200, duration_ms=1.0, error=None))
    assert deliverer.purge() == 0, "a fresh delivery is kept"
    with database.write_engine.begin() as connection:
        connection.execute(
            webhook_deliveries.update().values(created_at=utcnow() - timedelta(days=2))
        )
    assert deliverer.purge() == 1, "only the settled one goes; the one in flight stays"
    assert [row.event_type for row in outbox(database, job_id)] == ["job.succeeded"]
    assert attempts_of(database, job_id) == []


# -- one send ---------------------------------------------------------------------------------


def send_to(url: str, settings: Settings) -> SendResult:
    with http_client(settings) as http:
        return send(http, settings, callback(url=url), "msg_x", '{"type":"job.test"}')


def test_send_is_signed_and_reads_a_bounded_answer(receiver: Receiver, tmp_path: Path) -> None:
    receiver.reply_body = b"x" * (4 * MAX_RESPONSE_BYTES)
    result = send_to(receiver.url, make_settings(tmp_path, url_allowlist=["127.0.0.1/32"]))
    assert result.ok
    assert result.status_code == 200
    assert len(result.response_excerpt) == 500
    (request,) = receiver.requests
    assert request.headers["webhook-id"] == "msg_x"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.body == b'{"type":"job.test"}'


def test_redirects_are_not_followed(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script = [(307, {"Location": "http://169.254.169.254/latest"})]
    result = send_to(receiver.url, make_settings(tmp_path, url_allowlist=["127.0.0.1/32"]))
    assert not result.ok
    assert result.error == "HTTP 307"
    assert len(receiver.requests) == 1


def test_a_silent_receiver_times_out(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script = [(HANG, {})]
    settings = make_settings(tmp_path, url_allowlist=["127.0.0.1/32"], webhook_timeout_seconds=0.3)
    result = send_to(receiver.url, settings)
    assert result.status_code is None
    assert result.error == "no answer within 0.3 s"


def test_the_url_is_checked_again_at_delivery_time(receiver: Receiver, tmp_path: Path) -> None:
    """Allowed when the job was created, no longer allowed now: nothing is sent."""
    result = send_to(receiver.url, make_settings(tmp_path))
    assert result.status_code is None
    assert result.error is not None
    assert "private or reserved" in result.error
    assert receiver.requests == []


def test_the_request_goes_to_the_address_that_was_checked(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that resolves to an allowed address for the check and to another
    one a moment later still reaches the checked address, under its own name."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host != "hooks.example.test":
            return real(host, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "10.255.255.1"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = receiver.url.replace("127.0.0.1", "hooks.example.test")
    result = send_to(url, make_settings(tmp_path, url_allowlist=["127.0.0.1/32"]))
    assert result.ok, result.error
    assert lookups == ["hooks.example.test"]  # resolved once, for the check
    (request,) = receiver.requests
    assert request.headers["host"] == url.split("/")[2]


@pytest.mark.parametrize(
    ("url", "address", "expected", "host"),
    [
        ("https://hooks.example.com/a?b=1", "93.184.216.34", "https://93.184.216.34/a?b=1",
         "hooks.example.com"),
        ("http://u:p@hooks.example.com:8080/x", "93.184.216.34", "http://93.184.216.34:8080/x",
         "hooks.example.com:8080"),
        ("https://hooks.example.com:8443/", "2606:2800::1", "https://[2606:2800::1]:8443/",
         "hooks.example.com:8443"),
    ],
)  # fmt: skip
def test_pinned_requests_keep_the_name_for_host_and_tls(
    url: str, address: str, expected: str, host: str
) -> None:
    request = pinned(url, ipaddress.ip_address(address))
    assert request.url == expected
    assert request.headers == {"host": host}
    tls = {"sni_hostname": "hooks.example.com"} if url.startswith("https") else {}
    assert request.extensions == tls
