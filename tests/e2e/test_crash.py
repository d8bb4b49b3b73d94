"""Crashes mid-job: a killed worker process, a killed server. Nothing is lost or done twice."""

from __future__ import annotations

from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import (
    CsvInput,
    create_job,
    get_job,
    make_csv,
    timestamp,
    wait_for,
    wait_for_status,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHUNK_SIZE = "2000"


@pytest.fixture(scope="module")
def input_200k() -> CsvInput:
    return make_csv(200_000, malformed=9)


@pytest.fixture(scope="module")
def input_100k() -> CsvInput:
    return make_csv(100_000, malformed=9)


def check_outcome(client: httpx.Client, job: dict[str, Any], source: CsvInput) -> None:
    """Succeeded with exact statistics; the results and the error report hold every record
    exactly once (no chunk lost, none counted or written twice, none given up)."""
    assert job["status"] == "succeeded", job
    source.check_statistics(job)
    source.check_outputs(client, job["id"])


def some_chunks_done(job: dict[str, Any]) -> bool:
    return job["status"] == "running" and job["statistics"]["processed_records"] > 0


def test_killed_worker_process(server_factory: type[ServerProcess], input_200k: CsvInput) -> None:
    server = server_factory(GEOBATCH_CHUNK_SIZE=CHUNK_SIZE)
    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id = create_job(client, input_200k.body)["id"]
        before = wait_for(client, job_id, some_chunks_done, what="some chunks to commit")

        workers = server.pool_workers()
        assert workers, f"no pool workers under the server: {server.descendants()}"
        victim = workers[0]
        victim.kill()
        victim.wait(timeout=10)
        assert get_job(client, job_id)["status"] == "running", "the job ended before the kill"
        assert before["statistics"]["processed_records"] < input_200k.total

        job = wait_for_status(client, job_id, "succeeded", timeout=120)
        check_outcome(client, job, input_200k)

        # The server lives on with a fresh pool, and runs the next job.
        assert server.process is not None
        assert server.process.poll() is None
        assert client.get("/readyz").status_code == 200
        assert victim.pid not in {proc.pid for proc in server.pool_workers()}
        again = make_csv(3000, malformed=2, prefix="again")
        second = create_job(client, again.body)["id"]
        check_outcome(client, wait_for_status(client, second, "succeeded"), again)


@pytest.mark.parametrize("phase", ["split", "chunks"])
def test_killed_server_resumes_job(
    server_factory: type[ServerProcess], input_100k: CsvInput, phase: str
) -> None:
    """SIGKILL the server while it splits the input or while chunks run; a new server on the
    same data folder and database finishes the job."""
    server = server_factory(GEOBATCH_CHUNK_SIZE=CHUNK_SIZE)
    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id = create_job(client, input_100k.body)["id"]
        if phase == "split":
            before = wait_for(
                client, job_id, lambda j: j["status"] == "running", interval=0.005, what="running"
            )
        else:
            before = wait_for(client, job_id, some_chunks_done, what="some chunks to commit")
        server.kill()

        if phase == "split":  # total_records stays unknown until the split commits
            assert before["statistics"]["total_records"] is None, "the split was already done"
        else:
            assert 0 < before["statistics"]["processed_records"] < input_100k.total

        server.start()
        assert get_job(client, job_id)["status"] == "running"
        job = wait_for_status(client, job_id, "succeeded", timeout=120)
        check_outcome(client, job, input_100k)
        assert job["started_at"] == before["started_at"], "the restart reset started_at"
        assert timestamp(job["queued_at"]) <= timestamp(job["started_at"])
        assert timestamp(job["started_at"]) <= timestamp(job["finished_at"])


# Which database the server uses has no bearing on its process tree: SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_killed_server_leaves_no_orphan_processes(
    server_factory: type[ServerProcess],
) -> None:
    """When the server dies (SIGKILL, OOM killer), its forkserver and pool workers must not
    live on. Without a supervisor that kills the whole cgroup, each crash-restart would
    otherwise leave idle workers (with the engine modules preloaded) behind for good."""
    server = server_factory()
    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        small = make_csv(100)
        wait_for_status(client, create_job(client, small.body)["id"], "succeeded")
    assert server.pool_workers(), "the job ran but no pool worker exists"
    server.kill()
    # The workers look for their server once a second; a loaded machine may delay them.
    _gone, alive = psutil.wait_procs(server.orphans, timeout=10)
    leftovers = [
        f"{proc.pid} {' '.join(proc.cmdline())[:70]}"
        for proc in alive
        if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    ]
    # (The fixture teardown kills them either way.)
    assert not leftovers, (
        f"{len(leftovers)} processes of the SIGKILLed server still run 10 s later "
        f"(resource tracker, forkserver, pool workers): {leftovers}"
    )
