"""The job store: every read and write of job and chunk state, in SQL.

State lives here and nowhere else; bulk data lives in blob storage. Transitions are
conditional updates that must hit one row, so racing requests and schedulers cannot both win.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from geobatch.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from geobatch.jobs.database import Database
from geobatch.jobs.events import record_progress, record_state
from geobatch.jobs.models import Chunk, ChunkCounts, Job, JobFilter, NewJob
from geobatch.jobs.states import TRANSITIONS, ChunkStatus, JobStatus
from geobatch.jobs.tables import chunks, idempotency_keys, jobs


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class LeasedChunk:
    job_id: str
    seq: int
    attempts: int


class JobStore:
    """SQL operations on jobs and chunks. ``on_change(job_id)`` runs after each committed change."""

    def __init__(self, database: Database, on_change: Callable[[str], None] | None = None) -> None:
        self.db = database
        self._on_change = on_change or (lambda _job_id: None)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.db.write_engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.db.read_engine.connect() as connection:
            yield connection

    # -- jobs -------------------------------------------------------------------------------

    def create(self, new: NewJob, *, status: JobStatus) -> Job:
        now = utcnow()
        values: dict[str, Any] = {
            "id": new.id,
            "tenant": new.tenant,
            "type": new.type,
            "status": status.value,
            "priority": new.priority,
            "bulk_id": new.bulk_id,
            "metadata": new.metadata,
            "options": new.options,
            "input": new.input,
            "created_at": now,
            "updated_at": now,
            "queued_at": now if status is JobStatus.QUEUED else None,
            "extra_statistics": {},
            "callback": new.callback,
        }
        with self._write() as connection:
            connection.execute(jobs.insert().values(**values))
            record_state(connection, new.id, status)
        self._on_change(new.id)
        return self.get(new.id)

    _GET = jobs.select().where(jobs.c.id == sa.bindparam("job_id"))
    _GET_OF_TENANT = _GET.where(jobs.c.tenant == sa.bindparam("tenant"))

    def get(self, job_id: str, *, tenant: str | None = None) -> Job:
        # Statements built once: building the WHERE clause costs more than running it.
        query, params = (
            (self._GET, {"job_id": job_id})
            if tenant is None
            else (self._GET_OF_TENANT, {"job_id": job_id, "tenant": tenant})
        )
        with self.db.lookup_engine.connect() as connection:
            row = connection.execute(query, params).first()
        if row is None:
            raise NotFound(f"No job exists with id {job_id}.")
        return Job.from_row(row)

    def get_many(self, job_ids: Sequence[str], *, tenant: str) -> list[Job]:
        query = jobs.select().where(jobs.c.id.in_(list(job_ids)), jobs.c.tenant == tenant)
        with self._read() as connection:
            found = {row._mapping["id"]: Job.from_row(row) for row in connection.execute(query)}
        return [found[job_id] for job_id in job_ids if job_id in found]

    def transition(
        self, job_id: str, target: JobStatus, *, tenant: str | None = None, **values: Any
    ) -> Job:
        """Move a job to ``target`` if its current state allows it, else ``InvalidTransition``."""
        allowed = [status.value for status in TRANSITIONS.get(target, frozenset())]
        now = utcnow()
        values = {"status": target.value, "updated_at": now, **values}
        if target is JobStatus.QUEUED:
            values.setdefault("queued_at", now)
        if target is JobStatus.RUNNING:
            values["started_at"] = sa.func.coalesce(jobs.c.started_at, now)
        if target.is_terminal and target is not JobStatus.EXPIRED:
            values.setdefault("finished_at", now)
        query = jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(allowed))
        if tenant is not None:
            query = query.where(jobs.c.tenant == tenant)
        with self._write() as connection:
            hit = connection.execute(query.values(**values)).rowcount
            if hit == 1:
                record_state(connection, job_id, target)
        if hit != 1:
            current = self.get(job_id, tenant=tenant)
            raise InvalidTransition(
                f"Job {job_id} is {current.status.value} and cannot become {target.value}.",
                current_status=current.status.value,
            )
        self._on_change(job_id)
        return self.get(job_id)

    def touch(self, job_ids: Sequence[str]) -> None:
        """Mark jobs as worked on, so a long split is not taken for an abandoned one."""
        if not job_ids:
            return
        with self._write() as connection:
            connection.execute(
                jobs.update().where(jobs.c.id.in_(list(job_ids))).values(updated_at=utcnow())
            )

    def claim_split(self, job_id: str, stale_before: datetime) -> bool:
        """Take over the split of a running job nobody has touched since ``stale_before``.

        A compare-and-set on ``updated_at``: of several schedulers that find the same
        abandoned split, exactly one wins and splits again.
        """
        with self._write() as connection:
            hit = connection.execute(
                jobs.update()
                .where(
                    jobs.c.id == job_id,
                    jobs.c.status == JobStatus.RUNNING.value,
                    jobs.c.split_done.is_(False),
                    jobs.c.updated_at < stale_before,
                )
                .values(updated_at=utcnow())
            ).rowcount
        return bool(hit == 1)

    def queue_depth(self) -> dict[str, int]:
        """Chunks by status over running jobs, and jobs waiting to start: the backlog."""
        live = [JobStatus.RUNNING.value, JobStatus.PAUSED.value]
        with self._read() as connection:
            depth: dict[str, int] = dict(
                connection.execute(
                    sa.select(chunks.c.status, sa.func.count())
                    .select_from(chunks.join(jobs, jobs.c.id == chunks.c.job_id))
                    .where(jobs.c.status.in_(live))
                    .group_by(chunks.c.status)
                ).all()
            )
            depth["queued_jobs"] = connection.execute(
                sa.select(sa.func.count()).where(jobs.c.status == JobStatus.QUEUED.value)
            ).scalar_one()
        return depth

    def delete(self, job_id: str) -> None:
        with self._write() as connection:
            connection.execute(chunks.delete().where(chunks.c.job_id == job_id))
            connection.execute(jobs.delete().where(jobs.c.id == job_id))
        self._on_change(job_id)

    def _filtered(self, query: Any, flt: JobFilter) -> Any:
        query = query.where(jobs.c.tenant == flt.tenant)
        if flt.type:
            query = query.where(jobs.c.type == flt.type)
        if flt.status:
            query = query.where(jobs.c.status.in_([s.value for s in flt.status]))
        if flt.bulk_id:
            query = query.where(jobs.c.bulk_id == flt.bulk_id)
        if flt.created_after:
            query = query.where(jobs.c.created_at >= flt.created_after)
        if flt.created_before:
            query = query.where(jobs.c.created_at < flt.created_before)
        for key, value in flt.metadata.items():
            if self.db.is_sqlite:
                # SQLite's JSON paths do not match keys stored escaped (non-ASCII, quotes);
                # json_each yields every key and value decoded.
                pairs = sa.func.json_each(jobs.c.metadata).table_valued("key", "value")
                query = query.where(sa.exists().where(pairs.c.key == key, pairs.c.value == value))
            else:
                query = query.where(jobs.c.metadata[key].as_string() == value)
        return query

    def list_jobs(
        self, flt: JobFilter, *, page_size: int, before_pk: int | None
    ) -> tuple[list[Job], int | None]:
        """Newest first, keyset-paginated on the creation sequence: a job created while a client
        pages through appears above the cursor, so every older job is visited exactly once."""
        query = self._filtered(jobs.select(), flt)
        if before_pk is not None:
            query = query.where(jobs.c.pk < before_pk)
        query = query.order_by(jobs.c.pk.desc()).limit(page_size + 1)
        with self._read() as connection:
            rows = [Job.from_row(row) for row in connection.execute(query)]
        if len(rows) > page_size:
            return rows[:page_size], rows[page_size - 1].pk
        return rows, None

    def summary(self, flt: JobFilter) -> dict[str, dict[str, int]]:
        query = self._filtered(
            sa.select(jobs.c.type, jobs.c.status, sa.func.count()).group_by(
                jobs.c.type, jobs.c.status
            ),
            flt,
        )
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        with self._read() as connection:
            for job_type, status, count in connection.execute(query):
                counts[job_type][status] = count
        return dict(counts)

    def jobs_in(self, statuses: Sequence[JobStatus], *, limit: int = 1000) -> list[Job]:
        query = (
            jobs.select()
            .where(jobs.c.status.in_([s.value for s in statuses]))
            .order_by(jobs.c.priority.desc(), jobs.c.pk)
            .limit(limit)
        )
        with self._read() as connection:
            return [Job.from_row(row) for row in connection.execute(query)]

    def expired_jobs(self, now: datetime, *, limit: int = 100) -> list[Job]:
        terminal = [JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value]
        query = (
            jobs.select().where(jobs.c.status.in_(terminal), jobs.c.expires_at < now).limit(limit)
        )
        with self._read() as connection:
            return [Job.from_row(row) for row in connection.execute(query)]

    # -- idempotency ------------------------------------------------------------------------

    def claim_idempotency_key(self, tenant: str, key: str) -> tuple[str | None, str | None] | None:
        """Reserve ``key`` for a request in flight; if it is taken, return (job_id, request_hash)
        of the earlier request (job_id is None while that request is still in flight)."""
        try:
            with self._write() as connection:
                row = connection.execute(
                    sa.select(idempotency_keys.c.job_id, idempotency_keys.c.request_hash).where(
                        idempotency_keys.c.tenant == tenant, idempotency_keys.c.key == key
                    )
                ).first()
                if row is not None:
                    return row[0], row[1]
                connection.execute(
                    idempotency_keys.insert().values(tenant=tenant, key=key, created_at=utcnow())
                )
        except sa.exc.IntegrityError:
            # A concurrent request inserted the key between our read and insert (PostgreSQL
            # does not serialise them): it won; look again to report what it holds.
            return self.claim_idempotency_key(tenant, key)
        return None

    def complete_idempotency_key(
        self, tenant: str, key: str, job_id: str, request_hash: str
    ) -> None:
        with self._write() as connection:
            connection.execute(
                idempotency_keys.update()
                .where(idempotency_keys.c.tenant == tenant, idempotency_keys.c.key == key)
                .values(job_id=job_id, request_hash=request_hash)
            )

    def release_idempotency_key(self, tenant: str, key: str) -> None:
        with self._write() as connection:
            connection.execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.tenant == tenant,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.job_id.is_(None),
                )
            )

    # -- chunks -----------------------------------------------------------------------------

    def add_chunks(self, job_id: str, sizes: Sequence[int]) -> bool:
        """Record the chunks of a freshly split input and its record count, in one transaction.

        Refused (returns False) when the job was cancelled or deleted while it was split.
        """
        live = [JobStatus.RUNNING.value, JobStatus.PAUSED.value]
        with self._write() as connection:
            hit = connection.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status.in_(live))
                .values(
                    split_done=True,
                    chunk_count=len(sizes),
                    total_records=sum(sizes),
                    updated_at=utcnow(),
                )
            ).rowcount
            if hit != 1:
                connection.rollback()
                return False
            connection.execute(chunks.delete().where(chunks.c.job_id == job_id))
            if sizes:
                connection.execute(
                    chunks.insert(),
                    [
                        {
                            "job_id": job_id,
                            "seq": seq,
                            "status": ChunkStatus.PENDING.value,
                            "records": n,
                        }
                        for seq, n in enumerate(sizes)
                    ],
                )
        self._on_change(job_id)
        return True

    def chunks_of(self, job_id: str) -> list[Chunk]:
        with self._read() as connection:
            rows = connection.execute(
                chunks.select().where(chunks.c.job_id == job_id).order_by(chunks.c.seq)
            )
            return [
                Chunk(
                    job_id=r.job_id,
                    seq=r.seq,
                    status=ChunkStatus(r.status),
                    records=r.records,
                    attempts=r.attempts,
                    lease_owner=r.lease_owner,
                    lease_expires_at=r.lease_expires_at,
                )
                for r in rows
            ]

    def done_seqs(self, job_id: str) -> list[int]:
        query = (
            sa.select(chunks.c.seq)
            .where(chunks.c.job_id == job_id, chunks.c.status == ChunkStatus.DONE.value)
            .order_by(chunks.c.seq)
        )
        with self._read() as connection:
            return list(connection.execute(query).scalars())

    def lease_chunks(self, owner: str, limit: int, lease_seconds: float) -> list[LeasedChunk]:
        """Lease up to ``limit`` pending chunks of running jobs, fairly.

        Higher priority first; among equals, the tenant and then the job with the fewest chunks
        in flight goes next, so one huge job cannot starve the others.
        """
        if limit <= 0:
            return []
        with self._read() as connection:
            running = connection.execute(
                sa.select(jobs.c.id, jobs.c.tenant, jobs.c.priority, jobs.c.pk).where(
                    jobs.c.status == JobStatus.RUNNING.value, jobs.c.split_done.is_(True)
                )
            ).all()
            if not running:
                return []
            in_flight: dict[str, int] = dict(
                connection.execute(
                    sa.select(chunks.c.job_id, sa.func.count())
                    .where(chunks.c.status == ChunkStatus.LEASED.value)
                    .group_by(chunks.c.job_id)
                ).all()
            )
            pending: dict[str, list[int]] = {}
            for job in running:
                seqs = (
                    connection.execute(
                        sa.select(chunks.c.seq)
                        .where(
                            chunks.c.job_id == job.id, chunks.c.status == ChunkStatus.PENDING.value
                        )
                        .order_by(chunks.c.seq)
                        .limit(limit)
                    )
                    .scalars()
                    .all()
                )
                if seqs:
                    pending[job.id] = list(reversed(seqs))
        tenant_load: dict[str, int] = defaultdict(int)
        for job in running:
            tenant_load[job.tenant] += in_flight.get(job.id, 0)
        candidates = [job for job in running if job.id in pending]
        picks: list[tuple[str, int]] = []
        while candidates and len(picks) < limit:
            job = min(
                candidates,
                key=lambda j: (-j.priority, tenant_load[j.tenant], in_flight.get(j.id, 0), j.pk),
            )
            picks.append((job.id, pending[job.id].pop()))
            in_flight[job.id] = in_flight.get(job.id, 0) + 1
            tenant_load[job.tenant] += 1
            if not pending[job.id]:
                candidates.remove(job)
        wanted: dict[str, int] = defaultdict(int)
        for job_id, _seq in picks:
            wanted[job_id] += 1
        expires = utcnow() + timedelta(seconds=lease_seconds)
        taken: dict[str, list[LeasedChunk]] = {}
        with self._write() as connection:
            for job_id, count in wanted.items():
                # The chunks picked above may have gone to another scheduler meanwhile: take
                # that many pending ones now, skipping rows another scheduler is taking
                # (PostgreSQL), so racing schedulers get different chunks instead of colliding.
                seqs = (
                    connection.execute(
                        sa.select(chunks.c.seq)
                        .where(
                            chunks.c.job_id == job_id,
                            chunks.c.status == ChunkStatus.PENDING.value,
                        )
                        .order_by(chunks.c.seq)
                        .limit(count)
                        .with_for_update(skip_locked=True)
                    )
                    .scalars()
                    .all()
                )
                if not seqs:
                    continue
                rows = connection.execute(
                    chunks.update()
                    .where(
                        chunks.c.job_id == job_id,
                        chunks.c.seq.in_(list(seqs)),
                        chunks.c.status == ChunkStatus.PENDING.value,
                    )
                    .values(
                        status=ChunkStatus.LEASED.value,
                        lease_owner=owner,
                        lease_expires_at=expires,
                        attempts=chunks.c.attempts + 1,
                    )
                    .returning(chunks.c.seq, chunks.c.attempts)
                ).all()
                taken[job_id] = [
                    LeasedChunk(job_id=job_id, seq=seq, attempts=attempts)
                    for seq, attempts in sorted(rows, reverse=True)
                ]
        # In the fair order picked above: each pick of a job gets that job's next chunk.
        return [taken[job_id].pop() for job_id, _seq in picks if taken.get(job_id)]

    def renew_leases(
        self, owner: str, keys: Sequence[tuple[str, int]], lease_seconds: float
    ) -> None:
        if not keys:
            return
        expires = utcnow() + timedelta(seconds=lease_seconds)
        with self._write() as connection:
            for job_id, seq in keys:
                connection.execute(
                    chunks.update()
                    .where(
                        chunks.c.job_id == job_id,
                        chunks.c.seq == seq,
                        chunks.c.lease_owner == owner,
                        chunks.c.status == ChunkStatus.LEASED.value,
                    )
                    .values(lease_expires_at=expires)
                )

    def release_chunk(self, job_id: str, seq: int, owner: str) -> None:
        """Give a leased chunk back (its worker died); it runs again."""
        with self._write() as connection:
            connection.execute(
                chunks.update()
                .where(
                    chunks.c.job_id == job_id,
                    chunks.c.seq == seq,
                    chunks.c.lease_owner == owner,
                    chunks.c.status == ChunkStatus.LEASED.value,
                )
                .values(status=ChunkStatus.PENDING.value, lease_owner=None, lease_expires_at=None)
            )

    def reclaim_expired_leases(self) -> int:
        """Return chunks whose lease ran out (their scheduler or worker is gone) to pending."""
        with self._write() as connection:
            return connection.execute(
                chunks.update()
                .where(
                    chunks.c.status == ChunkStatus.LEASED.value,
                    chunks.c.lease_expires_at < utcnow(),
                )
                .values(status=ChunkStatus.PENDING.value, lease_owner=None, lease_expires_at=None)
            ).rowcount

    def commit_chunk(self, job_id: str, seq: int, owner: str, counts: ChunkCounts) -> bool:
        """Mark a chunk done and add its counts to the job, atomically.

        Refused (returns False) when the lease was lost or the job was cancelled meanwhile, so a
        chunk's counts are added exactly once however often it ran.
        """
        live = [JobStatus.RUNNING.value, JobStatus.PAUSED.value]
        now = utcnow()
        with self._write() as connection:
            job_row = connection.execute(
                sa.select(jobs.c.extra_statistics)
                .where(jobs.c.id == job_id, jobs.c.status.in_(live))
                .with_for_update()
            ).first()
            if job_row is None:
                return False
            hit = connection.execute(
                chunks.update()
                .where(
                    chunks.c.job_id == job_id,
                    chunks.c.seq == seq,
                    chunks.c.lease_owner == owner,
                    chunks.c.status == ChunkStatus.LEASED.value,
                )
                .values(
                    status=ChunkStatus.DONE.value,
                    committed_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            ).rowcount
            if hit != 1:
                connection.rollback()
                return False
            extra = dict(job_row[0] or {})
            for name, value in counts.extra.items():
                extra[name] = extra.get(name, 0) + value
            values: dict[str, Any] = {
                "processed_records": jobs.c.processed_records + counts.processed,
                "successful_records": jobs.c.successful_records + counts.successful,
                "failed_records": jobs.c.failed_records + counts.failed,
                "no_match_records": jobs.c.no_match_records + counts.no_match,
                "processing_seconds": jobs.c.processing_seconds + counts.seconds,
                "extra_statistics": extra,
                "updated_at": now,
            }
            if counts.last_record_id is not None:
                # The last record of the furthest chunk done, whatever order chunks finish in.
                furthest = connection.execute(
                    sa.select(sa.func.max(chunks.c.seq)).where(
                        chunks.c.job_id == job_id, chunks.c.status == ChunkStatus.DONE.value
                    )
                ).scalar_one()
                if furthest == seq:
                    values["last_record_id"] = counts.last_record_id
            connection.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
            record_progress(connection, job_id, counts.processed)
        self._on_change(job_id)
        return True

    def chunk_progress(self, job_id: str) -> tuple[int, int]:
        """(done, total) chunks of a job."""
        with self._read() as connection:
            rows: dict[str, int] = dict(
                connection.execute(
                    sa.select(chunks.c.status, sa.func.count())
                    .where(chunks.c.job_id == job_id)
                    .group_by(chunks.c.status)
                ).all()
            )
        return rows.get(ChunkStatus.DONE.value, 0), sum(rows.values())


def check_page_size(page_size: int) -> int:
    if not 1 <= page_size <= 1000:
        raise InvalidInput("page_size must be between 1 and 1000.", field="page_size")
    return page_size


__all__ = ["Conflict", "JobStore", "LeasedChunk", "check_page_size", "utcnow"]
