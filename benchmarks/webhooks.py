"""Cost and speed of job notifications: the event log, webhook delivery, the event stream.

Run with ``.venv/bin/python benchmarks/webhooks.py [--quick] [--database sqlite|postgresql]``.

1. **Event-log cost** - ``commit_chunk`` and ``transition`` on a fresh job store, with the
   event log written in their transactions (a job with a callback: progress rows and outbox
   rows too) against the same calls with the event writes switched off, in the same run (best
   of 3 interleaved rounds each). The ratio is the price of durable events on the write path.
2. **Delivery throughput** - outbox rows delivered per second by the delivery loop (8 senders)
   to a receiver on localhost (5 events per job; one job's events go out in order, from one
   sender), each signed, claimed, sent and settled with its attempt logged; the baseline is
   the same number of plain POSTs from one httpx client.
3. **Event-stream latency** - from a committed state change to its server-sent event arriving
   at a client over HTTP (in-process server, no polling: the change feed wakes the stream);
   p50/p95 over paired pause/resume transitions, next to a ``GET /healthz`` round trip.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from httpx_sse import connect_sse

from geobatch.api.app import create_app
from geobatch.config import Settings
from geobatch.jobs import open_platform
from geobatch.jobs import store as store_module
from geobatch.jobs.database import Database
from geobatch.jobs.delivery import Deliverer
from geobatch.jobs.models import ChunkCounts, NewJob
from geobatch.jobs.states import JobStatus
from geobatch.jobs.store import JobStore
from geobatch.jobs.tables import webhook_deliveries

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
S = JobStatus


@contextmanager
def database_url(kind: str, folder: Path, name: str) -> Iterator[str]:
    """A fresh database for one part of the run."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / name}.db"
        return
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"geobatch_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def callback(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "secret": "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        "signature_header": "webhook-signature",
        "events": ["job.progress", "job.running", "job.paused", "job.succeeded"],
        "progress_step_percent": 10,
        "retry_policy": {
            "max_attempts": 3,
            "initial_delay_seconds": 1,
            "strategy": "fixed",
            "jitter": 0,
        },
    }


def new_job(store: JobStore, hook: dict[str, Any] | None, tenant: str = "bench") -> str:
    job_id = str(uuid.uuid4())
    store.create(
        NewJob(
            id=job_id,
            tenant=tenant,
            type="validate",
            options={},
            input={"format": "csv", "key": "k"},
            callback=hook,
        ),
        status=S.QUEUED,
    )
    store.transition(job_id, S.RUNNING)
    return job_id


def time_commits(store: JobStore, hook: dict[str, Any] | None, chunks: int) -> float:
    job_id = new_job(store, hook)
    store.add_chunks(job_id, [10] * chunks)
    leased = store.lease_chunks("bench", chunks, 600)
    counts = ChunkCounts(
        processed=10, successful=10, failed=0, no_match=0, last_record_id=None, seconds=0.0
    )
    started = time.perf_counter()
    for chunk in leased:
        store.commit_chunk(job_id, chunk.seq, "bench", counts)
    return (time.perf_counter() - started) / len(leased)


def time_transitions(store: JobStore, hook: dict[str, Any] | None, pairs: int) -> float:
    job_id = new_job(store, hook)
    started = time.perf_counter()
    for _ in range(pairs):
        store.transition(job_id, S.PAUSED)
        store.transition(job_id, S.QUEUED)
        store.transition(job_id, S.RUNNING)
    return (time.perf_counter() - started) / (3 * pairs)


@contextmanager
def events_off() -> Iterator[None]:
    """The store with its event writes replaced by nothing: the baseline."""
    saved = store_module.record_state, store_module.record_progress
    store_module.record_state = lambda *_a, **_k: None  # type: ignore[assignment]
    store_module.record_progress = lambda *_a, **_k: None  # type: ignore[assignment]
    try:
        yield
    finally:
        store_module.record_state, store_module.record_progress = saved


def event_log_cost(url: str, quick: bool) -> list[tuple[str, float, float]]:
    """Best of 3 interleaved rounds of each variant, so drift in the machine's load hits all."""
    database = Database(url)
    database.migrate()
    store = JobStore(database)
    chunks, pairs = (200, 50) if quick else (1000, 250)
    hook = callback("http://127.0.0.1:9/")
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, seconds), seconds)

    for _ in range(3):
        with events_off():
            keep("commit off", time_commits(store, None, chunks))
            keep("transition off", time_transitions(store, None, pairs))
        keep("commit", time_commits(store, None, chunks))
        keep("commit hook", time_commits(store, hook, chunks))
        keep("transition", time_transitions(store, None, pairs))
        keep("transition hook", time_transitions(store, hook, pairs))
    database.dispose()
    return [
        ("commit_chunk, events logged", best["commit"], best["commit off"]),
        ("commit_chunk, + callback", best["commit hook"], best["commit off"]),
        ("transition, events logged", best["transition"], best["transition off"]),
        ("transition, + callback", best["transition hook"], best["transition off"]),
    ]


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def delivery_throughput(url: str, folder: Path, quick: bool) -> tuple[float, float, int]:
    count = 300 if quick else 2000
    database = Database(url)
    database.migrate()
    with receiver() as hook_url:
        now = datetime.now(UTC)
        hook = callback(hook_url)
        with database.write_engine.begin() as connection:
            connection.execute(
                webhook_deliveries.insert(),
                [
                    {
                        "job_id": f"bench-{i // 5}",
                        "event_type": "job.progress",
                        "message_id": f"msg_bench_{i}",
                        "callback": hook,
                        "body": '{"type":"job.progress","data":{}}',
                        "status": "pending",
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for i in range(count)
                ],
            )
        settings = Settings(data_dir=folder, url_allowlist=["127.0.0.1/32"], _env_file=None)  # type: ignore[call-arg]
        deliverer = Deliverer(settings, database)
        delivered = sa.select(sa.func.count()).where(webhook_deliveries.c.status == "delivered")
        started = time.perf_counter()
        deliverer.start()
        while True:
            with database.read_engine.connect() as connection:
                if connection.execute(delivered).scalar_one() == count:
                    break
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        deliverer.stop()
        with httpx.Client() as http:
            started = time.perf_counter()
            for _ in range(count):
                http.post(hook_url, content=b'{"type":"job.progress","data":{}}')
            plain = time.perf_counter() - started
    database.dispose()
    return count / elapsed, count / plain, count


def stream_latency(url: str, folder: Path, quick: bool) -> tuple[list[float], list[float]]:
    settings = Settings(data_dir=folder, database_url=url, _env_file=None)  # type: ignore[call-arg]
    platform = open_platform(settings, run_scheduler=False)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, platform=platform), port=port, log_level="error")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    job_id = new_job(platform.store, None, tenant="default")
    rounds = 30 if quick else 100
    arrived: list[float] = []
    ready = threading.Event()

    def follow() -> None:
        with (
            httpx.Client(base_url=base, timeout=30) as http,
            connect_sse(http, "GET", f"/v1/jobs/{job_id}/events") as source,
        ):
            for sse in source.iter_sse():
                if sse.event == "job.running":
                    ready.set()
                if sse.event in ("job.paused", "job.queued") and ready.is_set():
                    arrived.append(time.perf_counter())
                if sse.event == "job.cancelled":
                    return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    ready.wait(10)
    latencies = []
    for _ in range(rounds):
        for target in (S.PAUSED, S.QUEUED):
            seen = len(arrived)
            platform.store.transition(job_id, target)
            committed = time.perf_counter()
            while len(arrived) == seen:
                time.sleep(0.0002)
            latencies.append((arrived[-1] - committed) * 1000)
    platform.store.transition(job_id, S.CANCELLED)
    reader.join(10)
    round_trips = []
    with httpx.Client(base_url=base) as http:
        for _ in range(2 * rounds):
            started = time.perf_counter()
            http.get("/healthz")
            round_trips.append((time.perf_counter() - started) * 1000)
    server.should_exit = True
    platform.close()
    return latencies, round_trips


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"database: {args.database}\n")
        with database_url(args.database, folder, "log") as url:
            rows = event_log_cost(url, args.quick)
        print(f"{'1. event-log cost':32} {'ms/call':>9} {'baseline':>9} {'ratio':>7}")
        for name, value, base in rows:
            print(f"{name:32} {value * 1000:9.3f} {base * 1000:9.3f} {value / base:7.2f}")
        with database_url(args.database, folder, "delivery") as url:
            rate, plain, count = delivery_throughput(url, folder, args.quick)
        print(f"\n{'2. delivery':32} {'per s':>9} {'baseline':>9} {'ratio':>7}")
        print(f"{f'{count} signed webhooks':32} {rate:9.0f} {plain:9.0f} {rate / plain:7.2f}")
        with database_url(args.database, folder, "stream") as url:
            latencies, round_trips = stream_latency(url, folder, args.quick)
        print(f"\n{'3. event stream':32} {'p50 ms':>9} {'p95 ms':>9}")
        print(f"{'commit -> SSE event':32} {_pct(latencies, 50):9.2f} {_pct(latencies, 95):9.2f}")
        print(
            f"{'baseline: GET /healthz':32} {_pct(round_trips, 50):9.2f} "
            f"{_pct(round_trips, 95):9.2f}"
        )


if __name__ == "__main__":
    main()
