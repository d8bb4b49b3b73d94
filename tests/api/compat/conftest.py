"""One real server per database for all compatible-API tests, with two tenants' keys.

Its releases folder holds only the bundled Helsinki release, so that a foreign client that
cannot name a release (HERE, bulk geocoding) gets the newest one, which is Helsinki.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from geobatch.reference import Release
from geobatch.reference.indexes.files import STAMP_DIR
from tests.conftest import POSTGRES_ENV
from tests.e2e.conftest import ServerProcess, _module_database

KEY = "compat-key-a"
OTHER_KEY = "compat-key-b"
API_KEYS = f"{KEY}:tenant-a,{OTHER_KEY}:tenant-b"


@pytest.fixture(scope="package")
def compat_releases(tmp_path_factory: pytest.TempPathFactory, helsinki: Release) -> Path:
    """The servers' releases folder: Helsinki alone, with the record that its files were
    checked when the session loaded it (``.verified``), so no server hashes them again."""
    releases = tmp_path_factory.mktemp("compat-releases")
    (releases / helsinki.manifest.id).symlink_to(helsinki.path, target_is_directory=True)
    stamp = f"{helsinki.manifest.id}.json"
    checked = helsinki.path.parent / STAMP_DIR / stamp
    if checked.is_file():
        (releases / STAMP_DIR).mkdir()
        shutil.copyfile(checked, releases / STAMP_DIR / stamp)
    return releases


@pytest.fixture(scope="package")
def compat_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, compat_releases: Path
) -> Iterator[dict[str, ServerProcess]]:
    """A server per database (PostgreSQL's where ``GEOBATCH_TEST_POSTGRES_URL`` is set),
    started together so that their start-ups overlap, and kept for the whole package whatever
    order the tests run in: a restarted one would load every engine's indexes again."""
    env = {
        "GEOBATCH_RELEASES_DIR": str(compat_releases),
        "GEOBATCH_API_KEYS": API_KEYS,
        "GEOBATCH_URL_ALLOWLIST": "127.0.0.1/32",
        "GEOBATCH_WORKERS": "1",
    }
    kinds = ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]
    with contextlib.ExitStack() as stack:
        servers = {}
        for kind in kinds:
            folder = tmp_path_factory.mktemp(f"compat-server-{kind}")
            database = contextlib.contextmanager(_module_database)(request, folder, kind)
            server = ServerProcess(folder / "server", stack.enter_context(database), **env)
            stack.callback(server.reap_orphans)
            stack.callback(server.stop)  # runs first
            server.launch()
            servers[kind] = server
        for server in servers.values():
            server.wait_ready()
        yield servers


@pytest.fixture(params=["sqlite", "postgresql"])
def compat_server(
    request: pytest.FixtureRequest, compat_servers: dict[str, ServerProcess]
) -> ServerProcess:
    """The package's server over the database the test is run for."""
    if request.param not in compat_servers:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL variants are not run")
    return compat_servers[request.param]


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
