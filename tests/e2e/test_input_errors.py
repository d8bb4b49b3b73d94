"""Bad input gets its own specific answer: an error-report row, or a problem+json document.

These tests share one server per database (they only look at their own requests and jobs);
it limits uploads to 1,000,000 bytes.
"""

from __future__ import annotations

import gzip
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from geobatch.io.outputs import OutputFormat
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import (
    ERROR_COLUMNS,
    VALIDATE_PARAMS,
    assert_problem,
    create_job,
    download,
    make_csv,
    normalise,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

LIMIT = 1_000_000
SHARED_SERVER_ENV = {"GEOBATCH_MAX_UPLOAD_BYTES": str(LIMIT)}


def post_upload(
    client: httpx.Client,
    body: bytes,
    *,
    media_type: str | None = "text/csv",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if media_type is not None:
        sent["Content-Type"] = media_type
    return client.post(
        "/v1/jobs", params={**VALIDATE_PARAMS, **(params or {})}, content=body, headers=sent
    )


def job_count(client: httpx.Client) -> int:
    return len(client.get("/v1/jobs", params={"page_size": 1000}).json()["jobs"])


# --- bad records: reported per record, the job goes on --------------------------------------


def test_malformed_rows_become_error_rows(shared_client: httpx.Client) -> None:
    source = make_csv(3000, malformed=6)
    job = create_job(shared_client, source.body)
    job = wait_for_status(shared_client, job["id"], "succeeded")
    source.check_statistics(job)
    source.check_outputs(shared_client, job["id"])
    errors = download(shared_client, job["id"], errors=True, fmt=OutputFormat.CSV)
    assert {row["code"] for row in errors} == {"malformed_row"}
    assert normalise(errors, ERROR_COLUMNS, OutputFormat.CSV) == source.expected_errors()


def test_large_truncated_gzip_fails_the_job(shared_client: httpx.Client) -> None:
    """Damage past the first MiB is only found when the job reads the whole input: the job
    then fails with the same code (the start of the input was checked at upload)."""
    text = make_csv(70_000).body  # ~2 MB of text, ~0.75 MB gzipped: under the upload limit
    packed = gzip.compress(text)
    assert len(packed) < LIMIT, len(packed)
    truncated = packed[: len(packed) * 3 // 4]  # ~1.5 MB of text survive: more than a MiB
    job = create_job(shared_client, truncated, headers={"Content-Encoding": "gzip"})
    job = wait_for_status(shared_client, job["id"], "failed")
    assert job["error"]["code"] == "truncated_gzip", job["error"]
    assert job["output"] is None
    assert_problem(shared_client.get(f"/v1/jobs/{job['id']}/results"), 409)


# --- bad files: refused at once --------------------------------------------------------------


def test_truncated_gzip(shared_client: httpx.Client) -> None:
    packed = gzip.compress(make_csv(500).body)
    response = post_upload(
        shared_client, packed[: len(packed) // 2], headers={"Content-Encoding": "gzip"}
    )
    problem = assert_problem(response, 422, code="truncated_gzip")
    assert "truncated" in problem["detail"]
    # A whole gzip file is fine, with or without Content-Encoding (gzip is sniffed).
    create_job(shared_client, packed, headers={"Content-Encoding": "gzip"})
    create_job(shared_client, packed)


def test_bad_gzip(shared_client: httpx.Client) -> None:
    response = post_upload(
        shared_client, b"recId,lat,lon\n1,2,3\n", headers={"Content-Encoding": "gzip"}
    )
    assert_problem(response, 422, code="bad_gzip")


@pytest.mark.parametrize(
    ("header", "missing"),
    [("recId,latitude,lon", ["lat"]), ("recId,lat,lng", ["lon"]), ("recId,x,y", ["lat", "lon"])],
)
def test_header_without_needed_columns(
    shared_client: httpx.Client, header: str, missing: list[str]
) -> None:
    response = post_upload(shared_client, f"{header}\n1,2,3\n".encode())
    problem = assert_problem(response, 422, code="bad_header")
    named = problem["detail"].split("(")[0]  # "input has no column lat, lon (needed for ...)"
    assert named.replace(",", " ").split()[4:] == missing, problem["detail"]


def test_duplicate_header_column(shared_client: httpx.Client) -> None:
    response = post_upload(shared_client, b"recId,lat,lon,lat\n1,2,3,4\n")
    problem = assert_problem(response, 422, code="bad_header")
    assert "duplicate" in problem["detail"]


@pytest.mark.parametrize("body", [b"", b"\n\n  \r\n"], ids=["zero-bytes", "whitespace"])
def test_empty_input(shared_client: httpx.Client, body: bytes) -> None:
    before = job_count(shared_client)
    assert_problem(post_upload(shared_client, body), 422, code="empty_input")
    assert job_count(shared_client) == before


def test_empty_gzip_and_geojson_and_parquet(shared_client: httpx.Client) -> None:
    assert_problem(
        post_upload(shared_client, gzip.compress(b""), headers={"Content-Encoding": "gzip"}),
        422,
        code="empty_input",
    )
    for media_type in ("application/geo+json", "application/vnd.apache.parquet"):
        assert_problem(
            post_upload(shared_client, b"", media_type=media_type), 422, code="empty_input"
        )


def test_non_utf8_bytes(shared_client: httpx.Client) -> None:
    body = "recId,lat,lon,name\n1,45,7,Café\n".encode("latin-1")
    problem = assert_problem(post_upload(shared_client, body), 422, code="bad_encoding")
    assert "0xe9" in problem["detail"]
    assert "line 2" in problem["detail"]


def test_bad_geojson(shared_client: httpx.Client) -> None:
    document = {"type": "Feature", "geometry": None, "properties": {"lat": 1, "lon": 2}}
    response = post_upload(
        shared_client, json.dumps(document).encode(), media_type="application/geo+json"
    )
    assert_problem(response, 422, code="bad_geojson")


def test_bad_parquet(shared_client: httpx.Client) -> None:
    response = post_upload(
        shared_client, b"PAR1 this is not parquet", media_type="application/vnd.apache.parquet"
    )
    assert_problem(response, 422, code="bad_parquet")


# --- the upload limit ------------------------------------------------------------------------


def _raw_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (with Content-Length) from a socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before a response: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        piece = sock.recv(65536)
        assert piece, "connection closed inside the response body"
        body += piece
    return int(status_line.split()[1]), headers, body


def test_declared_content_length_over_the_limit(shared_server: ServerProcess) -> None:
    """A 2 GB Content-Length is refused from the headers alone: no body byte is ever sent."""
    request = (
        "POST /v1/jobs?type=validate HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{shared_server.port}\r\n"
        "Content-Type: text/csv\r\n"
        "Content-Length: 2000000000\r\n"
        "\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        status, headers, body = _raw_response(sock, timeout=5)
    elapsed = time.monotonic() - started
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 413
    assert problem["type"].endswith("/payload-too-large")
    assert problem["limit"] == LIMIT
    assert "2000000000" in problem["detail"]
    assert elapsed < 2, f"the refusal took {elapsed:.1f}s"


def test_chunked_upload_over_the_limit(
    shared_server: ServerProcess, shared_client: httpx.Client
) -> None:
    """Without Content-Length the limit is enforced as bytes arrive; nothing is kept."""

    def pieces() -> Iterator[bytes]:
        yield b"recId,lat,lon\n"
        for _ in range(40):  # 40 x 60 kB = 2.4 MB
            yield b"1,45.5,7.25\n" * 5000

    jobs = shared_server.data_dir / "storage" / "jobs"
    before = (job_count(shared_client), sorted(jobs.glob("*")))
    response = shared_client.post(
        "/v1/jobs", params=VALIDATE_PARAMS, content=pieces(), headers={"Content-Type": "text/csv"}
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    problem = assert_problem(response, 413)
    assert problem["limit"] == LIMIT
    assert (job_count(shared_client), sorted(jobs.glob("*"))) == before, "the upload was kept"


def test_upload_of_exactly_the_limit_is_accepted(shared_client: httpx.Client) -> None:
    body = b"recId,lat,lon\n1,45.5,7.25\n"
    body += b"\n" * (LIMIT - len(body))
    job = create_job(shared_client, body)
    assert job["input"]["size_bytes"] == LIMIT
    assert_problem(post_upload(shared_client, body + b"\n"), 413)


def test_multipart_upload_over_the_limit(shared_client: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"recId,lat,lon\n" + b"1,45.5,7.25\n" * 100_000)
    with path.open("rb") as handle:
        response = shared_client.post(
            "/v1/jobs",
            data={"type": "validate", "options": VALIDATE_PARAMS["options"]},
            files={"file": ("big.csv", handle, "text/csv")},
        )
    assert_problem(response, 413)


# --- bad requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", ["image/png", "application/xml", None])
def test_unsupported_media_type(shared_client: httpx.Client, media_type: str | None) -> None:
    response = post_upload(shared_client, b"recId,lat,lon\n1,2,3\n", media_type=media_type)
    assert_problem(response, 415, code="unsupported_format")


def test_unknown_job_type(shared_client: httpx.Client) -> None:
    problem = assert_problem(
        post_upload(shared_client, b"lat,lon\n1,2\n", params={"type": "teleport"}), 422
    )
    assert problem["field"] == "type"
    assert "teleport" in problem["detail"]
    for known in ("validate", "geocode", "reverse_geocode", "lookup", "road_match"):
        assert known in problem["detail"]


def test_missing_job_type(shared_client: httpx.Client) -> None:
    response = shared_client.post(
        "/v1/jobs", content=b"lat,lon\n1,2\n", headers={"Content-Type": "text/csv"}
    )
    assert assert_problem(response, 422)["field"] == "type"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"target_type": "teleport"}, "options.target_type"),
        ({"target_type": "reverse_geocode", "speed": "fast"}, "options.speed"),
        ({"output_format": "xlsx"}, "options.output_format"),
    ],
)
def test_invalid_options(shared_client: httpx.Client, options: dict[str, str], field: str) -> None:
    response = post_upload(
        shared_client, b"lat,lon\n1,2\n", params={"options": json.dumps(options)}
    )
    problem = assert_problem(response, 422)
    assert [error["field"] for error in problem["errors"]] == [field]
    assert field in problem["detail"]


def test_options_that_are_not_json(shared_client: httpx.Client) -> None:
    response = post_upload(shared_client, b"lat,lon\n1,2\n", params={"options": "{target_type"})
    assert assert_problem(response, 422)["field"] == "options"


def test_bad_query_values(shared_client: httpx.Client) -> None:
    for params, field in [
        ({"priority": "high"}, "priority"),
        ({"priority": "101"}, "priority"),
        ({"start": "maybe"}, "start"),
        ({"delimiter": ";;"}, "delimiter"),
        ({"metadata": '{"team": 5}'}, "metadata"),
    ]:
        response = post_upload(shared_client, b"lat,lon\n1,2\n", params=params)
        assert assert_problem(response, 422)["field"] == field, params


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": ',
        b"[1, 2]",
        b'{"type": "validate"}',
        b'{"type": "validate", "input": {}, "x": 1}',
    ],
    ids=["truncated", "array", "no-input", "unknown-member"],
)
def test_malformed_json_body(shared_client: httpx.Client, body: bytes) -> None:
    response = shared_client.post(
        "/v1/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(response, 422, slug="invalid-input")
    assert problem["errors"], problem


def test_json_input_needs_exactly_one_source(shared_client: httpx.Client) -> None:
    for job_input in ({}, {"url": "https://example.org/a.csv", "file_name": "a.csv"}):
        response = shared_client.post(
            "/v1/jobs", json={"type": "validate", "input": job_input, "options": {}}
        )
        assert assert_problem(response, 422)["field"] == "input", job_input


def test_json_input_of_a_file_that_is_not_stored(shared_client: httpx.Client) -> None:
    for name in ("nothing-here.csv", "../../etc/passwd.csv"):
        response = shared_client.post(
            "/v1/jobs", json={"type": "validate", "input": {"file_name": name}}
        )
        assert assert_problem(response, 422)["field"] == "input.file_name", name


# --- unknown jobs and impossible transitions --------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("DELETE", ""),
        ("POST", "/start"),
        ("POST", "/stop"),
        ("POST", "/cancel"),
        ("GET", "/results"),
        ("GET", "/errors"),
    ],
)
def test_unknown_job_id(shared_client: httpx.Client, method: str, suffix: str) -> None:
    job_id = "00000000-0000-4000-8000-000000000000"
    response = shared_client.request(method, f"/v1/jobs/{job_id}{suffix}")
    problem = assert_problem(response, 404, slug="not-found")
    assert job_id in problem["detail"]


def test_unknown_route_is_a_problem_too(shared_client: httpx.Client) -> None:
    assert_problem(shared_client.get("/v1/nothing"), 404)
    assert_problem(shared_client.put("/v1/jobs"), 405)


def test_start_a_cancelled_job(shared_client: httpx.Client) -> None:
    job = create_job(shared_client, make_csv(10).body, start=False)
    cancelled = shared_client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    for action in ("start", "stop", "cancel"):
        problem = assert_problem(
            shared_client.post(f"/v1/jobs/{job['id']}/{action}"), 409, slug="invalid-transition"
        )
        assert problem["current_status"] == "cancelled"


def test_stop_a_created_job(shared_client: httpx.Client) -> None:
    job = create_job(shared_client, make_csv(10).body, start=False)
    problem = assert_problem(shared_client.post(f"/v1/jobs/{job['id']}/stop"), 409)
    assert problem["current_status"] == "created"


def test_statuses_request_validation(shared_client: httpx.Client) -> None:
    for body in ({"job_ids": []}, {"job_ids": ["a"], "wait": -5}, {"job_ids": ["a"], "x": 1}):
        assert_problem(shared_client.post("/v1/jobs/statuses", json=body), 422)


def test_list_validation(shared_client: httpx.Client) -> None:
    for params, field in [
        ({"status": "sleeping"}, "status"),
        ({"metadata": "no-colon"}, "metadata"),
        ({"page_token": "bogus"}, "page_token"),
    ]:
        response = shared_client.get("/v1/jobs", params=params)
        assert assert_problem(response, 422)["field"] == field, params
    assert_problem(shared_client.get("/v1/jobs", params={"page_size": 0}), 422)
    unknown = f"/v1/jobs/{uuid.uuid4()}/results"
    assert_problem(shared_client.get(unknown, params={"format": "xlsx"}), 422)
