"""What other parts of the server do when a job ends: a part registers a hook once, and the
scheduler runs every hook after it has committed a job's success or failure.

Hooks run on a thread of their own, after the change committed, so a slow or failing hook
neither delays chunks nor changes the job's outcome. A hook is not run again after a crash:
what it writes must be something a later reader can still make on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from geobatch.errors import NotFound

if TYPE_CHECKING:
    from geobatch.jobs.models import Job
    from geobatch.jobs.service import JobService

log = logging.getLogger(__name__)

FinishHook = Callable[["JobService", "Job"], object]
"""Called with the service and the ended job; what it returns is not used."""
_HOOKS: list[FinishHook] = []


def on_finish(hook: FinishHook) -> FinishHook:
    """Register ``hook`` to run for every job that succeeds or fails (usable as a decorator)."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)
    return hook


class FinishRunner:
    """Runs the registered hooks for each finished job, one job at a time, in order."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="geobatch-finish")

    def __call__(self, job_id: str) -> None:
        if _HOOKS:
            self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        try:
            job = self.service.store.get(job_id)
        except NotFound:
            return  # deleted meanwhile
        for hook in list(_HOOKS):
            try:
                hook(self.service, job)
            except Exception:
                log.exception("a finish hook failed for job %s", job_id, extra={"job_id": job_id})

    def close(self) -> None:
        self._pool.shutdown(wait=True)
