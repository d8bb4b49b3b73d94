"""One real server per database for all compatible-API tests, with two tenants' keys.

Its releases folder holds only the bundled Helsinki release, so that a foreign client that
cannot name a release (HERE, bulk geocoding) gets the newest one, which is Helsinki.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from geobatch.reference import Release
from tests.e2e.conftest import ServerProcess, serve_on_fresh_database

KEY = "compat-key-a"
OTHER_KEY = "compat-key-b"
API_KEYS = f"{KEY}:tenant-a,{OTHER_KEY}:tenant-b"


def _serve(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    helsinki: Release,
    kind: str,
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp(f"compat-server-{kind}")
    releases = folder / "releases"
    releases.mkdir()
    (releases / helsinki.manifest.id).symlink_to(helsinki.path, target_is_directory=True)
    env = {
        "GEOBATCH_RELEASES_DIR": str(releases),
        "GEOBATCH_API_KEYS": API_KEYS,
        "GEOBATCH_URL_ALLOWLIST": "127.0.0.1/32",
        "GEOBATCH_WORKERS": "1",
    }
    yield from serve_on_fresh_database(request, folder, env, kind)


@pytest.fixture(scope="package")
def sqlite_compat_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, helsinki: Release
) -> Iterator[ServerProcess]:
    yield from _serve(request, tmp_path_factory, helsinki, "sqlite")


@pytest.fixture(scope="package")
def postgresql_compat_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, helsinki: Release
) -> Iterator[ServerProcess]:
    yield from _serve(request, tmp_path_factory, helsinki, "postgresql")


@pytest.fixture(params=["sqlite", "postgresql"])
def compat_server(request: pytest.FixtureRequest) -> ServerProcess:
    """The package's server over the database the test is run for. Each database's server
    is started once and kept for the whole package, whatever order the tests run in: a
    restarted one would load every engine's indexes again on its first jobs."""
    server: ServerProcess = request.getfixturevalue(f"{request.param}_compat_server")
    return server


SQLITE_ONLY = pytest.mark.parametrize("compat_server", ["sqlite"], indirect=True)
"""For tests of what an adapter makes of an engine's answers: the database is no part of
that, and the first job of each engine on a fresh server loads its indexes (seconds)."""


@pytest.fixture
def compat_url(compat_server: ServerProcess) -> str:
    return compat_server.url


@pytest.fixture
def native(compat_url: str) -> Iterator[httpx.Client]:
    """A ``/v1`` client of tenant-a."""
    with httpx.Client(base_url=compat_url, timeout=60, headers={"X-API-Key": KEY}) as http:
        yield http


def poll(read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]) -> Any:
    """Read until ``done`` holds, at most a minute."""
    deadline = time.monotonic() + 60
    while True:
        answer = read()
        if done(answer):
            return answer
        assert time.monotonic() < deadline, f"gave up waiting: {answer}"
        time.sleep(0.1)


def native_results(native: httpx.Client, job_type: str, body: bytes) -> list[dict[str, Any]]:
    """The result rows of a ``/v1`` job over CSV ``body``."""
    job = native.post(
        "/v1/jobs", params={"type": job_type}, content=body, headers={"Content-Type": "text/csv"}
    ).json()
    poll(lambda: native.get(f"/v1/jobs/{job['id']}").json(), lambda j: j["status"] == "succeeded")
    answer = native.get(f"/v1/jobs/{job['id']}/results", params={"format": "csv"})
    return list(csv.DictReader(io.StringIO(answer.text)))
