"""End-to-end benchmarks of a real ``geobatch serve`` process, driven over HTTP.

Run with ``.venv/bin/python benchmarks/run.py [--quick] [--records N]
[--database sqlite|postgresql] [--json PATH] [--profile PATH]`` (``make bench`` runs the default).

Every run starts a fresh server subprocess on a free port, with a fresh temporary data folder
and a fresh database (a SQLite file by default; with ``--database postgresql`` a new database
created on ``postgresql://postgres@127.0.0.1:5432/test``, dropped afterwards), and measures:

1. **Job overhead** - the fixed cost of one job: a 1-record ``validate`` upload, timed from
   just before ``POST /v1/jobs`` to the moment a long-poll ``POST /v1/jobs/statuses`` says the
   job has ended; p50/p95 over 50 sequential jobs (20 with ``--quick``). It covers the upload,
   the scheduler noticing the job, the split and chunk round trips through the worker pool,
   the commits and the long-poll wake-up. Target: p50 < 150 ms.
2. **Status-poll throughput** - ``GET /v1/jobs/{id}`` requests per second with 32 concurrent
   keep-alive connections. ``wrk`` is used when it is installed; otherwise a multi-process
   raw-asyncio HTTP/1.1 load generator (far cheaper per request than an HTTP client library,
   so on a 2-core machine the client takes as little CPU from the server as possible). Target:
   >= 1,500 requests/s.
3. **validate throughput** - a generated CSV of 1M records (100k with ``--quick``; ``--records``
   overrides) with a few malformed rows and invalid values is uploaded and timed from create to
   succeeded, in records/s. The RSS of the server process and, separately, of each pool worker
   is sampled every 100 ms; the peak and the server's RSS at 10/50/90 % progress are reported.
   Target: server RSS < 300 MB, and flat while the job runs.

Why ratios: the benchmark machine is small (2 cores) and shared, so absolute numbers move
from run to run with whatever else it is doing. Each throughput is therefore reported next to
a baseline measured by the same script in the same run, on the same machine state: the
framework's cheapest endpoint (``GET /healthz``) for the status poll, an HTTP round trip for
the job overhead, and plain ``csv.reader`` parsing of the very same file (plus geobatch's own
in-process splitter) for the validate job. The ratio to the baseline is what to compare
across runs; the absolute value is what to compare with the target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import math
import multiprocessing
import os
import platform
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

DEFAULT_POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
VALIDATE_PARAMS = {"type": "validate", "options": json.dumps({"target_type": "reverse_geocode"})}
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
TARGET_OVERHEAD_P50_MS = 150.0
TARGET_STATUS_RPS = 1500.0
TARGET_SERVER_RSS_MB = 300.0
FLAT_TOLERANCE = 0.10  # RSS at 90 % progress within 10 % of RSS at 10 % progress counts as flat
SAMPLE_SECONDS = 0.1
MB = 1024 * 1024

# Rich falls back to 80 columns when piped (make bench | tee); the table needs more.
console = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140")))


class BenchError(Exception):
    """A benchmark could not produce a number (server died, job failed, timeout)."""


# --- the server under test ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``geobatch serve`` in a subprocess with its own data folder and database."""

    def __init__(
        self, data_dir: Path, database_url: str, workers: int | None, chunk_size: int | None
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        # Only our settings: a GEOBATCH_* variable in the caller's shell must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GEOBATCH_")}
        env.update(GEOBATCH_DATA_DIR=str(data_dir), GEOBATCH_DATABASE_URL=database_url)
        if workers is not None:
            env["GEOBATCH_WORKERS"] = str(workers)
        if chunk_size is not None:
            env["GEOBATCH_CHUNK_SIZE"] = str(chunk_size)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._seen: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError("the server is not running")
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "geobatch", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise BenchError(f"the server did not become ready in {timeout:.0f} s\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BenchError(
                f"the server exited with code {self.process.returncode}\n{self.log_tail()}"
            )

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"

    def descendants(self) -> list[psutil.Process]:
        """The server's child processes (forkserver, resource tracker, pool workers)."""
        try:
            found = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []
        for child in found:
            self._seen.setdefault(child.pid, child)
        return found

    def stop(self) -> None:
        """Terminate the server; then kill any of its children it left behind."""
        if self.process is None:
            return
        self.descendants()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        leftovers = [p for p in self._seen.values() if p.is_running()]
        _, alive = psutil.wait_procs(leftovers, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()


@contextlib.contextmanager
def database(kind: str, data_dir: Path, admin_url: str) -> Iterator[str]:
    """A fresh, empty job-store database URL; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'geobatch.db'}"
        return
    import sqlalchemy as sa

    engine = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"geobatch_bench_{uuid.uuid4().hex[:12]}"
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise BenchError(f"cannot create a PostgreSQL database on {admin_url}: {exc}") from None
    try:
        yield (
            engine.url.set(database=name)
            .render_as_string(hide_password=False)
            .replace("postgresql+psycopg://", "postgresql://", 1)
        )
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError), engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# --- small helpers -----------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (0-100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def create_job(client: httpx.Client, body: Any, headers: dict[str, str] | None = None) -> str:
    response = client.post(
        "/v1/jobs",
        params=VALIDATE_PARAMS,
        content=body,
        headers={"Content-Type": "text/csv", **(headers or {})},
    )
    if response.status_code != 201:
        raise BenchError(f"creating a job answered {response.status_code}: {response.text[:500]}")
    return str(response.json()["id"])


def wait_terminal(client: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    """Long-poll ``/v1/jobs/statuses`` until the job ends; returns its status item."""
    deadline = time.monotonic() + timeout
    while True:
        wait = max(0.0, min(30.0, deadline - time.monotonic()))
        response = client.post(
            "/v1/jobs/statuses", json={"job_ids": [job_id], "wait": wait}, timeout=wait + 30
        )
        if response.status_code != 200:
            raise BenchError(f"long poll answered {response.status_code}: {response.text[:500]}")
        items = response.json()["jobs"]
        if not items:
            raise BenchError(f"job {job_id} vanished")
        item: dict[str, Any] = items[0]
        if item["status"] in TERMINAL:
            if item["status"] != "succeeded":
                raise BenchError(f"job {job_id} ended {item['status']}: {item.get('error')}")
            return item
        if time.monotonic() >= deadline:
            raise BenchError(f"job {job_id} still {item['status']} after {timeout:.0f} s")


# --- 1. job overhead ---------------------------------------------------------------------


@dataclass
class OverheadResult:
    jobs: int
    p50_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    create_p50_ms: float
    """POST /v1/jobs alone (upload, inspect, insert)."""
    roundtrip_p50_ms: float
    """Baseline: one GET /healthz round trip on the same connection."""
    first_job_ms: float
    """The very first job after start-up (cold worker pool), not part of the percentiles."""
    samples_ms: list[float] = field(default_factory=list)


def bench_overhead(server: Server, jobs: int, warmup: int = 3) -> OverheadResult:
    body = b"lat,lon\n1,2\n"
    totals: list[float] = []
    creates: list[float] = []
    first = float("nan")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for index in range(warmup + jobs):
            server.check_alive()
            started = time.perf_counter()
            job_id = create_job(client, body)
            created = time.perf_counter()
            wait_terminal(client, job_id, timeout=60)
            ended = time.perf_counter()
            if index == 0:
                first = (ended - started) * 1000
            if index >= warmup:
                totals.append((ended - started) * 1000)
                creates.append((created - started) * 1000)
        trips: list[float] = []
        for _ in range(200):
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            trips.append((time.perf_counter() - started) * 1000)
    return OverheadResult(
        jobs=jobs,
        p50_ms=percentile(totals, 50),
        p95_ms=percentile(totals, 95),
        min_ms=min(totals),
        max_ms=max(totals),
        create_p50_ms=percentile(creates, 50),
        roundtrip_p50_ms=percentile(trips, 50),
        first_job_ms=first,
        samples_ms=[round(v, 2) for v in totals],
    )


# --- 2. status-poll throughput -----------------------------------------------------------

_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


async def _hammer(
    host: str, port: int, path: str, conns: int, t_start: float, t_end: float
) -> dict[str, Any]:
    """Keep ``conns`` keep-alive connections busy with GET ``path`` until ``t_end``.

    Counts responses that complete inside [t_start, t_end]; the time before t_start warms up.
    """
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode()
    latencies: list[float] = []
    tally = {"ok": 0, "errors": 0}
    ready: list[float] = []
    cpu: dict[str, float] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        ready.append(time.time())
        try:
            while (sent := time.time()) < t_end:
                writer.write(request)
                head = await reader.readuntil(_HEAD_END)
                match = _CONTENT_LENGTH.search(head)
                if match is None:
                    raise BenchError(f"response without Content-Length: {head[:200]!r}")
                await reader.readexactly(int(match.group(1)))
                done = time.time()
                if t_start <= done <= t_end:
                    if head[9:12] == b"200":
                        tally["ok"] += 1
                        latencies.append(done - sent)
                    else:
                        tally["errors"] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def clock() -> None:
        await asyncio.sleep(max(0.0, t_start - time.time()))
        cpu["start"] = time.process_time()
        await asyncio.sleep(max(0.0, t_end - time.time()))
        cpu["end"] = time.process_time()

    outcomes = await asyncio.gather(
        clock(), *(connection() for _ in range(conns)), return_exceptions=True
    )
    failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return {
        "ok": tally["ok"],
        "errors": tally["errors"] + len(failures),
        "failures": failures[:3],
        "ready_at": max(ready) if ready else t_end,
        "cpu_seconds": cpu.get("end", 0.0) - cpu.get("start", 0.0),
        "latencies": latencies,
    }


def _loadgen_process(
    host: str,
    port: int,
    path: str,
    conns: int,
    t_start: float,
    t_end: float,
    results: multiprocessing.Queue[dict[str, Any]],
) -> None:
    try:
        results.put(asyncio.run(_hammer(host, port, path, conns, t_start, t_end)))
    except BaseException as exc:
        results.put({"ok": 0, "errors": 1, "failures": [repr(exc)], "ready_at": t_end})


@dataclass
class LoadResult:
    path: str
    rps: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_pct: float
    """CPU time the server process used over the window, in % of one core."""
    client_cpu_pct: float
    """CPU time all load-generator processes used, in % of one core."""

    @property
    def server_cpu_us_per_request(self) -> float:
        """Server CPU per answered request: steadier than req/s when the machine is noisy."""
        return self.server_cpu_pct / 100 / self.rps * 1e6 if self.rps else float("nan")


def _run_wrk(server: Server, path: str, conns: int, threads: int, seconds: float) -> LoadResult:
    """The same measurement with wrk, when it is installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed")
    server_proc = psutil.Process(server.pid)
    before = server_proc.cpu_times()
    completed = subprocess.run(
        [wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds:.0f}s", "--latency", server.url + path],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    after = server_proc.cpu_times()
    out = completed.stdout
    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if completed.returncode != 0 or total is None or rate is None:
        raise BenchError(f"wrk failed: {completed.stderr or out}")
    errors = sum(
        int(n)
        for line in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors):.*", out)
        for n in re.findall(r"\d+", line.split(":", 1)[1])
    )

    def latency(pct: str) -> float:
        found = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\b", out, re.MULTILINE)
        if found is None:
            return float("nan")
        return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]

    server_cpu = (after.user + after.system) - (before.user + before.system)
    return LoadResult(
        path=path,
        rps=float(rate.group(1)),
        requests=int(total.group(1)) - errors,
        errors=errors,
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        server_cpu_pct=server_cpu / seconds * 100,
        client_cpu_pct=float("nan"),
    )


def measure_load(
    server: Server, path: str, *, conns: int, procs: int, seconds: float, use_wrk: bool
) -> LoadResult:
    """Requests per second of GET ``path`` with ``conns`` concurrent keep-alive connections."""
    server.check_alive()
    if use_wrk:
        return _run_wrk(server, path, conns, procs, seconds)
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[dict[str, Any]] = context.Queue()
    per_proc = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
    t_start = time.time() + 2.0  # spawning and connecting happen before the window opens
    t_end = t_start + seconds
    workers = [
        context.Process(
            target=_loadgen_process,
            args=("127.0.0.1", server.port, path, n, t_start, t_end, results),
            daemon=True,
        )
        for n in per_proc
    ]
    for worker in workers:
        worker.start()
    reports: list[dict[str, Any]] = []
    try:
        server_proc = psutil.Process(server.pid)
        time.sleep(max(0.0, t_start - time.time()))
        before = server_proc.cpu_times()
        time.sleep(max(0.0, t_end - time.time()))
        after = server_proc.cpu_times()
        for _ in workers:
            reports.append(results.get(timeout=60))
    except queue.Empty:
        raise BenchError("a load-generator process did not report back") from None
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=5)
    failures = [f for r in reports for f in r.get("failures", [])]
    ok = sum(r["ok"] for r in reports)
    errors = sum(r["errors"] for r in reports)
    if ok == 0:
        raise BenchError(f"no successful request to {path}: {failures[:3]}")
    # Rate per process over the part of the window it was connected for, summed.
    rps = sum(r["ok"] / max(1e-9, t_end - max(t_start, r["ready_at"])) for r in reports)
    latencies = [x * 1000 for r in reports for x in r.get("latencies", [])]
    server_cpu = (after.user + after.system) - (before.user + before.system)
    return LoadResult(
        path=path,
        rps=rps,
        requests=ok,
        errors=errors,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        server_cpu_pct=server_cpu / seconds * 100,
        client_cpu_pct=sum(r.get("cpu_seconds", 0.0) for r in reports) / seconds * 100,
    )


@dataclass
class StatusResult:
    generator: str
    connections: int
    seconds: float
    rounds: int
    status: LoadResult
    healthz: LoadResult
    all_rounds: list[LoadResult]


def bench_status(
    server: Server, job_id: str, *, conns: int, seconds: float, rounds: int
) -> StatusResult:
    use_wrk = shutil.which("wrk") is not None
    procs = max(1, min(os.cpu_count() or 1, conns))
    generator = (
        f"wrk -t{procs} -c{conns}"
        if use_wrk
        else f"raw asyncio HTTP/1.1 keep-alive, {procs} processes x {conns // procs} conns"
    )
    runs: list[LoadResult] = []
    for _ in range(rounds):  # interleaved, so a noisy moment hits both endpoints alike
        for path in ("/healthz", f"/v1/jobs/{job_id}"):
            runs.append(
                measure_load(
                    server, path, conns=conns, procs=procs, seconds=seconds, use_wrk=use_wrk
                )
            )
    best_health = max((r for r in runs if r.path == "/healthz"), key=lambda r: r.rps)
    best_status = max((r for r in runs if r.path != "/healthz"), key=lambda r: r.rps)
    return StatusResult(generator, conns, seconds, rounds, best_status, best_health, runs)


# --- 3. validate throughput ----------------------------------------------------------------


@dataclass
class InputFile:
    path: Path
    records: int
    malformed: int
    invalid: int
    size_bytes: int


def write_input(path: Path, records: int) -> InputFile:
    """recId,lat,lon; every 50,000th row has a field missing, every 500th an invalid value."""
    malformed = invalid = 0
    with path.open("w", newline="") as sink:
        sink.write("recId,lat,lon\n")
        lines: list[str] = []
        for i in range(records):
            lat = (i * 7919 % 179_999) / 1000 - 89.9995
            lon = (i * 104_729 % 359_999) / 1000 - 179.9995
            if i % 50_000 == 49_999:
                lines.append(f"r{i},{lat:.4f}\n")
                malformed += 1
            elif i % 1000 == 499:
                lines.append(f"r{i},95.5,{lon:.4f}\n")
                invalid += 1
            elif i % 1000 == 999:
                lines.append(f"r{i},north,{lon:.4f}\n")
                invalid += 1
            else:
                lines.append(f"r{i},{lat:.4f},{lon:.4f}\n")
            if len(lines) >= 10_000:
                sink.write("".join(lines))
                lines.clear()
        sink.write("".join(lines))
    return InputFile(path, records, malformed, invalid, path.stat().st_size)


def baseline_csv(path: Path) -> float:
    """Seconds to read every row of the file with the csv module, in this process."""
    started = time.perf_counter()
    rows = 0
    with path.open(newline="") as source:
        for _row in csv.reader(source):
            rows += 1
    elapsed = time.perf_counter() - started
    if rows == 0:
        raise BenchError("the generated input is empty")
    return elapsed


def baseline_split(path: Path, chunk_size: int) -> float:
    """Seconds for geobatch's own reader to batch the file (the split, minus Parquet writes)."""
    from geobatch.io.inputs import InputFormat, InputSpec, iter_batches

    started = time.perf_counter()
    with path.open("rb") as source:
        for _batch in iter_batches(source, InputSpec(format=InputFormat.CSV), chunk_size):
            pass
    return time.perf_counter() - started


@dataclass
class Sample:
    t: float
    server_rss: int
    worker_rss_max: int
    workers_rss_total: int
    workers: int
    tree_rss: int = 0
    tree_pss: int = 0


class RssSampler(threading.Thread):
    """RSS of the server process and of its pool workers, every ``interval`` seconds."""

    def __init__(self, server: Server, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.server = server
        self.interval = interval
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        try:
            main = psutil.Process(self.server.pid)
        except psutil.Error:
            return
        while not self.stop_event.is_set():
            now = time.perf_counter()
            try:
                server_rss = main.memory_info().rss
            except psutil.Error:
                return
            # Direct children are helpers (forkserver, resource tracker); their children are
            # the pool's workers. Without a forkserver every child is a worker.
            children = self.server.descendants()
            workers = [c for c in children if _ppid(c) != main.pid] or children
            sizes = [_rss(c) for c in workers]
            tree = [main, *children]
            self.samples.append(
                Sample(
                    now,
                    server_rss,
                    max(sizes, default=0),
                    sum(sizes),
                    len(workers),
                    tree_rss=sum(_rss(c) for c in tree),
                    tree_pss=sum(_pss(c) for c in tree),
                )
            )
            self.stop_event.wait(self.interval)


def _ppid(process: psutil.Process) -> int:
    try:
        return int(process.ppid())
    except psutil.Error:
        return -1


def _pss(process: psutil.Process) -> int:
    """Proportional set size: shared pages split between the processes that map them."""
    try:
        return int(getattr(process.memory_full_info(), "pss", 0))
    except psutil.Error:
        return 0


def _rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except psutil.Error:
        return 0


@dataclass
class Progress:
    t: float
    status: str
    percent: float
    processed: int
    total: int | None


class ProgressPoller(threading.Thread):
    """``GET /v1/jobs/{id}`` every ``interval`` seconds, once the job id is known."""

    def __init__(self, server: Server, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(name="progress-poller", daemon=True)
        self.server = server
        self.interval = interval
        self.job_id: str | None = None
        self.samples: list[Progress] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            while not self.stop_event.is_set():
                if self.job_id is not None:
                    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                        job = client.get(f"/v1/jobs/{self.job_id}").json()
                        stats = job["statistics"]
                        self.samples.append(
                            Progress(
                                time.perf_counter(),
                                job["status"],
                                float(job["progress"]["percent"]),
                                int(stats["processed_records"]),
                                stats["total_records"],
                            )
                        )
                        if job["status"] in TERMINAL:
                            return
                self.stop_event.wait(self.interval)


@dataclass
class ThroughputResult:
    records: int
    input_mb: float
    seconds: float
    records_per_s: float
    upload_s: float
    split_s: float | None
    process_s: float | None
    baseline_csv_records_per_s: float
    baseline_split_records_per_s: float | None
    total_records: int
    processed_records: int
    failed_records: int
    invalid_records: float
    expected_malformed: int
    expected_invalid: int
    server_rss_idle_mb: float
    server_rss_peak_mb: float
    worker_rss_peak_mb: float
    tree_rss_peak_mb: float
    tree_pss_peak_mb: float
    workers: int
    server_rss_at_mb: dict[str, float | None]
    profile: str | None = None
    profile_top: list[tuple[str, float]] = field(default_factory=list)


def bench_throughput(
    server: Server,
    input_file: InputFile,
    *,
    chunk_size: int,
    timeout: float,
    profile_path: Path | None,
) -> ThroughputResult:
    csv_seconds = baseline_csv(input_file.path)
    try:
        split_seconds: float | None = baseline_split(input_file.path, chunk_size)
    except Exception as exc:  # the in-process reference is optional; the job is the point
        console.print(f"[yellow]note:[/yellow] in-process split baseline failed: {exc!r}")
        split_seconds = None
    sampler = RssSampler(server)
    poller = ProgressPoller(server)
    profiler = start_profiler(server, profile_path) if profile_path else None
    sampler.start()
    poller.start()
    time.sleep(0.5)  # a few idle samples first
    size = input_file.size_bytes

    def pieces() -> Iterator[bytes]:
        with input_file.path.open("rb") as source:
            while piece := source.read(MB):
                yield piece

    try:
        with httpx.Client(base_url=server.url, timeout=max(60.0, timeout)) as client:
            started = time.perf_counter()
            job_id = create_job(client, pieces(), {"Content-Length": str(size)})
            created = time.perf_counter()
            poller.job_id = job_id
            wait_terminal(client, job_id, timeout=timeout)
            ended = time.perf_counter()
            job = client.get(f"/v1/jobs/{job_id}").json()
    finally:
        sampler.stop_event.set()
        poller.stop_event.set()
        sampler.join(timeout=5)
        poller.join(timeout=35)
        profile_top = stop_profiler(profiler, profile_path) if profiler and profile_path else []
    stats = job["statistics"]
    split_at = next((p.t for p in poller.samples if p.total is not None), None)
    idle = [s.server_rss for s in sampler.samples if s.t < started] or [0]
    running = [s for s in sampler.samples if started <= s.t <= ended] or sampler.samples

    def rss_at(pct: float) -> float | None:
        # The first progress sample at or past pct; a job that jumps to the end counts at `ended`.
        reached = next((p.t for p in poller.samples if p.percent >= pct), ended)
        if not sampler.samples:
            return None
        nearest = min(sampler.samples, key=lambda s: abs(s.t - reached))
        return nearest.server_rss / MB

    return ThroughputResult(
        records=input_file.records,
        input_mb=size / MB,
        seconds=ended - started,
        records_per_s=input_file.records / (ended - started),
        upload_s=created - started,
        split_s=(split_at - created) if split_at is not None else None,
        process_s=(ended - split_at) if split_at is not None else None,
        baseline_csv_records_per_s=input_file.records / csv_seconds,
        baseline_split_records_per_s=(
            input_file.records / split_seconds if split_seconds else None
        ),
        total_records=int(stats["total_records"] or 0),
        processed_records=int(stats["processed_records"]),
        failed_records=int(stats["failed_records"]),
        invalid_records=float(stats.get("invalid_records", 0)),
        expected_malformed=input_file.malformed,
        expected_invalid=input_file.invalid,
        server_rss_idle_mb=idle[-1] / MB,
        server_rss_peak_mb=max(s.server_rss for s in running) / MB,
        worker_rss_peak_mb=max(s.worker_rss_max for s in running) / MB,
        tree_rss_peak_mb=max(s.tree_rss for s in running) / MB,
        tree_pss_peak_mb=max(s.tree_pss for s in running) / MB,
        workers=max((s.workers for s in running), default=0),
        server_rss_at_mb={f"{p}%": rss_at(p) for p in (10, 50, 90)},
        profile=str(profile_path) if profile_path else None,
        profile_top=profile_top,
    )


# --- optional py-spy profile of the server during the throughput job ----------------------


def start_profiler(server: Server, path: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if spy is None:
        console.print("[yellow]note:[/yellow] py-spy not found; no profile (pip install py-spy)")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            *(spy, "record", "--pid", str(server.pid), "--subprocesses", "--rate", "100"),
            *("--format", "raw", "--output", str(path), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # let it attach
    return process


def stop_profiler(process: subprocess.Popen[bytes], path: Path) -> list[tuple[str, float]]:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if not path.exists():
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        console.print(f"[yellow]note:[/yellow] py-spy wrote no profile: {stderr[-500:]}")
        return []
    return summarise_profile(path)


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def summarise_profile(path: Path, top: int = 15) -> list[tuple[str, float]]:
    """Share of samples spent in each geobatch function (inclusive), from py-spy raw output."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        seen: set[str] = set()
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match is None or "geobatch" not in match.group("file"):
                continue
            name = f"{match.group('func')} ({Path(match.group('file')).name})"
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
    if total == 0:
        return []
    return [(name, 100.0 * n / total) for name, n in inclusive.most_common(top)]


# --- report --------------------------------------------------------------------------------


def environment(args: argparse.Namespace, records: int) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": affinity,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_avg_1m_at_start": round(load[0], 2),
        "database": args.database,
        "workers": args.workers or f"default ({os.cpu_count()})",
        "chunk_size": args.chunk_size or "default (5000)",
        "records": records,
        "mode": "quick" if args.quick else "full",
    }


def _fmt(value: float | None, spec: str = ",.0f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{unit}"


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "-"
    return "[green]ok[/green]" if ok else "[red]MISS[/red]"


def render(env: dict[str, Any], results: dict[str, Any], failures: dict[str, str]) -> None:
    header = " · ".join(f"{k}={v}" for k, v in env.items())
    table = Table(title="geobatch benchmarks", caption=header, show_lines=True)
    for column in ("measurement", "result", "baseline (same run)", "ratio", "target", ""):
        table.add_column(column)
    overhead: OverheadResult | None = results.get("overhead")
    if overhead is not None:
        table.add_row(
            f"job overhead, 1-record validate ({overhead.jobs} jobs)",
            f"p50 {overhead.p50_ms:.1f} ms\np95 {overhead.p95_ms:.1f} ms\n"
            f"min {overhead.min_ms:.1f} / max {overhead.max_ms:.1f} ms\n"
            f"(POST alone p50 {overhead.create_p50_ms:.1f} ms)\n"
            f"first job, cold pool: {overhead.first_job_ms:,.0f} ms",
            f"GET /healthz round trip\np50 {overhead.roundtrip_p50_ms:.2f} ms",
            f"{overhead.p50_ms / overhead.roundtrip_p50_ms:.0f}x",
            f"p50 < {TARGET_OVERHEAD_P50_MS:.0f} ms",
            _verdict(overhead.p50_ms < TARGET_OVERHEAD_P50_MS),
        )
    status: StatusResult | None = results.get("status")
    if status is not None:
        s, h = status.status, status.healthz
        table.add_row(
            f"GET /v1/jobs/{{id}} throughput\n{status.connections} conns, best of {status.rounds}"
            f" x {status.seconds:.0f} s\n{status.generator}",
            f"{s.rps:,.0f} req/s\np50 {_fmt(s.p50_ms, '.1f', ' ms')}, "
            f"p99 {_fmt(s.p99_ms, '.1f', ' ms')}\nserver CPU {_fmt(s.server_cpu_pct, '.0f', '%')}"
            f" ({_fmt(s.server_cpu_us_per_request, ',.0f', ' µs/req')})\n"
            f"client CPU {_fmt(s.client_cpu_pct, '.0f', '%')}, errors {s.errors}",
            f"GET /healthz\n{h.rps:,.0f} req/s\np50 {_fmt(h.p50_ms, '.1f', ' ms')}\n"
            f"server CPU {_fmt(h.server_cpu_pct, '.0f', '%')}"
            f" ({_fmt(h.server_cpu_us_per_request, ',.0f', ' µs/req')})",
            f"{s.rps / h.rps:.2f}",
            f">= {TARGET_STATUS_RPS:,.0f} req/s",
            _verdict(s.rps >= TARGET_STATUS_RPS),
        )
    throughput: ThroughputResult | None = results.get("throughput")
    if throughput is not None:
        t = throughput
        phases = f"upload {t.upload_s:.1f} s"
        if t.split_s is not None and t.process_s is not None:
            phases += f", split ~{t.split_s:.1f} s, chunks ~{t.process_s:.1f} s"
        baseline = f"csv.reader in-process\n{t.baseline_csv_records_per_s:,.0f} rec/s"
        if t.baseline_split_records_per_s:
            baseline += (
                f"\n(geobatch iter_batches in-process\n{t.baseline_split_records_per_s:,.0f}"
                f" rec/s, job/that {t.records_per_s / t.baseline_split_records_per_s:.2f})"
            )
        counted = (
            t.processed_records == t.total_records == t.records
            and t.failed_records == t.expected_malformed
            and round(t.invalid_records) == t.expected_invalid
        )
        table.add_row(
            f"validate throughput\n{t.records:,} records, {t.input_mb:.1f} MB CSV",
            f"{t.records_per_s:,.0f} rec/s\n{t.seconds:.1f} s ({phases})\n"
            f"processed {t.processed_records:,}/{t.total_records:,}, failed {t.failed_records:,}"
            f" (expected {t.expected_malformed:,}), invalid {t.invalid_records:,.0f}"
            f" (expected {t.expected_invalid:,})",
            baseline,
            f"{t.records_per_s / t.baseline_csv_records_per_s:.2f}",
            "counts as generated",
            "[green]counts ok[/green]" if counted else "[red]WRONG COUNTS[/red]",
        )
        at = t.server_rss_at_mb
        r10, r90 = at.get("10%"), at.get("90%")
        flat = r10 is not None and r90 is not None and r90 <= r10 * (1 + FLAT_TOLERANCE)
        table.add_row(
            "memory during the validate job\n(sampled every 100 ms)",
            f"server peak {t.server_rss_peak_mb:.0f} MB\n"
            f"server at 10/50/90 %: {_fmt(at.get('10%'))} / {_fmt(at.get('50%'))} / "
            f"{_fmt(at.get('90%'))} MB\nlargest worker peak {t.worker_rss_peak_mb:.0f} MB"
            f" ({t.workers} workers)\nprocess tree peak: PSS {t.tree_pss_peak_mb:.0f} MB, "
            f"RSS summed {t.tree_rss_peak_mb:.0f} MB",
            f"server idle before upload\n{t.server_rss_idle_mb:.0f} MB",
            f"{t.server_rss_peak_mb / t.server_rss_idle_mb:.2f}" if t.server_rss_idle_mb else "-",
            f"server < {TARGET_SERVER_RSS_MB:.0f} MB\nand flat (90 % <= 10 % + "
            f"{FLAT_TOLERANCE:.0%})",
            _verdict(t.server_rss_peak_mb < TARGET_SERVER_RSS_MB and flat),
        )
    for name, reason in failures.items():
        table.add_row(name, f"[red]FAILED[/red]: {reason.splitlines()[0][:200]}", "", "", "", "")
    console.print(table)
    if throughput is not None and throughput.profile_top:
        profile = Table(
            title=f"py-spy: share of samples in geobatch functions ({throughput.profile})"
        )
        profile.add_column("function (inclusive)")
        profile.add_column("% of samples", justify="right")
        for name, share in throughput.profile_top:
            profile.add_row(name, f"{share:.1f}")
        console.print(profile)


def to_json(env: dict[str, Any], results: dict[str, Any], failures: dict[str, str]) -> str:
    payload: dict[str, Any] = {"environment": env, "failures": failures}
    for name, value in results.items():
        payload[name] = asdict(value)
    return json.dumps(payload, indent=2, default=str)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer jobs, 100k records")
    parser.add_argument("--records", type=int, help="records in the validate job")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get("GEOBATCH_TEST_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN),
        help="where --database postgresql creates its fresh database",
    )
    parser.add_argument("--workers", type=int, help="GEOBATCH_WORKERS for the server")
    parser.add_argument("--chunk-size", type=int, help="GEOBATCH_CHUNK_SIZE for the server")
    parser.add_argument("--connections", type=int, default=32, help="status-poll concurrency")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument(
        "--profile", type=Path, help="py-spy record the server during the validate job (raw)"
    )
    parser.add_argument(
        "--only",
        choices=("overhead", "status", "throughput"),
        action="append",
        help="run only these measurements (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.records is not None and args.records < 1:
        parser.error("--records must be at least 1")
    return args


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_all(args: argparse.Namespace) -> int:
    records = args.records or (100_000 if args.quick else 1_000_000)
    wanted = set(args.only or ("overhead", "status", "throughput"))
    env = environment(args, records)
    console.print(
        "[bold]geobatch benchmarks[/bold] " + " · ".join(f"{k}={v}" for k, v in env.items())
    )
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}

    def attempt(name: str, action: Callable[[], Any]) -> None:
        started = time.perf_counter()
        console.print(f"[bold]→ {name}[/bold] ...")
        try:
            results[name] = action()
        except Exception as exc:  # one failed measurement must not stop the others
            failures[name] = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]FAILED[/red] {name}: {exc}", highlight=False)
        else:
            console.print(f"  done in {time.perf_counter() - started:.1f} s")

    with (
        tempfile.TemporaryDirectory(prefix="geobatch-bench-") as scratch,
        contextlib.ExitStack() as stack,
    ):
        root = Path(scratch)
        try:
            url = stack.enter_context(
                database(args.database, root / "server", args.postgres_admin_url)
            )
            server = Server(root / "server", url, args.workers, args.chunk_size)
            stack.callback(server.stop)  # runs before the database is dropped
            console.print(f"starting the server on {server.url} ...")
            server.start()
            poll_job: list[str] = []

            def overhead() -> OverheadResult:
                return bench_overhead(server, 20 if args.quick else 50)

            def status() -> StatusResult:
                if not poll_job:
                    with httpx.Client(base_url=server.url, timeout=60) as client:
                        poll_job.append(create_job(client, b"lat,lon\n1,2\n"))
                        wait_terminal(client, poll_job[0], timeout=60)
                return bench_status(
                    server,
                    poll_job[0],
                    conns=args.connections,
                    seconds=3.0 if args.quick else 5.0,
                    rounds=1 if args.quick else 2,
                )

            def throughput() -> ThroughputResult:
                console.print(f"  writing {records:,} records ...")
                input_file = write_input(root / "input.csv", records)
                try:
                    return bench_throughput(
                        server,
                        input_file,
                        chunk_size=args.chunk_size or 5000,
                        timeout=120 + records / 1000,
                        profile_path=args.profile.resolve() if args.profile else None,
                    )
                finally:
                    input_file.path.unlink(missing_ok=True)

            for name, action in (
                ("overhead", overhead),
                ("status", status),
                ("throughput", throughput),
            ):
                if name in wanted:
                    attempt(name, action)
        except BenchError as exc:
            failures["server"] = str(exc)
            console.print(f"[red]FAILED[/red] {exc}", highlight=False)
    render(env, results, failures)
    if args.json:
        args.json.write_text(to_json(env, results, failures))
        console.print(f"results written to {args.json}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run_all(args)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]; the server was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
