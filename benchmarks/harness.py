"""Shared by the benchmark scripts: the releases they measure on, and timing whole jobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from geobatch.config import Settings
from geobatch.jobs import InputSource, Job, JobRequest, Platform, open_platform
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm

SHARED_OSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm"


def best_of(repeat: int, work: Callable[[], object]) -> float:
    """The shortest CPU time of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def releases(store: ReleaseStore, shared: tuple[str, ...]) -> list[Release]:
    """The bundled default release, then those of ``shared`` extracts that are present."""
    found = [store.load(ensure_default_release(store).id)]
    for name in shared:
        path = SHARED_OSM / f"{name}.osm.pbf"
        if path.is_file():
            found.append(store.load(import_osm(path, store).id))
    return found


async def file_pieces(path: Path) -> AsyncIterator[bytes]:
    """The file as an upload body, 1 MiB at a time."""
    with path.open("rb") as handle:
        while piece := handle.read(1 << 20):
            yield piece


def run_job(
    platform: Platform, job_type: str, options: dict[str, Any], source: Path
) -> tuple[Job, float, float | None]:
    """Upload a CSV as a job and wait for its end: (job, seconds, seconds until it was split).

    The wait is the long poll's: the job is read again when the platform announces a change,
    not polled, so the waiting costs the cores the job runs on next to nothing.
    """
    request = JobRequest(
        type=job_type,
        input=InputSource(media_type="text/csv", file_name=source.name),
        options=options,
    )

    async def run() -> tuple[Job, float, float | None]:
        started = time.perf_counter()
        split = None
        job, _ = await platform.service.create("bench", request, file_pieces(source))
        while True:
            seen = platform.feed.version
            job = platform.store.get(job.id)
            if split is None and job.statistics.total_records is not None:
                split = time.perf_counter() - started
            if job.status.is_terminal:
                return job, time.perf_counter() - started, split
            await platform.feed.wait(1.0, since=seen)

    return asyncio.run(run())


@dataclass(frozen=True)
class JobTimes:
    """Seconds from create to succeeded of one job: first on a fresh platform, then again."""

    cold: float
    """Includes starting the worker process and building the release's indexes in it."""
    warm: float
    """The job on the same platform afterwards, as a long-running service runs it."""


def job_seconds(
    releases: Path,
    scratch: Path,
    path: Path,
    job_type: str,
    options: dict[str, Any],
    warm_up: Path | None = None,
) -> JobTimes:
    """Time a job on a fresh one-worker platform (cold), then again (warm).

    ``warm_up`` is run first instead, when the job itself should not find its own answers
    remembered from the cold run.
    """
    settings = Settings(
        data_dir=scratch,
        releases_dir=releases,
        workers=1,
        _env_file=None,  # type: ignore[call-arg]
    )
    platform = open_platform(settings)
    times = []
    try:
        for source in (warm_up or path, path):
            job, elapsed, _ = run_job(platform, job_type, options, source)
            if job.status.value != "succeeded":
                raise RuntimeError(f"{job_type} job ended {job.status.value}: {job.error}")
            times.append(elapsed)
    finally:
        platform.close()
    return JobTimes(cold=times[0], warm=times[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(releases: Path, folder: Path, **env: str) -> Iterator[tuple[httpx.Client, int]]:
    """A fresh ``geobatch serve`` with one worker process: a client to it and its pid.

    Only the settings given here reach it (``GEOBATCH_*`` variables of the caller's shell are
    dropped); ``env`` adds more, e.g. ``GEOBATCH_CHUNK_SIZE="5000"``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    variables = {k: v for k, v in os.environ.items() if not k.startswith("GEOBATCH_")}
    variables.update(
        GEOBATCH_DATA_DIR=str(folder / "server"),
        GEOBATCH_RELEASES_DIR=str(releases),
        GEOBATCH_WORKERS="1",
        **env,
    )
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "geobatch", "serve", "--port", str(port)],
            env=variables,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=900) as client:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/readyz").status_code == 200:
                        break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the server did not start; see {log_path}")
                time.sleep(0.1)
            yield client, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def http_job(
    client: httpx.Client, job_type: str, options: dict[str, Any], body: bytes, media_type: str
) -> tuple[float, dict[str, Any]]:
    """Upload a job over HTTP and long-poll until it succeeds: (seconds, the job)."""
    started = time.perf_counter()
    created = client.post(
        "/v1/jobs",
        params={"type": job_type, "options": json.dumps(options)},
        content=body,
        headers={"Content-Type": media_type},
    )
    created.raise_for_status()
    job_id = created.json()["id"]
    while True:
        answer = client.post("/v1/jobs/statuses", json={"job_ids": [job_id], "wait": 60})
        if any(word in answer.text for word in ('"succeeded"', '"failed"', '"cancelled"')):
            break
    seconds = time.perf_counter() - started
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    if job["status"] != "succeeded":
        raise RuntimeError(f"the {job_type} job ended {job['status']}: {job.get('error')}")
    return seconds, job
