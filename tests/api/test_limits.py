"""Rate limits per key and budget, and per-tenant quotas, over real HTTP."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from limits import parse

from geobatch.api.ratelimit import Budget, KeyedLimit, RateLimiter
from geobatch.config import Settings
from geobatch.errors import TooManyRequests
from geobatch.jobs.keys import Role
from tests.api.live import LiveServer, live_server
from tests.e2e.conftest import free_port
from tests.e2e.helpers import VALIDATE_PARAMS

CSV = b"recId,lat,lon\n" + b"".join(b"%d,60.17,24.94\n" % i for i in range(30))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("limits"),
        rate_limit_create="3/minute",
        rate_limit_download="2/minute",
        rate_limit="200/minute",
        max_running_jobs=1,
        max_stored_bytes=len(CSV) * 4 + 10,
    )
    with live_server(settings) as live:
        yield live


def _key(server: LiveServer, tenant: str) -> dict[str, str]:
    return {"X-API-Key": server.platform.keys.create(tenant, Role.MEMBER)[1]}


def _create(server: LiveServer, headers: dict[str, str], start: bool) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/jobs",
        params={**VALIDATE_PARAMS, "start": str(start).lower()},
        content=CSV,
        headers={**headers, "Content-Type": "text/csv"},
    )


def _assert_429(reply: httpx.Response, slug: str) -> None:
    assert reply.status_code == 429, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["type"].endswith("/" + slug)
    assert int(reply.headers["retry-after"]) >= 1


def test_creating_jobs_has_its_own_budget(server: LiveServer) -> None:
    headers = _key(server, "budget")
    for _ in range(2):
        assert _create(server, headers, start=False).status_code == 201
    # reads are not counted against job creation
    for _ in range(10):
        assert httpx.get(f"{server.url}/v1/jobs", headers=headers).status_code == 200
    assert _create(server, headers, start=False).status_code == 201
    refused = _create(server, headers, start=False)
    _assert_429(refused, "too-many-requests")
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["ratelimit-reset"]) <= 60
    # another key of the same tenant has a budget of its own
    assert _create(server, _key(server, "budget"), start=False).status_code == 201


def test_downloads_have_their_own_budget(server: LiveServer) -> None:
    headers = _key(server, "downloads")
    job = _create(server, headers, start=False).json()
    for _ in range(2):
        assert httpx.get(f"{server.url}/v1/jobs/{job['id']}/errors", headers=headers).status_code
    _assert_429(
        httpx.get(f"{server.url}/v1/jobs/{job['id']}/results", headers=headers),
        "too-many-requests",
    )
    assert httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=headers).status_code == 200


def test_running_jobs_are_limited_per_tenant(server: LiveServer) -> None:
    headers = _key(server, "running")
    assert _create(server, headers, start=True).status_code == 201
    _assert_429(_create(server, headers, start=True), "quota-exceeded")
    waiting = _create(server, headers, start=False).json()
    _assert_429(
        httpx.post(f"{server.url}/v1/jobs/{waiting['id']}/start", headers=headers),
        "quota-exceeded",
    )
    # another tenant is not held back
    assert _create(server, _key(server, "running-too"), start=True).status_code == 201


def test_here_jobs_count_against_the_running_quota(server: LiveServer) -> None:
    headers = _key(server, "running-here")
    assert _create(server, headers, start=True).status_code == 201
    refused = httpx.post(
        f"{server.url}/v7/batch/jobs",
        params={"serviceHrn": "hrn:here:service::olp-here:search-lookup-7"},
        content=b"recId|id\na|osm:node/1\n",
        headers={"Authorization": "Bearer " + headers["X-API-Key"], "X-Request-ID": "r-1"},
    )
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-request-id"] == "r-1"
    body = refused.json()
    assert set(body) == {"title", "status", "code", "cause", "action", "correlationId"}
    assert body["status"] == 429
    assert "quota is 1" in body["cause"]


def test_stored_bytes_are_limited_per_tenant_and_nothing_is_left(server: LiveServer) -> None:
    # each key may create three jobs a minute: two keys of the tenant share its storage
    first, second, headers = (_key(server, "storage") for _ in range(3))
    for key in (first, first, second, second):
        assert _create(server, key, start=False).status_code == 201
    before = server.platform.storage.list("jobs")
    refused = _create(server, headers, start=False)
    assert refused.status_code == 413, refused.text
    assert refused.json()["type"].endswith("/storage-quota-exceeded")
    assert server.platform.storage.list("jobs") == before
    listed = httpx.get(f"{server.url}/v1/jobs", headers=headers).json()["jobs"]
    assert len(listed) == 4


def test_job_polls_have_a_per_job_limit(tmp_path_factory: pytest.TempPathFactory) -> None:
    limiter = RateLimiter(Settings(_env_file=None))  # type: ignore[call-arg]
    two_per_second = parse("2/second")
    limiter.hit_job_poll(two_per_second, "job-1")
    limiter.hit_job_poll(two_per_second, "job-1")
    limiter.hit_job_poll(two_per_second, "job-2")
    with pytest.raises(TooManyRequests) as refused:
        limiter.hit_job_poll(two_per_second, "job-1")
    assert refused.value.extra["retry_after"] == 1
    assert refused.value.extra["headers"]["RateLimit-Limit"] == "2"


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path_factory.mktemp("tight"), rate_limit="2/minute"
    )
    with live_server(settings) as live:
        yield live


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/v1/jobs", "application/problem+json"),
        ("/v7/batch/jobs", "application/json"),
        ("/maps/orbis/platform/gem/jobs", "application/json"),
        ("/ogcapi/processes", "application/problem+json"),
        ("/immuta/jobs/search", "application/problem+json"),
    ],
)
def test_every_api_answers_a_limit_with_its_headers(
    tight_server: LiveServer, path: str, media_type: str
) -> None:
    """A compatible API answers 429 in its own error shape, with the same headers as ``/v1``."""
    key = tight_server.platform.keys.create("tight", Role.READ)[1]
    headers = {"X-API-Key": key, "tomtom-api-key": key}
    for _ in range(2):
        assert httpx.get(tight_server.url + path, headers=headers).status_code == 200
    refused = httpx.get(tight_server.url + path, headers=headers)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == media_type
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-limit"] == "2"
    assert refused.headers["ratelimit-remaining"] == "0"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private Redis server on a free port; skipped where redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir"]
    process = subprocess.Popen([*command, str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_replicas_share_their_limits_through_redis(redis_url: str) -> None:
    """Two replicas (two limiters) with the same Redis count one budget per key."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url=redis_url, rate_limit="3/minute", rate_limit_create="1/minute"
    )
    first, second = RateLimiter(settings), RateLimiter(settings)
    first.hit("key-1")
    second.hit("key-1")
    first.hit("key-1")
    with pytest.raises(TooManyRequests):
        second.hit("key-1")
    second.hit("key-2")  # each key has a budget of its own ...
    first.hit("key-1", Budget.CREATE)  # ... and so has each kind of request
    with pytest.raises(TooManyRequests):
        second.hit("key-1", Budget.CREATE)
    polls = [KeyedLimit("2/second", settings, "twice a second") for _ in range(2)]
    polls[0].hit("job-1")
    polls[1].hit("job-1")
    with pytest.raises(TooManyRequests):
        polls[0].hit("job-1")
