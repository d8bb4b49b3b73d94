"""The Procfile, run with honcho as the README says: the whole topology starts, a job
submitted to one API replica finishes, and everything stops cleanly on SIGTERM.

PostgreSQL is a private throwaway server (the Procfile assumes one running); the ports come
from an env file laid over ``deploy/local.env``, so the test runs beside anything else.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from geobatch.reference import Release
from tests.e2e.conftest import free_port
from tests.e2e.helpers import create_job, csv_bytes, download, wait_for_status
from tests.e2e.topology import PrivatePostgres, _wait

pytest.importorskip("honcho")
pytest.importorskip("s3fs")
pytest.importorskip("distributed")
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ("s3", "dask-scheduler", "dask-workers", "api-1", "api-2", "scheduler-1", "scheduler-2")


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.init()
    try:
        yield server
    finally:
        server.remove()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_honcho_starts_the_topology_runs_a_job_and_stops_cleanly(
    postgres: PrivatePostgres, helsinki: Release, releases_root: Path, tmp_path: Path
) -> None:
    ports = {
        name: free_port() for name in ("S3", "DASK", "API_1", "API_2", "SCHEDULER_1", "SCHEDULER_2")
    }
    overrides = {
        "GEOBATCH_DATABASE_URL": postgres.url,
        "GEOBATCH_RELEASES_DIR": str(releases_root),
        "GEOBATCH_DATA_DIR": str(tmp_path / "data"),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['S3']}",
        "GEOBATCH_EXECUTOR": f"dask://127.0.0.1:{ports['DASK']}",
        **{f"GEOBATCH_{name}_PORT": str(port) for name, port in ports.items()},
    }
    env_file = tmp_path / "ports.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in overrides.items()))
    bin_dir = Path(sys.executable).parent
    log = tmp_path / "honcho.log"
    with log.open("wb") as sink:
        honcho = subprocess.Popen(
            [str(bin_dir / "honcho"), "-e", f"deploy/local.env,{env_file}", "start"],
            cwd=ROOT,
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        for name in ("API_1", "API_2", "SCHEDULER_1", "SCHEDULER_2"):
            url = f"http://127.0.0.1:{ports[name]}/readyz"
            _wait(functools.partial(_ready, url), name, honcho, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['API_1']}", timeout=60) as api:
            rows = [["recId", "searchText"], ["a", "Kaivokatu 1, 00100 Helsinki"], ["b", ""]]
            options = {"release": helsinki.manifest.id}
            job = create_job(
                api, csv_bytes(rows), params={"type": "geocode", "options": json.dumps(options)}
            )
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['API_2']}", timeout=60) as other:
            done = wait_for_status(other, job["id"], "succeeded", timeout=120)
            assert done["statistics"]["processed_records"] == 2
            assert [r["recId"] for r in download(other, job["id"])] == ["a"]
            assert [e["code"] for e in download(other, job["id"], errors=True)] == ["empty_query"]
        children = psutil.Process(honcho.pid).children(recursive=True)
        assert len(children) >= len(PROCESSES)
    finally:
        honcho.send_signal(signal.SIGTERM)
        try:
            honcho.wait(timeout=60)
        except subprocess.TimeoutExpired:
            honcho.kill()
    output = log.read_text()
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {[p.pid for p in alive]}\n{output[-3000:]}"
    assert "SIGKILL" not in output, output[-3000:]  # each stopped on SIGTERM, none was forced
    for name in PROCESSES:
        assert f"{name}.1 stopped" in output, output[-3000:]
