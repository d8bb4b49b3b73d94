"""The job domain: states and transitions, the store, chunking, scheduling and execution.

Names are imported on first use, so a worker process that only runs chunks
(``geobatch.jobs.tasks``) does not load the store, the scheduler and SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geobatch.jobs.models import Job, JobFilter, JobStatistics
    from geobatch.jobs.runtime import Platform, open_platform
    from geobatch.jobs.service import (
        InputSource,
        JobRequest,
        JobService,
        ResultStream,
        progress,
    )
    from geobatch.jobs.states import TERMINAL, JobStatus
    from geobatch.jobs.types import JOB_TYPES, type_statistics

_LAZY = {
    "Job": "geobatch.jobs.models",
    "JobFilter": "geobatch.jobs.models",
    "JobStatistics": "geobatch.jobs.models",
    "Platform": "geobatch.jobs.runtime",
    "open_platform": "geobatch.jobs.runtime",
    "InputSource": "geobatch.jobs.service",
    "JobRequest": "geobatch.jobs.service",
    "JobService": "geobatch.jobs.service",
    "ResultStream": "geobatch.jobs.service",
    "progress": "geobatch.jobs.service",
    "TERMINAL": "geobatch.jobs.states",
    "JobStatus": "geobatch.jobs.states",
    "JOB_TYPES": "geobatch.jobs.types",
    "type_statistics": "geobatch.jobs.types",
}

__all__ = [
    "JOB_TYPES",
    "TERMINAL",
    "InputSource",
    "Job",
    "JobFilter",
    "JobRequest",
    "JobService",
    "JobStatistics",
    "JobStatus",
    "Platform",
    "ResultStream",
    "open_platform",
    "progress",
    "type_statistics",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
