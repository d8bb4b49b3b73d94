"""Operations endpoints of a replica: readiness of each dependency, metrics, request ids."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from geobatch.api import create_app
from geobatch.config import Settings
from geobatch.jobs import Platform
from geobatch.jobs.runtime import open_platform
from geobatch.jobs.states import JobStatus
from geobatch.logs import RequestIds, configure_logging
from tests.api.conftest import serve_app
from tests.jobs.test_scheduler import create_job, csv_bytes, make_rows, wait_for_status

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[httpx.Client]:
    with serve_app(app) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    opened = open_platform(settings)
    yield opened
    opened.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[httpx.Client]:
    with serving(create_app(platform.settings, platform=platform)) as http:
        yield http


@SQLITE
def test_readyz_checks_database_storage_and_executor(client: httpx.Client) -> None:
    reply = client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json()["checks"] == {
        "database": "ok",
        "storage": "ok",
        "executor": "ok",
        "scheduler": "ok",
    }


@SQLITE
def test_readyz_fails_when_the_dask_scheduler_is_unreachable(settings: Settings) -> None:
    replica = settings.model_copy(update={"executor": "dask://127.0.0.1:9"})
    with serving(create_app(replica, run_scheduler=False)) as client:
        reply = client.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["checks"]["executor"].startswith("error: Dask scheduler unreachable")
    assert "scheduler" not in reply.json()["checks"]


@SQLITE
def test_metrics_show_queue_depth_chunk_durations_and_lease_expiries(
    platform: Platform, client: httpx.Client
) -> None:
    job = create_job(platform, csv_bytes(make_rows(3_000)))
    wait_for_status(platform, job.id, JobStatus.SUCCEEDED)

    text = client.get("/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines['geobatch_queue_depth{state="done"}'] == "0"  # a finished job left the queue
    assert lines['geobatch_queue_depth{state="queued_jobs"}'] == "0"
    assert lines["geobatch_chunk_seconds_count"] == "3"
    assert lines['geobatch_chunk_seconds_bucket{le="+Inf"}'] == "3"
    assert float(lines["geobatch_chunk_seconds_sum"]) > 0
    assert lines["geobatch_lease_expiries_total"] == "0"


def test_json_logs_carry_request_and_job_ids(capsys: pytest.CaptureFixture[str]) -> None:
    probe = logging.getLogger("geobatch.probe")
    app = FastAPI()

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, str]:
        probe.info("looked at %s", job_id)
        return {"id": job_id}

    app.add_middleware(RequestIds)
    job_id = str(uuid.uuid4())
    configure_logging(Settings(log_format="json", _env_file=None))  # type: ignore[call-arg]
    try:
        with serving(app) as client:
            given = client.get(f"/v1/jobs/{job_id}", headers={"X-Request-ID": "req-42"})
            made = client.get(f"/v1/jobs/{job_id}")
    finally:
        logging.getLogger().handlers[:] = []
    assert given.headers["x-request-id"] == "req-42"
    assert len(made.headers["x-request-id"]) == 32
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    probes = [line for line in lines if line["name"] == "geobatch.probe"]
    assert [(p["request_id"], p["job_id"], p["level"]) for p in probes] == [
        ("req-42", job_id, "INFO"),
        (made.headers["x-request-id"], job_id, "INFO"),
    ]
    assert probes[0]["message"] == f"looked at {job_id}"
