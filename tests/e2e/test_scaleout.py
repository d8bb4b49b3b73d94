"""The scale-out topology end to end, under faults.

A private PostgreSQL, moto's S3 server behind a proxy that can answer 503, a Dask scheduler
with two single-threaded workers, two API replicas (``serve --no-scheduler``) and two
schedulers (``geobatch scheduler``), all separate processes. Inputs, chunk parts, results and
the reference release live in S3: every process resolves or mirrors the release from there.

One geocode job (addresses sampled from the default release with a fixed seed, so the answers
are real) runs while, one after the other, a Dask worker is SIGKILLed, S3 answers 503 for a
while, one scheduler is SIGKILLed and PostgreSQL is restarted. The job must end with every
record exactly once, results and error report equal to a clean single-process run of the
engine over the whole input, its statistics exact and each of its webhooks delivered once.

``GEOBATCH_SCALEOUT_RECORDS`` sets the job's size: 20,000 records by default (about a minute
on two cores); the issue's full run is ``GEOBATCH_SCALEOUT_RECORDS=200000``. Chunks are a
twentieth of the job, so every fault strikes while chunks are still to come.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from geobatch.engines.result import ERROR_COLUMNS
from geobatch.io.inputs import InputFormat, InputSpec, iter_batches
from geobatch.jobs.releases import publish_release
from geobatch.jobs.types import job_type
from geobatch.reference import Release, ReleaseStore
from tests.e2e.conftest import free_port
from tests.e2e.helpers import check_exactly_once, create_job, download, get_job, make_csv
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

RECORDS = int(os.environ.get("GEOBATCH_SCALEOUT_RECORDS", "20000"))
CHUNK_SIZE = max(100, RECORDS // 20)
MALFORMED = 20
SEED = 20
OUTAGE_SECONDS = 2.0


@dataclass
class GeocodeInput:
    """A geocode job's CSV: release addresses written several ways, some blank, some broken."""

    body: bytes
    ids: list[str]
    malformed: set[str] = field(default_factory=set)


def _address_text(row: dict[str, Any], form: int) -> str:
    street = " ".join(p for p in (row["street"], row["housenumber"]) if p)
    place = " ".join(p for p in (row["postcode"], row["city"]) if p)
    if form == 0:
        return ", ".join(p for p in (street, place) if p)
    if form == 1:
        return ", ".join(p for p in (street, row["city"]) if p)
    if form == 2:
        return street
    return ", ".join(p for p in (street, place) if p).lower()


def geocode_input(release: Release, count: int, *, malformed: int, seed: int) -> GeocodeInput:
    """``count`` records drawn (with ``seed``) from the release's own addresses: as free text
    in four spellings or as address columns; every 997th one blank (``empty_query``) and
    ``malformed`` rows with a wrong field count spread through the file."""
    addresses = release.table("addresses").select(["street", "housenumber", "postcode", "city"])
    rows = [row for row in addresses.to_pylist() if row["street"]]
    rng = random.Random(seed)
    bad_at = {(k + 1) * count // (malformed + 1) for k in range(malformed)}
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["recId", "searchText", "street", "houseNumber", "postalCode", "city"])
    result = GeocodeInput(body=b"", ids=[])
    for i in range(1, count + 1):
        rec = f"g{i}"
        result.ids.append(rec)
        row = rng.choice(rows)
        if i in bad_at:
            result.malformed.add(rec)
            text.write(f"{rec},{row['street']}\n")
        elif i % 997 == 0:
            writer.writerow([rec, "", "", "", "", ""])
        elif i % 5 == 0:
            fields = [row["street"], row["housenumber"], row["postcode"], row["city"]]
            writer.writerow([rec, "", *(value or "" for value in fields)])
        else:
            writer.writerow([rec, _address_text(row, i % 4), "", "", "", ""])
    result.body = text.getvalue().encode()
    return result


@dataclass(frozen=True)
class CleanRun:
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    statistics: dict[str, int]


def clean_run(body: bytes, release: Release, options: dict[str, Any]) -> CleanRun:
    """The job in this one process: the input read as a worker reads it, in a single batch,
    and geocoded by the engine in one call (no chunks, no scheduler, no storage)."""
    spec = InputSpec(format=InputFormat.CSV)
    (batch,) = iter_batches(io.BytesIO(body), spec, len(body))
    kind = job_type("geocode")
    outcome = kind.run(batch.records, kind.parse_options(options), release)
    tally = kind.tally(outcome)
    errors = pa.concat_tables(
        [batch.errors.cast(ERROR_COLUMNS), outcome.errors.cast(ERROR_COLUMNS)]
    ).sort_by("_ordinal")

    def public(table: pa.Table) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in row.items() if not k.startswith("_")} for row in table.to_pylist()
        ]

    total = batch.records.num_rows + batch.errors.num_rows
    return CleanRun(
        results=public(outcome.results),
        errors=public(errors),
        statistics={
            "total_records": total,
            "processed_records": total,
            "successful_records": tally.successful,
            "failed_records": errors.num_rows,
            "no_match_records": tally.no_match,
        },
    )


@dataclass
class Topology:
    api: list[str]
    postgres: PrivatePostgres
    proxy: FaultyProxy
    dask_workers: Service
    schedulers: list[Service]
    receiver: Receiver
    release: Release
    release_cache: Path
    logs: list[Path] = field(default_factory=list)

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in self.logs)


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, session_store: ReleaseStore, helsinki: Release
) -> Iterator[Topology]:
    folder = tmp_path_factory.mktemp("topology")
    postgres = PrivatePostgres()
    postgres.init()
    services: list[Service] = []
    receivers = serve_receiver(name="127.0.0.1")
    receiver = next(receivers)
    try:
        with moto_server(folder / "moto.log") as s3, FaultyProxy(s3) as proxy:
            bucket = create_bucket(s3)
            releases_url = f"s3://{bucket}/releases"
            publish_release(
                session_store,
                helsinki.manifest.id,
                releases_url,
                endpoint_url=s3,
                key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            )
            # Every process of this one machine mirrors into the same cache; the session's
            # releases folder is not shared with them.
            release_cache = folder / "release-cache"
            scheduler_port = free_port()
            env = {
                **os.environ,
                **CREDENTIALS,
                "AWS_ENDPOINT_URL": proxy.endpoint,
                "GEOBATCH_DATABASE_URL": postgres.url,
                "GEOBATCH_STORAGE_URL": f"s3://{bucket}/geobatch",
                "GEOBATCH_RELEASES_URL": releases_url,
                "GEOBATCH_RELEASES_DIR": str(release_cache),
                "GEOBATCH_EXECUTOR": f"dask://127.0.0.1:{scheduler_port}",
                "GEOBATCH_WORKERS": "2",
                "GEOBATCH_CHUNK_SIZE": str(CHUNK_SIZE),
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
                release=helsinki,
                release_cache=release_cache,
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


def _wait_processed(
    client: httpx.Client, job_id: str, at_least: int, timeout: float = 120 + RECORDS / 500
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job_or_none(client, job_id)
        if job is not None:
            assert job["status"] in ("queued", "running"), f"the job ended before a fault: {job}"
            if job["statistics"]["processed_records"] >= at_least:
                return int(job["statistics"]["processed_records"])
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {at_least} records in {timeout}s")


@pytest.mark.timeout(300 + RECORDS // 100)
def test_a_geocode_job_survives_worker_scheduler_database_and_storage_faults(
    topology: Topology,
) -> None:
    data = geocode_input(topology.release, RECORDS, malformed=MALFORMED, seed=SEED)
    options = {"output_format": "parquet"}
    hook = {"url": topology.receiver.url, "events": ["job.running", "job.succeeded"]}
    started = time.monotonic()
    with (
        httpx.Client(base_url=topology.api[0], timeout=120) as first,
        httpx.Client(base_url=topology.api[1], timeout=120) as second,
    ):
        job = create_job(
            first,
            data.body,
            params={
                "type": "geocode",
                "options": json.dumps(options),
                "callback": json.dumps(hook),
            },
        )
        job_id = job["id"]
        # The release was resolved in S3 (no release is published anywhere else).
        assert job["options"]["release"] == topology.release.manifest.id
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

        deadline = time.monotonic() + 600
        while (current := _job_or_none(second, job_id)) is None or current["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, f"job did not finish:\n{topology.tail()}"
            time.sleep(0.1)
        seconds = time.monotonic() - started
        done = get_job(first, job_id)
        assert done["status"] == "succeeded", f"{done}\n{topology.tail()}"
        assert all(n < RECORDS for n in fault_at.values()), fault_at  # every fault hit mid-job
        assert topology.proxy.refused > 0
        results = download(second, job_id)
        errors = download(second, job_id, errors=True)

    print(f"{RECORDS:,} geocoded through four faults in {seconds:.0f} s; faults at {fault_at}")
    # Workers mapped a local copy mirrored from S3.
    assert (topology.release_cache / topology.release.manifest.id / ".mirror.json").is_file()
    check_exactly_once(
        list(dict.fromkeys(str(row["recId"]) for row in results)) + [e["recId"] for e in errors],
        data.ids,
    )
    clean = clean_run(data.body, topology.release, options)
    assert {e["recId"] for e in clean.errors if e["code"] == "malformed_row"} == data.malformed
    assert clean.statistics["successful_records"] > RECORDS // 2  # real addresses are found
    stats = done["statistics"]
    assert {key: stats[key] for key in clean.statistics} == clean.statistics
    assert errors == clean.errors
    assert len(results) == len(clean.results)
    assert results == clean.results

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
