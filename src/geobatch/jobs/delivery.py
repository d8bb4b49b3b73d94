"""The delivery loop: sends due outbox rows as signed POSTs and records every attempt.

A row is claimed with a conditional update that sets a lease (longer than a request can take),
so two schedulers, or a scheduler and its restarted self, never send the same row at once; a
row whose sender died is claimed again when its lease runs out. Success (2xx) is committed
with the attempt, after which the row is never sent again. Receivers should still use
``webhook-id`` to drop the rare repeat of a send whose success could not be recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import sqlalchemy as sa

from geobatch import __version__
from geobatch.config import Settings
from geobatch.errors import ForbiddenUrl
from geobatch.jobs.callbacks import MAX_DELAY_SECONDS, RetryPolicy, signed_headers
from geobatch.jobs.database import Database
from geobatch.jobs.tables import delivery_attempts, webhook_deliveries
from geobatch.jobs.urls import check_and_pin

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024
"""Of a receiver's answer, at most this much is read (and 500 characters kept)."""
POLL_SECONDS = 0.1
"""With a backlog and every sender busy, look again this often (a freed sender wakes sooner)."""
IDLE_SECONDS = 1.0
"""Without a backlog, look at most this long after the last look: job changes and retries
this loop knows of wake it sooner; this bounds how late it sees rows of other processes."""
SENDERS = 8
LEASE_MARGIN_SECONDS = 30.0
PURGE_EVERY_SECONDS = 3600.0


@dataclass(frozen=True, kw_only=True)
class SendResult:
    status_code: int | None
    duration_ms: float
    error: str | None
    retry_after: float | None = None
    response_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_DELAY_SECONDS)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = parsedate_to_datetime(value)
        return min(max(0.0, (when - now).total_seconds()), MAX_DELAY_SECONDS)
    return None


def send(
    http: httpx.Client, settings: Settings, callback: dict[str, Any], message_id: str, body: str
) -> SendResult:
    """One signed POST (or GET without a body, for receivers told everything in the URL), with
    the URL checked again first (DNS can change since creation) and the request sent to the
    address that passed the check.

    Redirects are not followed, the answer is read up to ``MAX_RESPONSE_BYTES``, and the whole
    exchange is bounded by the delivery timeout.
    """
    started = time.perf_counter()

    def elapsed_ms() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        request = check_and_pin(callback["url"], settings.url_allowlist, what="callback URL")
    except ForbiddenUrl as exc:
        return SendResult(status_code=None, duration_ms=elapsed_ms(), error=exc.detail)
    now = datetime.now(UTC)
    headers = signed_headers(callback, message_id, now, body)
    method = callback.get("method", "POST")
    if method == "GET":
        del headers["content-type"]
    deadline = started + settings.webhook_timeout_seconds
    try:
        with http.stream(
            method,
            request.url,
            content=body.encode() if method != "GET" else None,
            headers={**headers, **request.headers},
            extensions=request.extensions,
        ) as reply:
            received = bytearray()
            for piece in reply.iter_bytes():
                received += piece
                if len(received) >= MAX_RESPONSE_BYTES or time.perf_counter() > deadline:
                    break
            retry_after = None
            if reply.status_code in (429, 503):
                retry_after = _retry_after(reply.headers.get("retry-after"), now)
            return SendResult(
                status_code=reply.status_code,
                duration_ms=elapsed_ms(),
                error=None if 200 <= reply.status_code < 300 else f"HTTP {reply.status_code}",
                retry_after=retry_after,
                response_excerpt=received[:500].decode(errors="replace"),
            )
    except httpx.TimeoutException:
        error = f"no answer within {settings.webhook_timeout_seconds:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return SendResult(status_code=None, duration_ms=elapsed_ms(), error=error)


def http_client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": f"geobatch-webhooks/{__version__}"},
        limits=httpx.Limits(max_connections=SENDERS * 2),
    )


@dataclass(frozen=True, kw_only=True)
class _Claimed:
    id: int
    job_id: str
    event_type: str
    message_id: str
    callback: dict[str, Any]
    body: str
    attempt: int


class Deliverer:
    """Runs the outbox: a thread that claims due rows and a small pool that sends them."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.db = database
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._freed = threading.Event()
        self._due = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None

    @property
    def lease_seconds(self) -> float:
        """Long enough for a sender to work through a full claim of one job's rows."""
        return self.settings.webhook_timeout_seconds * SENDERS + LEASE_MARGIN_SECONDS

    def start(self) -> None:
        self._http = http_client(self.settings)
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="geobatch-webhook")
        self._thread = threading.Thread(target=self._run, name="geobatch-deliveries", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._http is not None:
            self._http.close()

    def wake(self, _job_id: str = "") -> None:
        """Look for due rows now: a job changed, so its events may have queued some."""
        self._due.set()

    def _run(self) -> None:
        next_purge = 0.0
        while not self._stopping.is_set():
            self._due.clear()
            try:
                if time.monotonic() >= next_purge:
                    self.purge()
                    next_purge = time.monotonic() + PURGE_EVERY_SECONDS
                busy = self.tick() or self._senders_busy()
                idle = 0.0 if busy else self.seconds_to_next_due()
            except Exception:
                log.exception("webhook delivery round failed")
                self._stopping.wait(1)
                continue
            # With a backlog, claim more as soon as a sender is free; otherwise sleep until
            # the next row is due or a job changes, rather than polling the outbox.
            if busy:
                self._freed.wait(POLL_SECONDS)
                self._freed.clear()
            else:
                self._due.wait(idle)

    def _senders_busy(self) -> bool:
        with self._lock:
            return self._in_flight >= SENDERS

    def seconds_to_next_due(self) -> float:
        """How long until the first pending row's retry or a sending row's lease runs out,
        at most :data:`IDLE_SECONDS`."""
        d = webhook_deliveries
        soonest = sa.select(
            sa.func.min(
                sa.case(
                    (d.c.status == "pending", d.c.next_attempt_at),
                    else_=d.c.lease_expires_at,
                )
            )
        ).where(d.c.status.in_(["pending", "sending"]))
        with self.db.read_engine.connect() as connection:
            due: datetime | None = connection.execute(soonest).scalar()
        if due is None:
            return IDLE_SECONDS
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        wait = (due - datetime.now(UTC)).total_seconds()
        return min(max(wait, 0.0), IDLE_SECONDS)

    def tick(self) -> bool:
        """Claim what is due, as far as there are free senders, and hand it to them; True
        when rows were claimed (there may be more)."""
        assert self._pool is not None
        with self._lock:
            room = SENDERS - self._in_flight
        by_job: dict[str, list[_Claimed]] = {}
        for claimed in self.claim(room):
            by_job.setdefault(claimed.job_id, []).append(claimed)
        for rows in by_job.values():
            with self._lock:
                self._in_flight += len(rows)
            self._pool.submit(self._deliver, rows)
        return bool(by_job)

    def _deliver(self, rows: list[_Claimed]) -> None:
        """Send one job's due rows in event order (order across retries is not kept)."""
        assert self._http is not None
        for claimed in rows:
            try:
                if self._stopping.is_set():
                    self.release(claimed)
                    continue
                result = send(
                    self._http, self.settings, claimed.callback, claimed.message_id, claimed.body
                )
                self.record(claimed, result)
            except Exception:
                log.exception("delivering %s failed", claimed.message_id)
            finally:
                with self._lock:
                    self._in_flight -= 1
                self._freed.set()
                self._due.set()

    def release(self, claimed: _Claimed) -> None:
        """Hand an unsent row back (the loop is stopping), to be sent without waiting for
        its lease to run out."""
        d = webhook_deliveries
        with self.db.write_engine.begin() as connection:
            connection.execute(
                d.update()
                .where(d.c.id == claimed.id, d.c.lease_owner == self.owner, d.c.status == "sending")
                .values(status="pending", lease_owner=None, lease_expires_at=None)
            )

    def purge(self) -> int:
        """Forget settled deliveries (and their attempts) once results would have expired."""
        d = webhook_deliveries
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.retention_days)
        with self.db.write_engine.begin() as connection:
            old = sa.select(d.c.id).where(
                d.c.status.in_(["delivered", "failed"]), d.c.created_at < cutoff
            )
            connection.execute(
                delivery_attempts.delete().where(delivery_attempts.c.delivery_id.in_(old))
            )
            return connection.execute(d.delete().where(d.c.id.in_(old))).rowcount

    def claim(self, limit: int) -> list[_Claimed]:
        """Lease up to ``limit`` due rows: pending ones whose time has come, and rows whose
        sender's lease ran out."""
        if limit <= 0:
            return []
        d = webhook_deliveries
        now = datetime.now(UTC)
        due = sa.or_(
            sa.and_(d.c.status == "pending", d.c.next_attempt_at <= now),
            sa.and_(d.c.status == "sending", d.c.lease_expires_at < now),
        )
        with self.db.read_engine.connect() as connection:
            ids = list(
                connection.execute(
                    sa.select(d.c.id).where(due).order_by(d.c.id).limit(limit)
                ).scalars()
            )
        if not ids:
            return []
        claimed = []
        expires = now + timedelta(seconds=self.lease_seconds)
        with self.db.write_engine.begin() as connection:
            for row_id in ids:
                row = connection.execute(
                    d.update()
                    .where(d.c.id == row_id, due)
                    .values(status="sending", lease_owner=self.owner, lease_expires_at=expires)
                    .returning(
                        d.c.id,
                        d.c.job_id,
                        d.c.event_type,
                        d.c.message_id,
                        d.c.callback,
                        d.c.body,
                        d.c.attempts,
                    )
                ).first()
                if row is not None:
                    claimed.append(
                        _Claimed(
                            id=row.id,
                            job_id=row.job_id,
                            event_type=row.event_type,
                            message_id=row.message_id,
                            callback=row.callback,
                            body=row.body,
                            attempt=row.attempts + 1,
                        )
                    )
        return claimed

    def record(self, claimed: _Claimed, result: SendResult) -> None:
        """Log the attempt and settle the row: delivered, retried later, or given up."""
        d = webhook_deliveries
        now = datetime.now(UTC)
        policy = RetryPolicy.model_validate(claimed.callback.get("retry_policy", {}))
        next_at: datetime | None = None
        values: dict[str, Any] = {
            "attempts": claimed.attempt,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if result.ok:
            values.update(status="delivered", delivered_at=now)
        elif claimed.attempt >= policy.max_attempts:
            values.update(status="failed")
        else:
            delay = result.retry_after
            if delay is None:
                delay = policy.delay(claimed.attempt)
            next_at = now + timedelta(seconds=delay)
            values.update(status="pending", next_attempt_at=next_at)
        with self.db.write_engine.begin() as connection:
            hit = connection.execute(
                d.update()
                .where(d.c.id == claimed.id, d.c.lease_owner == self.owner, d.c.status == "sending")
                .values(**values)
            ).rowcount
            if hit != 1:
                return  # the lease ran out and another sender took the row over
            connection.execute(
                delivery_attempts.insert().values(
                    delivery_id=claimed.id,
                    job_id=claimed.job_id,
                    event_type=claimed.event_type,
                    message_id=claimed.message_id,
                    attempt=claimed.attempt,
                    attempted_at=now - timedelta(milliseconds=result.duration_ms),
                    status_code=result.status_code,
                    delivered_at=now if result.ok else None,
                    duration_ms=result.duration_ms,
                    error=result.error,
                    next_attempt_at=next_at,
                )
            )


def send_test(settings: Settings, job_id: str, callback: dict[str, Any]) -> tuple[str, SendResult]:
    """Send a signed ``job.test`` event now, outside the outbox, so a user can check their
    receiver; nothing is retried or logged. Returns the webhook id and the outcome."""
    now = datetime.now(UTC)
    message_id = f"msg_test_{uuid.uuid4().hex}"
    body = {
        "type": "job.test",
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": {"job_id": job_id},
    }
    with http_client(settings) as http:
        body_text = json.dumps(body, separators=(",", ":"))
        return message_id, send(http, settings, callback, message_id, body_text)


def enqueue(
    database: Database, job_id: str, event_type: str, callback: dict[str, Any], body: str
) -> str:
    """Queue one more delivery for a job, outside any state change (a stored callback's
    retries and attempt log apply to it as to any other); returns its webhook id."""
    now = datetime.now(UTC)
    message_id = f"msg_{uuid.uuid4().hex}"
    with database.write_engine.begin() as connection:
        connection.execute(
            webhook_deliveries.insert().values(
                job_id=job_id,
                event_type=event_type,
                message_id=message_id,
                callback=callback,
                body=body,
                status="pending",
                next_attempt_at=now,
                created_at=now,
            )
        )
    return message_id


def attempts_of(database: Database, job_id: str) -> list[dict[str, Any]]:
    """Every delivery attempt for a job's events, oldest first."""
    a = delivery_attempts
    query = (
        sa.select(
            a.c.event_type,
            a.c.message_id,
            a.c.attempt,
            a.c.attempted_at,
            a.c.status_code,
            a.c.delivered_at,
            a.c.duration_ms,
            a.c.error,
            a.c.next_attempt_at,
        )
        .where(a.c.job_id == job_id)
        .order_by(a.c.id)
    )
    with database.read_engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]
