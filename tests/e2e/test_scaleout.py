"""The scale-out topology end to end, under faults.

A private PostgreSQL, moto's S3 server behind a proxy that can answer 503, a Dask scheduler
with two single-threaded workers, two API replicas (``serve --no-scheduler``) and two
schedulers (``geobatch scheduler``), all separate processes. One 200,000-record job runs
while, one after the other, a Dask worker is SIGKILLed, one scheduler is SIGKILLed,
PostgreSQL is restarted and S3 answers 503 for a while. The job must end with every record
exactly once, results and error report equal to what the engine gives on a clean run, its
statistics exact and each of its webhooks delivered once.

The job type is ``validate``: it runs the whole path (upload, split, chunk parts, leases,
commits, assembly) at a cost per record low enough for a 2-core CI machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.e2e.helpers import create_job, get_job, make_csv
from tests.e2e.receiver import Receiver, serve_receiver
from tests.e2e.topology import (
    PrivatePostgres,
    Service,
    dask_command,
    dask_worker_processes,
    geobatch_command,
)
from tests.s3 import CREDENTIALS, FaultyProxy, create_bucket, moto_server

pytest.importorskip("s3fs")
pytest.importorskip("distributed")
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORDS = 200_000
MALFORMED = 20
OUTAGE_SECONDS = 2.0


@dataclass
class Topology:
    api: list[str]
    postgres: PrivatePostgres
    proxy: FaultyProxy
    dask_workers: Service
    schedulers: list[Service]
    receiver: Receiver
    logs: list[Path] = field(default_factory=list)

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in self.logs)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory, releases_root: Path) -> Iterator[Topology]:
    folder = tmp_path_factory.mktemp("topology")
    postgres = PrivatePostgres()
    postgres.init()
    services: list[Service] = []
    receivers = serve_receiver(name="127.0.0.1")
    receiver = next(receivers)
    try:
        with moto_server(folder / "moto.log") as s3, FaultyProxy(s3) as proxy:
            bucket = create_bucket(s3)
            scheduler_port = free_port()
            env = {
                **__import__("os").environ,
                **CREDENTIALS,
                "AWS_ENDPOINT_URL": proxy.endpoint,
                "GEOBATCH_DATABASE_URL": postgres.url,
                "GEOBATCH_STORAGE_URL": f"s3://{bucket}/geobatch",
                "GEOBATCH_RELEASES_DIR": str(releases_root),
                "GEOBATCH_EXECUTOR": f"dask://127.0.0.1:{scheduler_port}",
                "GEOBATCH_WORKERS": "2",
                "GEOBATCH_CHUNK_SIZE": "10000",
                "GEOBATCH_LEASE_SECONDS": "4",
                "GEOBATCH_MAX_CHUNK_ATTEMPTS": "10",
                "GEOBATCH_LOG_FORMAT": "json",
                "GEOBATCH_URL_ALLOWLIST": "127.0.0.1/32",
            }
            dask_scheduler = Service(
                "dask-scheduler",
                dask_command(
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(scheduler_port),
                    "--no-dashboard",
                ),
                env,
                folder,
            )
            dask_workers = Service(
                "dask-workers",
                dask_command(
                    "worker",
                    f"tcp://127.0.0.1:{scheduler_port}",
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ),
                env,
                folder,
            )
            api_ports = [free_port(), free_port()]
            apis = [
                Service(
                    f"api-{n}",
                    geobatch_command("serve", "--no-scheduler", "--port", str(port)),
                    {**env, "GEOBATCH_DATA_DIR": str(folder / f"api-{n}")},
                    folder,
                )
                for n, port in enumerate(api_ports)
            ]
            scheduler_ports = [free_port(), free_port()]
            schedulers = [
                Service(
                    f"scheduler-{n}",
                    geobatch_command("scheduler", "--port", str(port)),
                    {**env, "GEOBATCH_DATA_DIR": str(folder / f"scheduler-{n}")},
                    folder,
                )
                for n, port in enumerate(scheduler_ports)
            ]
            services = [dask_scheduler, dask_workers, *apis, *schedulers]
            for service in services:
                service.start()
            for service, port in zip(apis + schedulers, api_ports + scheduler_ports, strict=True):
                service.wait_http(f"http://127.0.0.1:{port}/readyz")
            yield Topology(
                api=[f"http://127.0.0.1:{port}" for port in api_ports],
                postgres=postgres,
                proxy=proxy,
                dask_workers=dask_workers,
                schedulers=schedulers,
                receiver=receiver,
                logs=[service.log for service in services],
            )
    finally:
        for service in reversed(services):
            service.stop()
        postgres.remove()
        receivers.close()


def _job_or_none(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    """The job, or None while the database is down (the replica answers 5xx meanwhile)."""
    try:
        reply = client.get(f"/v1/jobs/{job_id}")
    except httpx.TransportError:
        return None
    return reply.json() if reply.status_code == 200 else None


def _wait_processed(client: httpx.Client, job_id: str, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job_or_none(client, job_id)
        if job is not None:
            assert job["status"] in ("queued", "running"), f"the job ended before a fault: {job}"
            if job["statistics"]["processed_records"] >= at_least:
                return int(job["statistics"]["processed_records"])
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {at_least} records in {timeout}s")


def test_a_large_job_survives_worker_scheduler_database_and_storage_faults(
    topology: Topology,
) -> None:
    data = make_csv(RECORDS, malformed=MALFORMED)
    hook = {
        "url": topology.receiver.url,
        "events": ["job.running", "job.succeeded"],
    }
    with (
        httpx.Client(base_url=topology.api[0], timeout=120) as first,
        httpx.Client(base_url=topology.api[1], timeout=120) as second,
    ):
        job = create_job(first, data.body, params={"callback": json.dumps(hook)})
        job_id = job["id"]
        fault_at: dict[str, int] = {}
        # The faults follow one another from the first committed chunk on, each while the
        # job is still running (recorded: the records processed when it struck).
        fault_at["dask worker killed"] = _wait_processed(second, job_id, 1)
        dask_worker_processes(topology.dask_workers)[0].kill()

        fault_at["s3 answering 503"] = _wait_processed(second, job_id, 1)
        with topology.proxy.outage(at_least=OUTAGE_SECONDS, refusals=3):
            pass

        fault_at["scheduler killed"] = _wait_processed(second, job_id, 1)
        topology.schedulers[0].kill()

        fault_at["postgres restarted"] = _wait_processed(second, job_id, 1)
        topology.postgres.restart()

        deadline = time.monotonic() + 300
        while (current := _job_or_none(second, job_id)) is None or current["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, f"job did not finish:\n{topology.tail()}"
            time.sleep(0.1)
        done = get_job(first, job_id)
        assert done["status"] == "succeeded", f"{done}\n{topology.tail()}"
        assert all(n < RECORDS for n in fault_at.values()), fault_at  # every fault hit mid-job
        assert topology.proxy.refused > 0

        data.check_statistics(done)
        data.check_outputs(second, job_id)

    topology.receiver.wait_for(lambda: len(topology.receiver.requests) >= 2, timeout=30)
    time.sleep(1.0)  # a duplicate would arrive about now
    sent = Counter(json.loads(r.body)["type"] for r in topology.receiver.requests)
    assert sent == Counter({"job.running": 1, "job.succeeded": 1})


def test_a_long_poll_on_one_replica_wakes_when_a_job_finishes_through_the_other(
    topology: Topology,
) -> None:
    with (
        httpx.Client(base_url=topology.api[0], timeout=60) as first,
        httpx.Client(base_url=topology.api[1], timeout=60) as second,
    ):
        job_id = create_job(first, make_csv(10).body, start=False)["id"]
        answer: dict[str, Any] = {}

        def long_poll() -> None:
            reply = second.post(
                "/v1/jobs/statuses",
                json={"job_ids": [job_id], "wait": 30, "poll_interval": 30},
            )
            answer["at"] = time.monotonic()
            answer["reply"] = reply

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(1.0)  # the poll is waiting
        assert first.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        cancelled_at = time.monotonic()
        poller.join(timeout=40)

    assert answer["reply"].status_code == 200, answer["reply"].text
    assert [j["status"] for j in answer["reply"].json()["jobs"]] == ["cancelled"]
    assert answer["at"] - cancelled_at < 0.5
