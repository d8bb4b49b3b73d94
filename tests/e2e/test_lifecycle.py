"""A job's life over HTTP: pause and resume, cancel, delete, idempotent creation, the input
formats and ways in, list filters and summaries, and tenants.

Tests that only look at their own jobs share one server per database (``shared_client``);
those that need settings of their own or an empty database start their own.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geobatch.io.outputs import OutputFormat
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import (
    FORMATS,
    RESULT_COLUMNS,
    REVERSE_GEOCODE,
    VALIDATE_PARAMS,
    assert_problem,
    create_job,
    download,
    get_job,
    make_csv,
    normalise,
    timestamp,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.e2e


def some_chunks_done(job: dict[str, Any]) -> bool:
    return job["status"] == "running" and job["statistics"]["processed_records"] > 0


COUNTERS = ("total_records", "processed_records", "successful_records", "failed_records")


def counters(job: dict[str, Any]) -> tuple[Any, ...]:
    """The job's state and record counters (records_per_second moves with the clock)."""
    return (job["status"], *(job["statistics"][name] for name in COUNTERS))


def wait_until_still(client: httpx.Client, job_id: str, quiet: float = 0.8) -> dict[str, Any]:
    """The job once its counters have not moved for ``quiet`` seconds (in-flight chunks of a
    paused job still commit)."""
    job = get_job(client, job_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(quiet)
        again = get_job(client, job_id)
        if counters(again) == counters(job):
            return again
        job = again
    raise AssertionError(f"the job never settled: {job}")


def stored_files(server: ServerProcess, job_id: str) -> list[str]:
    """The job's files now; os.walk skips folders removed while it reads (a delete in flight)."""
    folder = server.data_dir / "storage" / "jobs" / job_id
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    )


def storage_still(server: ServerProcess, job_id: str, quiet: float = 0.7) -> None:
    """Wait until the job's files stop changing: a split in flight runs to its end whatever
    the job became meanwhile."""
    deadline = time.monotonic() + 30
    files = stored_files(server, job_id)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        again = stored_files(server, job_id)
        if again == files and not any(name.endswith(".tmp") for name in files):
            return
        files = again
    raise AssertionError(f"the job's files never settled: {files[:5]}")


def files_become(server: ServerProcess, job_id: str, expected: list[str]) -> None:
    """Wait until the job's stored files are ``expected`` (chunks in flight may still report)."""
    deadline = time.monotonic() + 30
    while (files := stored_files(server, job_id)) != expected:
        assert time.monotonic() < deadline, f"the job's files stayed {files[:5]}"
        time.sleep(0.2)


# --- pause, resume, cancel, delete ----------------------------------------------------------------


def test_pause_and_resume(shared_client: httpx.Client) -> None:
    client = shared_client
    source = make_csv(100_000, malformed=5)
    job_id = create_job(client, source.body)["id"]
    wait_for(client, job_id, some_chunks_done, what="some chunks to commit")

    stopped = client.post(f"/v1/jobs/{job_id}/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "paused"
    at_stop = stopped.json()["statistics"]["processed_records"]
    paused = wait_until_still(client, job_id, quiet=1.5)
    assert paused["status"] == "paused"
    assert paused["output"]["partial"] is True
    assert paused["finished_at"] is None

    # What is done so far can be downloaded, marked partial. (Chunks that were in flight at
    # the stop still commit; a snapshot counts when the job did not move while it was taken.)
    for _ in range(10):
        before = get_job(client, job_id)
        results = download(client, job_id, partial=True)
        errors = download(client, job_id, errors=True, partial=True)
        after = get_job(client, job_id)
        if counters(before) == counters(after):
            break
    else:
        raise AssertionError("the paused job kept moving")
    assert after["status"] == "paused"
    done = after["statistics"]["processed_records"]
    ids = [row["recId"] for row in results + errors]
    assert len(ids) == done, "partial results + errors do not add up to processed_records"
    assert len(set(ids)) == len(ids)
    assert set(ids) <= set(source.ids)
    # At most the chunks in flight (2 per worker, 5000 records each) finished after the stop.
    assert 0 < done <= at_stop + 4 * 5000, (at_stop, done)
    assert done < source.total

    response = client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"})
    assert response.headers["x-geobatch-partial"] == "true"
    assert response.headers["x-geobatch-job-status"] == "paused"
    expected = normalise(results, RESULT_COLUMNS, OutputFormat.PARQUET)
    for fmt in (OutputFormat.CSV, OutputFormat.GEOJSON):
        rows = download(client, job_id, fmt=fmt, partial=True)
        assert normalise(rows, RESULT_COLUMNS, fmt) == expected, fmt

    resumed = client.post(f"/v1/jobs/{job_id}/start")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] in ("queued", "running")
    job = wait_for_status(client, job_id, "succeeded")
    source.check_statistics(job)
    source.check_outputs(client, job_id)
    assert job["started_at"] == paused["started_at"]


ATTEMPTS = 20  # the race below shows in 10-40% of attempts, depending on the database


def running_with_commits(client: httpx.Client, body: bytes) -> str | None:
    """Create a job and return its id once a chunk has committed while it runs; None if it
    succeeded before that could be seen."""
    job_id = create_job(client, body)["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = get_job(client, job_id)
        if some_chunks_done(job):
            return job_id
        if job["status"] == "succeeded":
            return None
        time.sleep(0.005)
    raise AssertionError(f"the job did not get going: {job}")


def test_cancel_running_jobs(shared_server: ServerProcess) -> None:
    """Cancel jobs while chunks run: each answers 200, nothing commits after it, its results
    are gone (410) and only its input is kept. Jobs are cancelled until one fails or
    ATTEMPTS have passed: cancelling races with the workers writing their parts."""
    body = make_csv(30_000).body
    refused: list[str] = []
    cancelled: dict[str, dict[str, Any]] = {}
    for _ in range(ATTEMPTS):
        # A fresh connection each time: the server closes one on which it answered 500.
        with httpx.Client(base_url=shared_server.url, timeout=60) as client:
            job_id = running_with_commits(client, body)
            if job_id is None:
                continue
            response = client.post(f"/v1/jobs/{job_id}/cancel")
            if response.status_code == 409 and get_job(client, job_id)["status"] == "succeeded":
                continue  # it ended first: fair
            if response.status_code != 200:
                refused.append(f"{response.status_code} {response.text[:150]}")
                break
            job = cancelled[job_id] = response.json()
            assert job["status"] == "cancelled"
            assert job["output"] is None
            assert job["finished_at"] is not None
            for kind in ("results", "errors"):
                for fmt in FORMATS:
                    answer = client.get(f"/v1/jobs/{job_id}/{kind}", params={"format": fmt.value})
                    assert_problem(answer, 410, slug="gone")
    assert cancelled or refused, "every job ended before it could be cancelled"
    with httpx.Client(base_url=shared_server.url, timeout=60) as client:
        if cancelled:
            storage_still(shared_server, list(cancelled)[-1])
        for job_id, at_cancel in cancelled.items():
            job = get_job(client, job_id)
            # Chunks in flight at the cancel finish, but do not count.
            assert counters(job) == counters(at_cancel)
            # Unfinished work is discarded (a chunk still in flight when the job was cancelled
            # writes its part, which is dropped when it reports back): only the input is kept.
            files_become(shared_server, job_id, ["input"])
    assert not refused, (
        f"cancelling a running job failed after {len(cancelled)} successful cancels: {refused[0]}"
    )


def test_delete_running_jobs(shared_server: ServerProcess) -> None:
    """DELETE jobs while chunks run: 204, then 404, and no file left once the chunks in
    flight are over. Jobs are deleted until one fails or ATTEMPTS have passed (a race)."""
    body = make_csv(30_000).body
    refused: list[str] = []
    deleted: list[str] = []
    for _ in range(ATTEMPTS):
        with httpx.Client(base_url=shared_server.url, timeout=60) as client:
            job_id = running_with_commits(client, body)
            if job_id is None:
                continue
            response = client.delete(f"/v1/jobs/{job_id}")
            if response.status_code != 204:
                refused.append(f"{response.status_code} {response.text[:150]}")
                break
            deleted.append(job_id)
            assert_problem(client.get(f"/v1/jobs/{job_id}"), 404)
    assert deleted or refused, "every job ended before it could be deleted"
    if deleted:
        storage_still(shared_server, deleted[-1])
    for job_id in deleted:  # an earlier job's last chunks may still be finishing under load
        files_become(shared_server, job_id, [])
    assert not refused, (
        f"deleting a running job failed after {len(deleted)} successful deletes: {refused[0]}"
    )


def test_delete_a_finished_job(shared_server: ServerProcess, shared_client: httpx.Client) -> None:
    job_id = create_job(shared_client, make_csv(500).body)["id"]
    wait_for_status(shared_client, job_id, "succeeded")
    assert stored_files(shared_server, job_id)
    deleted = shared_client.delete(f"/v1/jobs/{job_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(shared_client.get(f"/v1/jobs/{job_id}"), 404)
    assert_problem(shared_client.get(f"/v1/jobs/{job_id}/results"), 404)
    assert_problem(shared_client.delete(f"/v1/jobs/{job_id}"), 404)
    listed = shared_client.get("/v1/jobs", params={"page_size": 1000}).json()["jobs"]
    assert job_id not in {job["id"] for job in listed}
    assert not (shared_server.data_dir / "storage" / "jobs" / job_id).exists()


def act_during_split(server: ServerProcess, action: str) -> list[str]:
    """Cancel or delete a job while its input is being split, and return the files the job
    has once its split is over.

    The request goes out as soon as the job is running, mostly before the split has written
    any part. Should it delete a part the split is writing at that very moment, the split
    dies and leaves nothing, and should it answer 500 (see test_cancel_running_jobs) it
    deleted nothing: such attempts prove nothing, so up to four are made.
    """
    body = make_csv(30_000).body
    conclusive = 0
    for _ in range(4):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            job_id = create_job(client, body)["id"]
            wait_for(client, job_id, lambda j: j["status"] == "running", interval=0.002)
            if action == "cancel":
                response = client.post(f"/v1/jobs/{job_id}/cancel")
            else:
                response = client.delete(f"/v1/jobs/{job_id}")
        if response.status_code >= 300:
            continue
        conclusive += 1
        storage_still(server, job_id)
        files = [name for name in stored_files(server, job_id) if name != "input"]
        if files:
            return files
    assert conclusive, f"every {action} during a split failed"
    return []


def test_cancel_during_split_discards_its_chunks(shared_server: ServerProcess) -> None:
    leftovers = act_during_split(shared_server, "cancel")
    assert not leftovers, (
        f"a job cancelled during its split keeps the {len(leftovers)} chunk parts the split "
        f"wrote after the cancel (and cancelled jobs never expire): {leftovers[:3]}"
    )


def test_delete_during_split_leaves_nothing(
    shared_server: ServerProcess, shared_client: httpx.Client
) -> None:
    leftovers = act_during_split(shared_server, "delete")
    # The scheduler goes on working either way.
    after = create_job(shared_client, make_csv(100).body)["id"]
    wait_for_status(shared_client, after, "succeeded")
    assert not leftovers, (
        f"{len(leftovers)} chunk parts of a job deleted during its split stay in storage for "
        f"good (no job record refers to them any more): {leftovers[:3]}"
    )


# --- idempotency ----------------------------------------------------------------------------------


def test_idempotent_creation(shared_client: httpx.Client) -> None:
    body = make_csv(200).body
    key = {"Idempotency-Key": "upload-one"}
    first = create_job(shared_client, body, headers=key)
    again = create_job(shared_client, body, headers=key, expect=200)
    assert again["id"] == first["id"]
    assert again["created_at"] == first["created_at"]

    for changed in (
        {"body": body + b"r9999,1,2,x\n"},
        {"params": {"options": json.dumps({"target_type": "geocode"})}},
        {"params": {"priority": "7"}},
    ):
        response = shared_client.post(
            "/v1/jobs",
            params={**VALIDATE_PARAMS, **changed.get("params", {})},
            content=changed.get("body", body),
            headers={"Content-Type": "text/csv", **key},
        )
        problem = assert_problem(response, 422)
        assert problem["field"] == "Idempotency-Key", changed

    # Another key is another job.
    other = create_job(shared_client, body, headers={"Idempotency-Key": "upload-two"})
    assert other["id"] != first["id"]
    same = [
        job
        for job in shared_client.get("/v1/jobs", params={"page_size": 1000}).json()["jobs"]
        if job["id"] == first["id"]
    ]
    assert len(same) == 1


def test_idempotency_key_of_a_refused_request_can_be_reused(shared_client: httpx.Client) -> None:
    key = {"Idempotency-Key": "first-try-was-empty"}
    response = shared_client.post(
        "/v1/jobs", params=VALIDATE_PARAMS, content=b"", headers={"Content-Type": "text/csv", **key}
    )
    assert_problem(response, 422, code="empty_input")
    first = create_job(shared_client, make_csv(10).body, headers=key)
    again = create_job(shared_client, make_csv(10).body, headers=key, expect=200)
    assert again["id"] == first["id"]


def test_idempotent_json_creation(shared_client: httpx.Client) -> None:
    body = {"type": "validate", "input": {"file_name": "nothing.csv"}, "options": REVERSE_GEOCODE}
    key = {"Idempotency-Key": "json-one"}
    assert_problem(shared_client.post("/v1/jobs", json=body, headers=key), 422)
    # The failed attempt released the key; the same key with a good request works.
    good = shared_client.post(
        "/v1/jobs",
        params={**VALIDATE_PARAMS, "start": "false"},
        content=b"lat,lon\n1,2\n",
        headers={"Content-Type": "text/csv", **key},
    )
    assert good.status_code == 201, good.text


# --- input formats and ways in --------------------------------------------------------------------


def _geojson(features: list[Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def _feature(geometry: dict[str, Any] | None, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def test_geojson_input(shared_client: httpx.Client) -> None:
    features: list[Any] = [
        {**_feature(_point(7.25, 45.5), lat=45.5, lon=7.25), "id": "f1"},
        _feature(_point(7, 95), recId="p2", lat=95, lon=7),
        _feature(None, recId="p3", lat="abc", lon=7),
        _feature(_point(2, 1), lat=1, lon=2),
        _feature({"type": "Point", "coordinates": "x"}, recId="p5", lat=1, lon=2),
        _feature(None, recId="p6", lat=None, lon=2),
        42,
        _feature(None, recId=8, lat=True, lon=2),
    ]
    job = create_job(shared_client, _geojson(features), media_type="application/geo+json")
    assert job["input"]["format"] == "geojson"
    job = wait_for_status(shared_client, job["id"], "succeeded")
    stats = job["statistics"]
    assert (stats["total_records"], stats["processed_records"]) == (8, 8)
    assert (stats["successful_records"], stats["failed_records"]) == (2, 2)
    assert stats["invalid_records"] == 4
    expected = [
        ("f1", "1", "1", "true", ""),
        ("p2", "1", "1", "false", "lat is outside -90..90"),
        ("p3", "1", "1", "false", "lat is not a number"),
        ("4", "1", "1", "true", ""),
        ("p6", "1", "1", "false", "lat is missing"),
        ("8", "1", "1", "false", "lat is not a number"),
    ]
    for fmt in FORMATS:
        rows = normalise(download(shared_client, job["id"], fmt=fmt), RESULT_COLUMNS, fmt)
        assert rows == expected, fmt
    errors = download(shared_client, job["id"], errors=True)
    assert [(row["recId"], row["code"]) for row in errors] == [
        ("p5", "bad_feature"),
        ("7", "bad_feature"),
    ]


def test_geojson_geometries_for_road_match(shared_client: httpx.Client) -> None:
    lines: list[tuple[dict[str, Any], dict[str, Any] | None, str | None]] = [
        ({"id": "a"}, {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, None),
        ({"id": "b"}, _point(1, 1), "geometry is a Point; expected LineString or MultiLineString"),
        (
            {"id": "c"},
            {"type": "LineString", "coordinates": [[0, 0], [1, 1], [1, 0], [0, 1]]},
            None,  # a road may cross itself
        ),
        (
            {"id": "d"},
            {"type": "LineString", "coordinates": [[0, 0], [200, 1]]},
            "geometry coordinates are outside lon -180..180 / lat -90..90",
        ),
        ({"id": "e"}, None, "geometry is missing"),
        ({}, {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, None),  # recId names it
    ]
    features = [
        {"type": "Feature", "geometry": geometry, "properties": props}
        for props, geometry, _ in lines
    ]
    job = create_job(
        shared_client,
        _geojson(features),
        media_type="application/geo+json",
        params={"options": json.dumps({"target_type": "road_match"})},
    )
    job = wait_for_status(shared_client, job["id"], "succeeded")
    rows = download(shared_client, job["id"])
    assert [(row["recId"], row["reason"]) for row in rows] == [
        (str(n), reason) for n, (_, _, reason) in enumerate(lines, 1)
    ]


def test_parquet_input(shared_client: httpx.Client) -> None:
    table = pa.table(
        {
            "recId": ["a", "b", "c", "d", "e", None],
            "lat": [45.0, None, float("nan"), 91.0, -90.0, 10.0],
            "lon": [7.0, 7.0, 7.0, 7.0, 180.0, 10.0],
            "count": pa.array([1, 2, 3, 4, 5, 6], pa.int32()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=4)
    job = create_job(shared_client, sink.getvalue(), media_type="application/vnd.apache.parquet")
    assert job["input"]["format"] == "parquet"
    assert job["input"]["columns"] == ["recId", "lat", "lon", "count"]
    job = wait_for_status(shared_client, job["id"], "succeeded")
    assert job["statistics"]["successful_records"] == 3
    assert job["statistics"]["invalid_records"] == 3
    expected = [
        ("a", None),
        ("b", "lat is missing"),
        ("c", "lat is not a number"),
        ("d", "lat is outside -90..90"),
        ("e", None),
        ("6", None),
    ]
    for fmt in FORMATS:
        rows = download(shared_client, job["id"], fmt=fmt)
        assert [(row["recId"], row["reason"] or None) for row in rows] == expected, fmt
    assert download(shared_client, job["id"], errors=True) == []


def test_multipart_upload(shared_client: httpx.Client) -> None:
    source = make_csv(2000, malformed=3)
    response = shared_client.post(
        "/v1/jobs",
        data={
            "type": "validate",
            "options": json.dumps(REVERSE_GEOCODE),
            "metadata": json.dumps({"team": "ops"}),
            "bulk_id": "multipart-batch",
            "priority": "3",
            "start": "false",
        },
        files={"file": ("points.csv", source.body, "text/csv")},
        headers={"Idempotency-Key": "multipart-one"},
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "created"
    assert (job["bulk_id"], job["priority"], job["metadata"]) == (
        "multipart-batch",
        3,
        {"team": "ops"},
    )
    assert job["options"]["target_type"] == "reverse_geocode"
    assert job["input"]["format"] == "csv"
    assert shared_client.post(f"/v1/jobs/{job['id']}/start").status_code == 200
    done = wait_for_status(shared_client, job["id"], "succeeded")
    source.check_statistics(done)
    source.check_outputs(shared_client, job["id"])


def test_multipart_gzip_file_detected_by_name(shared_client: httpx.Client) -> None:
    source = make_csv(300)
    response = shared_client.post(
        "/v1/jobs",
        data={"type": "validate", "options": json.dumps(REVERSE_GEOCODE)},
        files={"file": ("points.csv.gz", gzip.compress(source.body), "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    assert response.json()["input"]["compression"] == "gzip"
    source.check_statistics(wait_for_status(shared_client, response.json()["id"], "succeeded"))


def test_multipart_without_a_file(shared_client: httpx.Client) -> None:
    response = shared_client.post(
        "/v1/jobs", data={"type": "validate"}, files={"other": ("a.csv", b"lat,lon\n", "text/csv")}
    )
    assert assert_problem(response, 422)["field"] == "file"


def test_csv_without_header_and_other_delimiter(shared_client: httpx.Client) -> None:
    body = b"a;45.5;7.25\nb;95;7\n"
    job = create_job(shared_client, body, params={"inputColumns": "recId,lat,lon"})
    job = wait_for_status(shared_client, job["id"], "succeeded")
    rows = download(shared_client, job["id"])
    assert [(row["recId"], row["valid"]) for row in rows] == [("a", True), ("b", False)]


# --- input by URL ---------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on 127.0.0.1 serving a folder: (base URL, folder)."""
    folder = tmp_path / "www"
    folder.mkdir()

    def handler(*args: Any, **kwargs: Any) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(folder), **kwargs)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_input_url(server_factory: type[ServerProcess], file_server: tuple[str, Path]) -> None:
    base, folder = file_server
    source = make_csv(5000, malformed=2)
    (folder / "points.csv").write_bytes(source.body)
    (folder / "points.csv.gz").write_bytes(gzip.compress(source.body))
    request: dict[str, Any] = {
        "type": "validate",
        "input": {"url": f"{base}/points.csv"},
        "options": REVERSE_GEOCODE,
        "metadata": {"source": "url"},
        "bulk_id": "from-url",
        "priority": 5,
    }

    # A default server refuses private and loopback addresses.
    default = server_factory()
    default.start()
    with httpx.Client(base_url=default.url, timeout=60) as client:
        problem = assert_problem(client.post("/v1/jobs", json=request), 422, slug="url-not-allowed")
        assert "127.0.0.1" in problem["detail"]
        assert client.get("/v1/jobs").json()["jobs"] == []
    default.stop()  # (its scheduler would pick up the next server's jobs: same database)

    allowing = server_factory(GEOBATCH_URL_ALLOWLIST="127.0.0.1/32")
    allowing.start()
    with httpx.Client(base_url=allowing.url, timeout=60) as client:
        created = client.post("/v1/jobs", json=request)
        assert created.status_code == 201, created.text
        job = created.json()
        assert (job["priority"], job["bulk_id"], job["metadata"]) == (
            5,
            "from-url",
            request["metadata"],
        )
        assert job["input"]["url"] == f"{base}/points.csv"
        # The allow-list is exact: another loopback address is still refused.
        elsewhere = {**request, "input": {"url": f"{base.replace('127.0.0.1', '127.0.0.2')}/a.csv"}}
        assert_problem(client.post("/v1/jobs", json=elsewhere), 422, slug="url-not-allowed")
        job = wait_for_status(client, job["id"], "succeeded")
        source.check_statistics(job)
        source.check_outputs(client, job["id"])

        zipped = client.post(
            "/v1/jobs", json={**request, "input": {"url": f"{base}/points.csv.gz"}}
        )
        assert zipped.status_code == 201, zipped.text
        source.check_statistics(wait_for_status(client, zipped.json()["id"], "succeeded"))

        # A URL that answers 404 fails the job (it is fetched when the job starts).
        missing = client.post("/v1/jobs", json={**request, "input": {"url": f"{base}/none.csv"}})
        assert missing.status_code == 201, missing.text
        failed = wait_for_status(client, missing.json()["id"], "failed")
        assert failed["error"]["code"] == "download_failed"


# --- listing and counting -------------------------------------------------------------------------


def _ids(client: httpx.Client, **params: Any) -> list[str]:
    response = client.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_page_token"] is None
    return [job["id"] for job in body["jobs"]]


def test_list_filters_and_summary(client: httpx.Client) -> None:
    body = make_csv(50).body
    j1 = create_job(
        client,
        body,
        start=False,
        params={"bulk_id": "b1", "metadata": json.dumps({"team": "ops", "env": "prod"})},
    )["id"]
    j2 = create_job(
        client, body, start=False, params={"bulk_id": "b1", "metadata": '{"team": "dev"}'}
    )["id"]
    j3 = create_job(client, body, params={"bulk_id": "b2", "metadata": '{"team": "ops"}'})["id"]
    j4 = create_job(client, body)["id"]
    j5 = create_job(
        client,
        body,
        start=False,
        params={"priority": "5", "metadata": json.dumps({"team": "ops", "env": "test"})},
    )["id"]
    assert client.post(f"/v1/jobs/{j2}/cancel").status_code == 200
    wait_for_status(client, j3, "succeeded")
    wait_for_status(client, j4, "succeeded")
    created_j3 = get_job(client, j3)["created_at"]

    assert _ids(client) == [j5, j4, j3, j2, j1]  # newest first
    assert _ids(client, status="created") == [j5, j1]
    assert _ids(client, status="succeeded") == [j4, j3]
    assert _ids(client, status="created,cancelled") == [j5, j2, j1]
    assert _ids(client, status=["created", "cancelled"]) == [j5, j2, j1]
    assert _ids(client, status="running") == []
    assert _ids(client, type="validate") == [j5, j4, j3, j2, j1]
    assert _ids(client, type="geocode") == []
    assert _ids(client, bulk_id="b1") == [j2, j1]
    assert _ids(client, metadata="team:ops") == [j5, j3, j1]
    assert _ids(client, metadata=["team:ops", "env:prod"]) == [j1]
    assert _ids(client, metadata="team:nobody") == []
    assert _ids(client, status="created", metadata="team:ops") == [j5, j1]
    assert _ids(client, created_after=created_j3) == [j5, j4, j3]
    assert _ids(client, created_before=created_j3) == [j2, j1]
    listed = {job["id"]: job for job in client.get("/v1/jobs").json()["jobs"]}
    assert listed[j5]["priority"] == 5
    assert listed[j1]["metadata"] == {"team": "ops", "env": "prod"}

    def summary(**params: Any) -> dict[str, Any]:
        response = client.get("/v1/jobs/summary", params=params)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    assert summary() == {
        "types": {"validate": {"created": 2, "cancelled": 1, "succeeded": 2}},
        "total": 5,
    }
    assert summary(bulk_id="b1") == {
        "types": {"validate": {"created": 1, "cancelled": 1}},
        "total": 2,
    }
    assert summary(metadata="team:ops") == {
        "types": {"validate": {"created": 2, "succeeded": 1}},
        "total": 3,
    }
    assert summary(type="geocode") == {"types": {}, "total": 0}
    assert summary(created_after=created_j3)["total"] == 3


# --- tenants --------------------------------------------------------------------------------------


def test_tenant_isolation(server_factory: type[ServerProcess]) -> None:
    server = server_factory(GEOBATCH_API_KEYS="k1:alice,k2:bob")
    server.start()
    alice = httpx.Client(base_url=server.url, timeout=60, headers={"X-API-Key": "k1"})
    bob = httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": "Bearer k2"})
    anonymous = httpx.Client(base_url=server.url, timeout=60)
    wrong = httpx.Client(base_url=server.url, timeout=60, headers={"X-API-Key": "k3"})
    with alice, bob, anonymous, wrong:
        source = make_csv(100)
        job = create_job(alice, source.body, headers={"Idempotency-Key": "same-key"})
        job_id = job["id"]
        wait_for_status(alice, job_id, "succeeded")

        for outsider in (anonymous, wrong):
            assert_problem(outsider.get(f"/v1/jobs/{job_id}"), 401, slug="unauthorized")
            assert_problem(outsider.get("/v1/jobs"), 401)
            response = outsider.post(
                "/v1/jobs",
                params=VALIDATE_PARAMS,
                content=source.body,
                headers={"Content-Type": "text/csv"},
            )
            assert_problem(response, 401)
        assert anonymous.get("/healthz").status_code == 200
        # Client generators learn from the OpenAPI document how to present a key.
        openapi = anonymous.get("/openapi.json").json()
        schemes = openapi["components"]["securitySchemes"]
        assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        assert schemes["bearer"]["scheme"] == "bearer"
        assert {"apiKey": []} in openapi["security"]

        # Bob cannot see or touch Alice's job: to him it does not exist.
        for method, path in [
            ("GET", ""),
            ("GET", "/results"),
            ("GET", "/errors"),
            ("POST", "/start"),
            ("POST", "/stop"),
            ("POST", "/cancel"),
            ("DELETE", ""),
        ]:
            assert_problem(bob.request(method, f"/v1/jobs/{job_id}{path}"), 404)
        assert bob.get("/v1/jobs").json()["jobs"] == []
        assert bob.get("/v1/jobs/summary").json() == {"types": {}, "total": 0}
        statuses = bob.post("/v1/jobs/statuses", json={"job_ids": [job_id]}).json()
        assert statuses == {"jobs": [], "not_found": [job_id]}

        # Idempotency keys are per tenant: Bob's "same-key" is his own.
        bobs = create_job(bob, make_csv(20).body, headers={"Idempotency-Key": "same-key"})
        assert bobs["id"] != job_id
        assert [j["id"] for j in bob.get("/v1/jobs").json()["jobs"]] == [bobs["id"]]

        # Alice still has her job, whole.
        assert get_job(alice, job_id)["status"] == "succeeded"
        assert [j["id"] for j in alice.get("/v1/jobs").json()["jobs"]] == [job_id]
        assert len(download(alice, job_id)) == 100


# --- statistics and downloads ---------------------------------------------------------------------


def test_last_record_id_is_the_inputs_last_record(shared_client: httpx.Client) -> None:
    """A finished job's last_record_id is the last record of the input, whatever order its
    chunks happened to commit in (5001 records: a full chunk and a one-record chunk)."""
    seen = []
    for attempt in range(6):
        source = make_csv(5001, prefix=f"t{attempt}-")
        job = create_job(shared_client, source.body)
        job = wait_for_status(shared_client, job["id"], "succeeded")
        seen.append((source.ids[-1], job["statistics"]["last_record_id"]))
    wrong = [(want, got) for want, got in seen if want != got]
    assert not wrong, f"last_record_id (expected, got) in {len(wrong)} of 6 runs: {wrong}"


def test_download_defaults_to_the_output_format_option(shared_client: httpx.Client) -> None:
    """README: downloads are in ``format=csv|geojson|parquet``, "default the job's
    ``output_format`` option"."""
    options = json.dumps({**REVERSE_GEOCODE, "output_format": "parquet"})
    job = create_job(shared_client, make_csv(100).body, params={"options": options})
    wait_for_status(shared_client, job["id"], "succeeded")
    for kind in ("results", "errors"):
        response = shared_client.get(f"/v1/jobs/{job['id']}/{kind}")
        assert response.status_code == 200
        media = response.headers["content-type"].split(";")[0]
        assert media == "application/vnd.apache.parquet", (
            f"{kind} without ?format= came as {media}, not the job's output_format (parquet)"
        )


def test_timestamps_and_progress_of_a_created_job(shared_client: httpx.Client) -> None:
    job = create_job(shared_client, make_csv(10).body, start=False)
    assert job["progress"] == {"percent": 0.0, "records_per_second": None, "eta_seconds": None}
    assert timestamp(job["created_at"]) == timestamp(job["updated_at"])
    started = shared_client.post(f"/v1/jobs/{job['id']}/start").json()
    assert timestamp(started["queued_at"]) >= timestamp(job["created_at"])
    done = wait_for_status(shared_client, job["id"], "succeeded")
    assert done["output"]["results_url"].endswith(f"/v1/jobs/{job['id']}/results")
    assert done["output"]["errors_url"].endswith(f"/v1/jobs/{job['id']}/errors")
    assert download(shared_client, job["id"], errors=True) == []
