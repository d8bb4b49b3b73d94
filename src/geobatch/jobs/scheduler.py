"""The scheduler: splits started jobs into chunks, leases chunks to the executor, commits them.

It runs on its own thread beside the API (or alone, for scale-out). All state is in the job
store, so a restarted scheduler picks up where the old one stopped: chunks it had leased come
back when their leases expire, and a split that never finished is done again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from geobatch.config import Settings
from geobatch.errors import GeobatchError, InvalidTransition, NotFound
from geobatch.io.storage import BlobStorage
from geobatch.jobs import layout
from geobatch.jobs.delivery import Deliverer
from geobatch.jobs.executor import make_executor
from geobatch.jobs.models import ChunkCounts, Job
from geobatch.jobs.states import JobStatus
from geobatch.jobs.store import JobStore, LeasedChunk, utcnow
from geobatch.jobs.tasks import (
    ChunkTask,
    SplitOutcome,
    SplitTask,
    input_limits,
    process_chunk,
    split_input,
)
from geobatch.jobs.types import job_type

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5
MAX_SPLIT_ATTEMPTS = 3


CHUNK_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class SchedulerStats:
    """Counters of this scheduler since it started, for ``/metrics``."""

    lease_expiries: int = 0
    chunk_count: int = 0
    chunk_seconds_sum: float = 0.0
    chunk_seconds_buckets: list[int] = field(
        default_factory=lambda: [0] * len(CHUNK_SECONDS_BUCKETS)
    )

    def observe_chunk(self, seconds: float) -> None:
        self.chunk_count += 1
        self.chunk_seconds_sum += seconds
        for index, bound in enumerate(CHUNK_SECONDS_BUCKETS):
            if seconds <= bound:
                self.chunk_seconds_buckets[index] += 1


class Scheduler:
    def __init__(self, settings: Settings, store: JobStore, storage: BlobStorage) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.executor: Executor | None = None
        self._chunks: dict[Future[ChunkCounts], LeasedChunk] = {}
        self._splits: dict[Future[SplitOutcome], str] = {}
        self._split_attempts: dict[str, int] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_housekeeping = 0.0
        self.deliverer = Deliverer(settings, store.db)
        self.stats = SchedulerStats()
        self.on_finish: Callable[[str], None] = lambda job_id: None
        """Called with the id of each job this scheduler saw succeed or fail."""

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.executor = make_executor(self.settings)
        self._thread = threading.Thread(target=self._run, name="geobatch-scheduler", daemon=True)
        self._thread.start()
        self.deliverer.start()

    def stop(self) -> None:
        self.deliverer.stop()
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Look for work now rather than at the next poll (a job was just started)."""
        self._wake.set()

    @property
    def capacity(self) -> int:
        return 2 * self.settings.worker_count

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed")
                time.sleep(1)
            self._idle()

    def _idle(self) -> None:
        """Sleep until work finishes, a job starts or housekeeping is due.

        Each submitted future wakes the loop as it ends, so a busy scheduler does not poll
        the store between chunks; ``scheduler_tick_seconds`` bounds the wait while work is
        in flight, ``IDLE_POLL_SECONDS`` when there is none.
        """
        busy = bool(self._chunks or self._splits)
        limit = self.settings.scheduler_tick_seconds if busy else IDLE_POLL_SECONDS
        due = self._next_housekeeping - time.monotonic()
        self._wake.wait(max(0.0, min(limit, due)))
        self._wake.clear()

    def _on_done(self, _future: Future[Any]) -> None:
        self._wake.set()

    def tick(self) -> None:
        """One round: housekeeping when due, collect finished work, start jobs, dispatch chunks."""
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._housekeeping()
            self._next_housekeeping = now + min(1.0, self.settings.lease_seconds / 3)
        self._collect()
        self._start_queued()
        self._dispatch()

    # -- housekeeping -----------------------------------------------------------------------

    def _housekeeping(self) -> None:
        in_flight = [(c.job_id, c.seq) for c in self._chunks.values()]
        self.store.renew_leases(self.owner, in_flight, self.settings.lease_seconds)
        self.store.touch(list(self._splits.values()))
        expired = self.store.reclaim_expired_leases()
        if expired:
            self.stats.lease_expiries += expired
            log.info("re-queued %d chunks whose leases expired", expired)
        stale = utcnow() - timedelta(seconds=self.settings.lease_seconds)
        for job in self.store.jobs_in([JobStatus.RUNNING]):
            if (
                not job.split_done
                and job.id not in self._splits.values()
                and job.updated_at < stale
                and self.store.claim_split(job.id, stale)
            ):
                log.info(
                    "job %s: its split was interrupted; splitting again",
                    job.id,
                    extra={"job_id": job.id},
                )
                self._submit_split(job)
        for job in self.store.expired_jobs(utcnow()):
            self.storage.delete_prefix(layout.job_prefix(job.id))
            try:
                self.store.transition(job.id, JobStatus.EXPIRED)
            except (InvalidTransition, NotFound):
                continue

    # -- starting jobs ----------------------------------------------------------------------

    def _start_queued(self) -> None:
        for job in self.store.jobs_in([JobStatus.QUEUED]):
            try:
                job = self.store.transition(job.id, JobStatus.RUNNING)
            except (InvalidTransition, NotFound):
                continue  # paused, cancelled or deleted meanwhile
            if job.split_done:
                self._finish_if_done(job.id)
            else:
                self._submit_split(job)

    def _submit_split(self, job: Job) -> None:
        assert self.executor is not None
        self.store.touch([job.id])
        task = SplitTask(
            job_id=job.id,
            job_type=job.type,
            options=job.options,
            input=job.input,
            storage_url=self.settings.storage_url,
            chunk_size=self.settings.chunk_size * job_type(job.type).chunk_scale,
            url_allowlist=tuple(self.settings.url_allowlist),
            max_download_bytes=self.settings.max_upload_bytes,
            input_limits=input_limits(self.settings),
        )
        future = self.executor.submit(split_input, task)
        self._splits[future] = job.id
        future.add_done_callback(self._on_done)

    # -- dispatching chunks -----------------------------------------------------------------

    def _dispatch(self) -> None:
        assert self.executor is not None
        room = self.capacity - len(self._chunks)
        if room <= 0:
            return
        jobs: dict[str, Job] = {}
        for leased in self.store.lease_chunks(self.owner, room, self.settings.lease_seconds):
            job = jobs.get(leased.job_id) or self.store.get(leased.job_id)
            jobs[job.id] = job
            exhausted = leased.attempts > self.settings.max_chunk_attempts
            task = ChunkTask(
                job_id=job.id,
                seq=leased.seq,
                job_type=job.type,
                options=job.options,
                storage_url=self.settings.storage_url,
                releases_dir=str(self.settings.releases_path),
                releases_url=self.settings.releases_url,
                give_up_after=leased.attempts - 1 if exhausted else None,
            )
            try:
                future = self.executor.submit(process_chunk, task)
            except BrokenProcessPool:
                self.store.release_chunk(leased.job_id, leased.seq, self.owner)
                self._replace_executor()
                return
            self._chunks[future] = leased
            future.add_done_callback(self._on_done)

    # -- collecting results -----------------------------------------------------------------

    def _collect(self) -> None:
        broken = False
        retry_splits: list[str] = []
        for split in [f for f in self._splits if f.done()]:
            job_id = self._splits.pop(split)
            try:
                outcome = split.result()
            except BrokenProcessPool:
                broken = True
                retry_splits.append(job_id)
                continue
            except Exception as exc:
                log.exception("job %s: split failed", job_id, extra={"job_id": job_id})
                self._fail(job_id, "internal_error", f"splitting the input failed: {exc}")
                continue
            self._split_done(job_id, outcome)
        for future in [f for f in self._chunks if f.done()]:
            leased = self._chunks.pop(future)
            try:
                counts = future.result()
            except BrokenProcessPool:
                broken = True
                self.store.release_chunk(leased.job_id, leased.seq, self.owner)
                self._discard_work(leased.job_id)
                continue
            except Exception:
                log.exception(
                    "job %s chunk %d failed",
                    leased.job_id,
                    leased.seq,
                    extra={"job_id": leased.job_id},
                )
                self.store.release_chunk(leased.job_id, leased.seq, self.owner)
                # A chunk fails when a cancel deletes the files it is writing: what it wrote
                # before that must go too.
                self._discard_work(leased.job_id)
                continue
            if self.store.commit_chunk(leased.job_id, leased.seq, self.owner, counts):
                self.stats.observe_chunk(counts.seconds)
                self._finish_if_done(leased.job_id)
            else:
                self._discard_work(leased.job_id)
        if broken:
            self._replace_executor()
        for job_id in retry_splits:
            self._retry_split(job_id)

    def _retry_split(self, job_id: str) -> None:
        attempts = self._split_attempts.get(job_id, 0) + 1
        self._split_attempts[job_id] = attempts
        if attempts >= MAX_SPLIT_ATTEMPTS:
            self._fail(job_id, "internal_error", "the worker splitting the input died repeatedly")
            return
        try:
            job = self.store.get(job_id)
        except NotFound:
            return
        if job.status is JobStatus.RUNNING and not job.split_done:
            self._submit_split(job)

    def _split_done(self, job_id: str, outcome: SplitOutcome) -> None:
        self._split_attempts.pop(job_id, None)
        if outcome.error_code is not None:
            self._fail(job_id, outcome.error_code, outcome.error_message or outcome.error_code)
            return
        try:
            added = self.store.add_chunks(job_id, outcome.sizes)
        except GeobatchError:
            added = False
        if added:
            self._finish_if_done(job_id)
        else:  # cancelled or deleted while it was split: drop the chunk parts it wrote
            self._discard_work(job_id)

    def _fail(self, job_id: str, code: str, message: str) -> None:
        with contextlib.suppress(InvalidTransition, NotFound):
            self.store.transition(
                job_id,
                JobStatus.FAILED,
                error={"code": code, "message": message},
                expires_at=utcnow() + timedelta(days=self.settings.retention_days),
            )
            self.on_finish(job_id)

    def _finish_if_done(self, job_id: str) -> None:
        done, total = self.store.chunk_progress(job_id)
        if done < total:
            return
        try:
            job = self.store.get(job_id)
            if job.status is JobStatus.RUNNING and job.split_done:
                self.store.transition(
                    job_id,
                    JobStatus.SUCCEEDED,
                    expires_at=utcnow() + timedelta(days=self.settings.retention_days),
                )
                self.on_finish(job_id)
        except (InvalidTransition, NotFound):
            pass

    def _discard_work(self, job_id: str) -> None:
        """Delete what workers wrote for a job that was cancelled (work files) or deleted (all).

        The API deletes these too, but a worker still running may have written after it did.
        """
        try:
            job = self.store.get(job_id)
        except NotFound:
            self.storage.delete_prefix(layout.job_prefix(job_id))
            return
        if job.status is JobStatus.CANCELLED:
            for prefix in layout.work_prefixes(job_id):
                self.storage.delete_prefix(prefix)

    def _replace_executor(self) -> None:
        """A worker died (killed, out of memory): the pool is unusable; start a fresh one."""
        log.warning("executor broke; starting a new one")
        old = self.executor
        for future, leased in list(self._chunks.items()):
            if not future.done():
                continue
            self._chunks.pop(future)
            self.store.release_chunk(leased.job_id, leased.seq, self.owner)
        self.executor = make_executor(self.settings)
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
