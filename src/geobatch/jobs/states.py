"""Job and chunk states, and the transitions between them.

```
             start            scheduler picks it       all chunks committed
 created ──────────▶ queued ─────────────────▶ running ─────────────────▶ succeeded
    │                 │  ▲                       │  │ input unreadable
    │                 │  │ start                 │  └──────────────────────▶ failed
    │            stop ▼  │                  stop ▼
    │                paused ◀────────────────────┘
    │ cancel (from created, queued, running, paused)
    └──────────────────────────────────────────────────────────────────────▶ cancelled
 succeeded | failed | cancelled ── retention deletes the files ──▶ expired
```

The store applies a transition as a conditional ``UPDATE ... WHERE status IN (allowed)`` that
must hit exactly one row, so two racing requests cannot both win.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    CREATED = "created"
    """Accepted with ``start=false``; waits for an explicit start."""
    QUEUED = "queued"
    """Waiting for the scheduler to split its input and dispatch chunks."""
    RUNNING = "running"
    """Chunks are being processed."""
    PAUSED = "paused"
    """Stopped by the user; committed chunks are kept and a start resumes the rest."""
    SUCCEEDED = "succeeded"
    """Every record is in the results or the error report."""
    FAILED = "failed"
    """The input as a whole could not be read (bad records never fail a job)."""
    CANCELLED = "cancelled"
    """Stopped for good by the user; unfinished work is discarded."""
    EXPIRED = "expired"
    """Retention deleted the job's files; only its record remains."""

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)

# target -> the states it may be reached from
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.CREATED, JobStatus.PAUSED}),
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED}),
    JobStatus.PAUSED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELLED: frozenset(
        {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}
    ),
    JobStatus.EXPIRED: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}),
}


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    # ``created`` has no entry: no state may return to it.
    return source in TRANSITIONS.get(target, frozenset())


class ChunkStatus(StrEnum):
    PENDING = "pending"
    """Waiting to be leased."""
    LEASED = "leased"
    """Held by a scheduler until ``lease_expires_at``; an expired lease returns it to pending."""
    DONE = "done"
    """Its result and error parts are written and its counts added to the job."""
