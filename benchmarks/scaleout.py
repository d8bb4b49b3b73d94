"""Scale-out: one large job run with 1, 2, 4 ... workers, locally or on a Dask cluster.

Run with ``.venv/bin/python benchmarks/scaleout.py [--records N] [--workers 1,2,4,8]
[--executor local|dask] [--type validate|reverse_geocode|geocode] [--chunk-size N]``.

Each run opens the platform in this process with a fresh SQLite database and storage folder,
and either a local process pool or a fresh ``distributed.LocalCluster`` of that many
single-threaded worker processes (``GEOBATCH_EXECUTOR=tcp://...``, exactly what a real
cluster gets). The same generated CSV (points inside the default release, so every job type
has work to do) is uploaded as one job and timed from create to succeeded. The table gives
records/s, the time until the input was split (the serial part), and the speed-up against
the first (fewest-workers) run of the same script: on a machine with
as many free cores as workers, the speed-up is what to look at.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from geobatch.config import Settings
from geobatch.jobs import JobStatus, open_platform
from geobatch.reference import ReleaseStore, ensure_default_release
from harness import run_job

console = Console()

STREETS = ("Mannerheimintie", "Aleksanterinkatu", "Bulevardi", "Fredrikinkatu", "Hämeentie")


@dataclass
class Run:
    workers: int
    seconds: float
    split_seconds: float
    """Until the input was split into chunks (one task: the serial part of a job)."""
    records: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def write_input(path: Path, records: int, bbox: tuple[float, float, float, float]) -> None:
    """Points (and an address text) inside ``bbox``, a few of them out of range."""
    west, south, east, north = bbox
    rng = random.Random(7)
    with path.open("w") as sink:
        sink.write("recId,lat,lon,searchText\n")
        for i in range(records):
            lat = rng.uniform(south, north) if i % 997 else 91.0
            lon = rng.uniform(west, east)
            text = f"{STREETS[i % len(STREETS)]} {1 + i % 60}, Helsinki"
            sink.write(f'r{i},{lat:.6f},{lon:.6f},"{text}"\n')


@contextlib.contextmanager
def executor_address(kind: str, workers: int) -> Iterator[str]:
    if kind == "local":
        yield "local"
        return
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def run_once(args: argparse.Namespace, source: Path, releases: Path, workers: int) -> Run:
    options: dict[str, Any] = {"output_format": "parquet"}
    if args.type == "validate":
        options["target_type"] = "reverse_geocode"
    with tempfile.TemporaryDirectory() as folder, executor_address(args.executor, workers) as ex:
        settings = Settings(
            data_dir=Path(folder),
            releases_dir=releases,
            executor=ex,
            workers=workers,
            chunk_size=args.chunk_size,
            _env_file=None,  # type: ignore[call-arg]
        )
        platform = open_platform(settings)
        try:
            warm_up = source.with_name("warm-up.csv")
            with source.open() as whole, warm_up.open("w") as sink:
                sink.writelines(itertools.islice(whole, 1 + 10 * workers))
            run_job(platform, args.type, options, warm_up)  # workers started, modules imported
            job, elapsed, split = run_job(platform, args.type, options, source)
        finally:
            platform.close()
    if job.status is not JobStatus.SUCCEEDED:
        raise SystemExit(f"the job ended {job.status.value}: {job.error}")
    return Run(
        workers=workers,
        seconds=elapsed,
        split_seconds=split or elapsed,
        records=job.statistics.processed_records,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts")
    parser.add_argument("--executor", choices=("local", "dask"), default="dask")
    parser.add_argument("--type", default="validate", help="job type to run")
    parser.add_argument("--chunk-size", type=int, default=20_000)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    with tempfile.TemporaryDirectory() as folder:
        releases = Path(folder) / "releases"
        manifest = ensure_default_release(ReleaseStore(releases))
        source = Path(folder) / "input.csv"
        assert manifest.bbox is not None
        write_input(source, args.records, manifest.bbox)
        console.print(
            f"{args.records:,} records, {source.stat().st_size / 1e6:.0f} MB, job type "
            f"{args.type}, executor {args.executor}, chunks of {args.chunk_size:,}, "
            f"{os.cpu_count()} CPUs"
        )
        runs = []
        for workers in counts:
            runs.append(run_once(args, source, releases, workers))
            console.print(f"  {workers} workers: {runs[-1].seconds:.1f} s")

    base = runs[0]
    table = Table(title=f"scale-out: {args.type} on {args.executor}")
    columns = ("workers", "seconds", "of which split", "records/s", "speed-up", "per worker")
    for column in columns:
        table.add_column(column, justify="right")
    for run in runs:
        speedup = run.rate / base.rate
        table.add_row(
            str(run.workers),
            f"{run.seconds:.1f}",
            f"{run.split_seconds:.1f}",
            f"{run.rate:,.0f}",
            f"{speedup:.2f}x",
            f"{speedup * base.workers / run.workers:.0%}",
        )
    console.print(table)
    cores = os.cpu_count() or 1
    console.print(
        f"This machine has {cores} cores: the speed-up can grow only up to {cores} workers; "
        "runs with more workers than cores share them and show the cost of oversubscription."
    )
    linear = [run for run in runs if run.workers <= cores]
    if len(linear) > 1:
        last = linear[-1]
        efficiency = (last.rate / base.rate) / (last.workers / base.workers)
        console.print(
            f"Up to the cores available ({last.workers} workers): {efficiency:.0%} of linear."
        )


if __name__ == "__main__":
    main()
