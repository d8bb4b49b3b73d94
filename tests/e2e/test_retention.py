"""Retention: a job that has ended keeps its files for GEOBATCH_RETENTION_DAYS, then expires.

The shared server of this module keeps results for 0.00002 days (1.7 seconds).
"""

from __future__ import annotations

import gzip
from datetime import timedelta

import httpx
import pytest

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import (
    assert_problem,
    create_job,
    get_job,
    make_csv,
    timestamp,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

RETENTION = timedelta(days=0.00002)
SHARED_SERVER_ENV = {"GEOBATCH_RETENTION_DAYS": "0.00002"}


def job_folder_exists(server: ServerProcess, job_id: str) -> bool:
    return (server.data_dir / "storage" / "jobs" / job_id).exists()


def check_expires_at(job: dict[str, str]) -> None:
    assert job["expires_at"] is not None, f"a {job['status']} job has no expires_at: {job}"
    kept = timestamp(job["expires_at"]) - timestamp(job["finished_at"])
    assert abs(kept - RETENTION) < timedelta(seconds=1), kept


def test_succeeded_job_expires(shared_server: ServerProcess, shared_client: httpx.Client) -> None:
    job_id = create_job(shared_client, make_csv(100).body)["id"]
    job = wait_for_status(shared_client, job_id, "succeeded")
    check_expires_at(job)
    assert job["output"]["expires_at"] == job["expires_at"]
    expired = wait_for_status(shared_client, job_id, "expired", timeout=15)
    assert expired["output"] is None
    assert expired["finished_at"] == job["finished_at"]
    assert_problem(shared_client.get(f"/v1/jobs/{job_id}/results"), 410, slug="gone")
    assert_problem(shared_client.get(f"/v1/jobs/{job_id}/errors"), 410, slug="gone")
    assert not job_folder_exists(shared_server, job_id)
    assert_problem(shared_client.post(f"/v1/jobs/{job_id}/start"), 409)


def test_failed_job_expires(shared_server: ServerProcess, shared_client: httpx.Client) -> None:
    # Damage past the first MiB of text is only found when the job reads it all: it fails.
    packed = gzip.compress(make_csv(70_000).body)
    job_id = create_job(shared_client, packed[: len(packed) * 3 // 4])["id"]
    job = wait_for_status(shared_client, job_id, "failed")
    assert job["error"]["code"] == "truncated_gzip"
    check_expires_at(job)
    wait_for_status(shared_client, job_id, "expired", timeout=15)
    assert not job_folder_exists(shared_server, job_id)


def test_cancelled_job_expires(shared_server: ServerProcess, shared_client: httpx.Client) -> None:
    """The life cycle: "succeeded | failed | cancelled -- retention deletes the files --> expired".
    A cancelled job keeps its uploaded input, so it must expire too."""
    job_id = create_job(shared_client, make_csv(100).body, start=False)["id"]
    cancelled = shared_client.post(f"/v1/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert job_folder_exists(shared_server, job_id)  # the input
    check_expires_at(cancelled)
    wait_for_status(shared_client, job_id, "expired", timeout=15)
    assert not job_folder_exists(shared_server, job_id)
    assert get_job(shared_client, job_id)["status"] == "expired"
