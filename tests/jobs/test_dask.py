"""Scale-out: the same jobs run on a real Dask cluster instead of the local process pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.jobs.test_scheduler import create_job, csv_bytes, make_rows, results, wait_for_status

from geobatch.config import Settings
from geobatch.jobs.executor import DaskExecutor
from geobatch.jobs.runtime import open_platform
from geobatch.jobs.states import JobStatus

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two worker processes, one thread each: like two machines."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local.scheduler_address


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_job_runs_on_dask_workers(settings: Settings, cluster: str) -> None:
    rows = make_rows(5_000)
    platform = open_platform(settings.model_copy(update={"executor": cluster}))
    try:
        assert isinstance(platform.scheduler.executor, DaskExecutor)  # type: ignore[union-attr]
        job = create_job(platform, csv_bytes(rows))
        done = wait_for_status(platform, job.id, JobStatus.SUCCEEDED)
        found = results(platform, job.id)
        ran_on = platform.scheduler.executor.client.run(  # type: ignore[union-attr]
            lambda: __import__("os").getpid()
        )
    finally:
        platform.close()
    invalid = sum(1 for row in rows if row.reason is not None)
    assert done.statistics.processed_records == len(rows)
    assert done.statistics.extra == {"invalid_records": invalid}
    assert [row["recId"] for row in found] == [row.rec_id for row in rows]
    assert [row["reason"] for row in found] == [row.reason for row in rows]
    assert len(set(ran_on.values())) == 2
