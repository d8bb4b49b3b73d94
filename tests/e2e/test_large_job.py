"""A 100,000-record validate job through its whole life, with exact statistics and outputs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from geobatch.io.outputs import OutputFormat
from tests.e2e.helpers import (
    ERROR_COLUMNS,
    FORMATS,
    RESULT_COLUMNS,
    assert_exactly_once,
    create_job,
    download,
    get_job,
    make_csv,
    normalise,
    timestamp,
)

pytestmark = pytest.mark.e2e

RECORDS = 100_000
MALFORMED = 7


@pytest.mark.slow
def test_large_job_lifecycle_statistics_and_outputs(client: httpx.Client, tmp_path: Path) -> None:
    source = make_csv(RECORDS, malformed=MALFORMED)
    path = tmp_path / "points.csv"
    path.write_bytes(source.body)
    assert source.invalid > 1000  # the input really exercises the invalid paths

    created = create_job(client, path.read_bytes(), start=False)
    assert created["status"] == "created"
    assert created["queued_at"] is None
    assert created["started_at"] is None
    assert created["output"] is None
    assert created["input"]["format"] == "csv"
    assert created["input"]["columns"] == ["recId", "lat", "lon", "name"]
    assert created["input"]["size_bytes"] == len(source.body)
    job_id = created["id"]
    # Nothing happens to a created job until it is started.
    time.sleep(0.3)
    assert get_job(client, job_id)["status"] == "created"

    started = client.post(f"/v1/jobs/{job_id}/start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] in ("queued", "running")

    # Follow the job, remembering every state seen and how progress moved.
    seen: list[str] = [started.json()["status"]]
    progress: list[int] = []
    deadline = time.monotonic() + 120
    while True:
        job = get_job(client, job_id)
        if job["status"] != seen[-1]:
            seen.append(job["status"])
        progress.append(job["statistics"]["processed_records"])
        if job["status"] == "succeeded":
            break
        assert job["status"] in ("queued", "running"), job
        assert time.monotonic() < deadline, f"job did not finish: {job}"
        time.sleep(0.02)
    order = ["queued", "running", "succeeded"]
    assert seen == [s for s in order if s in seen], f"states went {seen}"
    assert "running" in seen, f"never saw the job running: {seen}"
    assert progress == sorted(progress), "processed_records went backwards"

    queued, began, finished = (
        timestamp(job[key]) for key in ("queued_at", "started_at", "finished_at")
    )
    assert timestamp(job["created_at"]) <= queued <= began <= finished
    assert job["expires_at"] is not None
    assert timestamp(job["expires_at"]) > finished
    source.check_statistics(job)
    assert job["progress"]["percent"] == 100.0
    assert job["output"]["partial"] is False
    assert set(job["output"]["formats"]) == {"csv", "geojson", "parquet"}

    # The results and the error report, identical in all three formats and exactly as expected.
    expected_results = source.expected_results()
    expected_errors = source.expected_errors()
    assert len(expected_errors) == MALFORMED
    for fmt in FORMATS:
        results = normalise(download(client, job_id, fmt=fmt), RESULT_COLUMNS, fmt)
        assert len(results) == RECORDS - MALFORMED, fmt
        assert results == expected_results, f"{fmt} results differ from the expected rows"
        errors = normalise(download(client, job_id, errors=True, fmt=fmt), ERROR_COLUMNS, fmt)
        assert errors == expected_errors, f"{fmt} error report differs: {errors}"

    assert_exactly_once(client, job_id, source.ids)

    # Parquet keeps types: seqNumber is an integer, valid a boolean, reason null when valid.
    row = download(client, job_id, fmt=OutputFormat.PARQUET)[0]
    assert isinstance(row["seqNumber"], int)
    assert isinstance(row["valid"], bool)
    assert (row["reason"] is None) == row["valid"]
