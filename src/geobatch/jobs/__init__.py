"""The job domain: states and transitions, the store, chunking, scheduling and execution."""

from geobatch.jobs.models import Job, JobFilter, JobStatistics
from geobatch.jobs.runtime import Platform, open_platform
from geobatch.jobs.service import InputSource, JobRequest, JobService, ResultStream, progress
from geobatch.jobs.states import TERMINAL, JobStatus
from geobatch.jobs.types import JOB_TYPES, type_statistics

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
