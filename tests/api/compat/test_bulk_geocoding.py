"""The bulk geocoding API under ``/v1/bulk/jobs``: the seed's requests, replayed."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.api.compat.conftest import KEY, OTHER_KEY, SQLITE_ONLY, poll
from tests.e2e.receiver import Receiver, serve_receiver

pytestmark = pytest.mark.e2e

RECORDS = b"recId,searchText\nrec-1,Kaivokatu 1 Helsinki\nrec-2,Mannerheimintie 1 Helsinki\n"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def files_url() -> Iterator[str]:
    """A file server on localhost with the records as gzipped CSV."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = gzip.compress(RECORDS)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/batches/sprint-42.csv"
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver(name="127.0.0.1")


def _get(compat_url: str, job_id: str, key: str | None = KEY) -> httpx.Response:
    headers = {"Accept": "application/json", **({"X-API-Key": key} if key else {})}
    return httpx.get(f"{compat_url}/v1/bulk/jobs/{job_id}", headers=headers)


@SQLITE_ONLY
def test_a_job_in_the_seeds_shape(compat_url: str, files_url: str, receiver: Receiver) -> None:
    receiver.script = [(500, {})]
    created = httpx.post(
        f"{compat_url}/v1/bulk/jobs",
        headers={"X-API-Key": KEY},
        json={
            "input": {"transport": "http", "url": files_url, "compression": "gzip"},
            "callback": {
                "url": receiver.url,
                "secret": "example-secret-03-long-enough",
                "signature_header": "X-Geobridge-Signature",
                "retry_policy": {
                    "max_attempts": 1,
                    "initial_delay_seconds": 30,
                    "strategy": "exponential",
                },
            },
            "options": {"output_format": "geojson", "truncate_at": 5},
            "metadata": {"batch_id": "sprint-42", "requested_by": "ops@example.com"},
        },
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] in ("queued", "processing")
    assert "secret" not in job["callback"]

    def read() -> dict[str, Any]:
        time.sleep(0.5)
        return dict(_get(compat_url, job["id"]).json())

    done = poll(read, lambda j: len(j["delivery_attempts"]) == 1)
    assert done["status"] == "completed"
    assert set(done) >= {
        "id", "status", "submitted_at", "started_at", "input", "callback", "options",
        "metadata", "statistics", "delivery_attempts",
    }  # fmt: skip
    assert done["input"] == {"transport": "http", "url": files_url, "compression": "gzip"}
    assert done["callback"] == {
        "url": receiver.url,
        "signature_header": "X-Geobridge-Signature",
        "retry_policy": {
            "max_attempts": 1,
            "initial_delay_seconds": 30.0,
            "strategy": "exponential",
            **{k: v for k, v in done["callback"]["retry_policy"].items() if k == "jitter"},
        },
    }
    assert done["options"] == {"output_format": "geojson", "truncate_at": 5}
    assert done["metadata"] == {"batch_id": "sprint-42", "requested_by": "ops@example.com"}
    assert done["statistics"] == {
        "total_records": 2,
        "processed_records": 2,
        "successful_records": 2,
        "failed_records": 0,
        "last_record_id": "rec-2",
    }
    [first] = done["delivery_attempts"]
    assert (first["attempt"], first["status_code"]) == (1, 500)
    assert set(first) == {"attempt", "status_code", "delivered_at", "duration_ms", "error"}
    assert "example-secret-03" not in _get(compat_url, job["id"]).text
    features = httpx.get(
        f"{compat_url}/v1/bulk/jobs/{job['id']}/results", headers={"X-API-Key": KEY}
    ).json()["features"]
    assert {f["properties"]["recId"] for f in features} == {"rec-1", "rec-2"}
    assert _get(compat_url, job["id"], OTHER_KEY).status_code == 404


@SQLITE_ONLY
def test_the_seeds_error_answers(compat_url: str, files_url: str) -> None:
    job = httpx.post(
        f"{compat_url}/v1/bulk/jobs",
        headers={"X-API-Key": KEY},
        json={"input": {"url": files_url, "transport": "http", "compression": "gzip"}},
    ).json()
    time.sleep(1.0)
    missing = _get(compat_url, job["id"], key=None)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["title"] == "Unauthorized"
    assert missing.json()["detail"] == "API key is missing or invalid."
    unknown = _get(compat_url, UNKNOWN)
    assert unknown.status_code == 404
    assert unknown.json() == {
        "type": "https://geobatch.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": f"No job exists with id {UNKNOWN}.",
        "instance": f"/v1/bulk/jobs/{UNKNOWN}",
    }
    answers = [_get(compat_url, job["id"]) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    limited = answers[2]
    assert limited.status_code == 429
    assert limited.json()["title"] == "Too Many Requests"
    assert limited.json()["detail"] == "Job status may only be polled twice per second."
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    time.sleep(float(limited.headers["Retry-After"]))
    assert _get(compat_url, job["id"]).status_code == 200
    bad = httpx.post(
        f"{compat_url}/v1/bulk/jobs",
        headers={"X-API-Key": KEY},
        json={"input": {"url": "https://files.example.com/a.csv", "transport": "ftp"}},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
