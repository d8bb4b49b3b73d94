"""Jobs with their input, chunk parts, results and error report on S3 (moto's server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.jobs.test_scheduler import (
    check_results,
    check_statistics,
    create_job,
    csv_bytes,
    make_rows,
    results,
    wait_for_status,
    work_files,
)

from geobatch.config import Settings
from geobatch.jobs import layout
from geobatch.jobs.runtime import Platform, open_platform
from geobatch.jobs.states import JobStatus


@pytest.fixture
def platform(settings: Settings, s3_url: str) -> Iterator[Platform]:
    opened = open_platform(settings.model_copy(update={"storage_url": s3_url}))
    yield opened
    opened.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_job_runs_with_every_file_on_s3(platform: Platform) -> None:
    rows = make_rows(4_500)
    broken = "r-broken,1.5"  # one field short: goes to the error report
    job = create_job(platform, csv_bytes(rows, extra_lines={100: broken}))

    done = wait_for_status(platform, job.id, JobStatus.SUCCEEDED)

    check_statistics(done, rows, total=len(rows) + 1, failed=1)
    check_results(results(platform, job.id), rows)
    assert [e["recId"] for e in results(platform, job.id, errors=True)] == ["r-broken"]
    stored = platform.storage.list(layout.job_prefix(job.id))
    assert layout.input_key(job.id) in stored
    assert sum("/results/" in key for key in stored) == done.chunk_count == 5
    assert work_files(platform, job.id)  # chunk parts and result parts, all in the bucket
    assert platform.storage.url.startswith("s3://")
