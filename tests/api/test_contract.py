"""The OpenAPI document tells the truth: schemathesis runs every check against a live server.

Every operation of ``/openapi.json`` (compatible APIs included, as they are served by the
same application) gets schema-valid and schema-invalid requests, with and without a key;
each answer's status, media type, headers and body must be the ones the document declares.
The run is bounded (fixed seed, few examples per operation: see schemathesis.toml) to stay
within a minute or two.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from geobatch.api.contract import SAFE_POSTS
from geobatch.config import Settings
from geobatch.reference import Release
from tests.api.live import LiveServer, live_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
KEY = "contract-test-key"
WORKERS = 1
"""Schemathesis runs one worker thread. With two, both threads' first use of a filtered
strategy has Hypothesis parse a large source file to describe a lambda; on CPython 3.11 the AST
constructor keeps its recursion count in state the threads share (python/cpython#106905), so
the two parses now and then fail with ``SystemError: AST constructor recursion depth
mismatch``, an internal error of the run rather than a finding about the API. The nesting of
generated bodies plays no part. One thread costs a few seconds of wall time here."""
ROAD = {
    "type": "Feature",
    "properties": {},
    "geometry": {"type": "LineString", "coordinates": [[24.941, 60.168], [24.943, 60.169]]},
}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, releases_root: Path, helsinki: Release
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("contract")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=folder,
        releases_dir=releases_root,
        api_keys={KEY: "contract"},
        long_poll_max_seconds=1,
    )
    with live_server(settings) as live:
        # Each synchronous endpoint loads its index on first use: do that before timing answers.
        headers = {"X-API-Key": KEY}
        for path in ("/v1/geocode?q=Mannerheimintie", "/v1/reverse?at=60.17,24.94"):
            httpx.get(live.url + path, headers=headers, timeout=120).raise_for_status()
        httpx.get(live.url + "/v1/lookup?id=osm:node/1", headers=headers, timeout=120)
        httpx.post(
            live.url + "/v1/match/roads",
            json={"type": "FeatureCollection", "features": [ROAD]},
            headers={**headers, "Content-Type": "application/geo+json"},
            timeout=120,
        ).raise_for_status()
        yield live


def test_schemathesis_finds_no_failure(server: LiveServer, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        "20261206",
        "--workers",
        str(WORKERS),
        "--header",
        f"X-API-Key: {KEY}",
        "--header",
        f"tomtom-api-key: {KEY}",  # GEM's own key header
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]


def test_a_wrong_method_answers_405_with_every_allowed_method(server: LiveServer) -> None:
    headers = {"X-API-Key": KEY}
    job_path = "/v1/jobs/00000000-0000-4000-8000-000000000000"
    for path, allowed in (
        ("/v1/jobs", "GET, POST"),
        (job_path, "DELETE, GET"),
        ("/v1/jobs/statuses", "POST"),
    ):
        reply = httpx.put(server.url + path, headers=headers)
        assert reply.status_code == 405
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["allow"] == allowed


ERROR_MEDIA = {"/v7/": "HereError", "/maps/orbis/platform/gem/": "GemError"}
"""Compatible APIs that answer errors in their own JSON; every other path answers problems."""


def test_every_operation_declares_its_problems(server: LiveServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    for path, item in document["paths"].items():
        shape = next((s for prefix, s in ERROR_MEDIA.items() if path.startswith(prefix)), None)
        for method, operation in item.items():
            responses = operation["responses"]
            if operation.get("security") == []:
                continue
            invalid = "400" if path.startswith("/v7/") else "422"  # HERE's status for it
            for code in ("401", invalid, "429"):
                content = responses[code]["content"]
                if shape is None:
                    assert content == {"application/problem+json": PROBLEM}, (method, path, code)
                else:
                    expected = {"schema": {"$ref": f"#/components/schemas/{shape}"}}
                    assert content == {"application/json": expected}, (method, path, code)
            assert set(responses["429"]["headers"]) >= {"Retry-After", "RateLimit-Reset"}
            if method != "get" and path not in SAFE_POSTS:
                assert "403" in responses, (method, path)


PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}


@pytest.mark.parametrize(
    ("path", "headers", "shape"),
    [
        ("/v7/batch/jobs", {}, {"error", "error_description"}),
        ("/v7/batch/jobs?limit=0", {"X-API-Key": KEY}, {"title", "status", "code", "cause"}),
        ("/maps/orbis/platform/gem/jobs", {}, {"error", "message"}),
        ("/maps/orbis/platform/gem/jobs", {"X-API-Key": KEY}, {"error", "message"}),
        ("/ogcapi/jobs?limit=0", {"X-API-Key": KEY}, {"type", "title", "status", "detail"}),
        ("/immuta/jobs/search?size=0", {"X-API-Key": KEY}, {"type", "title", "status", "detail"}),
    ],
)
def test_compatible_apis_answer_errors_in_their_declared_shape(
    server: LiveServer, path: str, headers: dict[str, str], shape: set[str]
) -> None:
    """The error shapes the document declares are the ones the compatible APIs answer."""
    reply = httpx.get(server.url + path, headers=headers)
    assert reply.status_code in (400, 401, 422), reply.text
    media = "application/json" if shape & {"error", "code"} else "application/problem+json"
    assert reply.headers["content-type"] == media
    assert shape <= set(reply.json())


@pytest.mark.parametrize("value", ["12", "-1.5", "2.225073858507203e-309", "1E3", "inf"])
@pytest.mark.parametrize("path", ["/v1/jobs?created_before=", "/immuta/jobs/search?startDate="])
def test_a_time_written_as_a_number_is_refused(server: LiveServer, path: str, value: str) -> None:
    """The document says ISO 8601 date-time; a number is not read as Unix seconds."""
    headers = {"X-API-Key": KEY}
    assert httpx.get(server.url + path + value, headers=headers).status_code == 422
    assert httpx.get(server.url + path + "2026-01-31T12:00:00Z", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [("/v1/geocode?q=a&postalCode=1&postalCode=2", 422), ("/v7/batch/jobs?limit=1&limit=2", 400)],
)
def test_a_parameter_of_one_value_given_twice_is_refused(
    server: LiveServer, path: str, status: int
) -> None:
    """Not quietly read as the last value: the document declares one."""
    refused = httpx.get(server.url + path, headers={"X-API-Key": KEY})
    assert refused.status_code == status, refused.text
    assert "given 2 times" in refused.text
    assert httpx.get(server.url + path).status_code == 401  # the key is checked first
    repeated_list = "/v1/jobs?status=created&status=queued"
    assert httpx.get(server.url + repeated_list, headers={"X-API-Key": KEY}).status_code == 200
