"""The OpenAPI document tells the truth: schemathesis runs every check against a live server.

Every operation of ``/openapi.json`` (compatible APIs included, as they are served by the
same application) gets schema-valid and schema-invalid requests, with and without a key;
each answer's status, media type, headers and body must be the ones the document declares.
The run is bounded (fixed seed, few examples per operation) to stay within seconds.
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
        "--max-examples",
        "3",
        "--workers",
        "2",
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


def test_every_operation_declares_its_problems(server: LiveServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if operation.get("security") == []:
                continue
            for code in ("401", "422", "429"):
                content = responses[code]["content"]
                assert "application/problem+json" in content, (method, path, code)
                if path.startswith("/v1/"):
                    assert list(content) == ["application/problem+json"], (method, path, code)
            if method != "get" and path not in SAFE_POSTS:
                assert "403" in responses, (method, path)
