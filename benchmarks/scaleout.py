"""Scale-out: one large job run with 1, 2, 4 ... workers, locally or on a Dask cluster.

Run with ``.venv/bin/python benchmarks/scaleout.py [--records N] [--workers 1,2,4,8]
[--executor local|dask] [--type geocode|reverse_geocode|validate] [--chunk-size N]``; the
defaults (a 400,000-record geocode job, 1, 2, 4 and 8 Dask workers) are the issue's run.

Each run opens the platform in this process with a fresh SQLite database and storage folder,
and either a local process pool or a fresh ``distributed.LocalCluster`` of that many
single-threaded worker processes (``GEOBATCH_EXECUTOR=tcp://...``, exactly what a real
cluster gets). The same generated CSV (the default release's own addresses as free text, with
points inside it, so every job type has real work to do) is uploaded as one job and timed
from create to succeeded, after a warm-up job of small chunks has had every worker open the
release and build its indexes. The table gives records/s, the time until the input was split
(the serial part), and the speed-up against the first (fewest-workers) run of the same
script: on a machine with as many free cores as workers, the speed-up is what to look at, and
the last line compares it with 0.8 x linear.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
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
from geobatch.reference import Release, ReleaseStore, ensure_default_release
from harness import run_job

console = Console()

WARM_UP_CHUNK = 20

TARGET_EFFICIENCY = 0.8
"""The issue's bar: the speed-up at N workers (N up to the cores) at least 0.8 x N."""


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


def address_texts(release: Release) -> list[str]:
    """The release's addresses written as a user would, in a few spellings."""
    texts = []
    for row in release.table("addresses").to_pylist():
        street = " ".join(p for p in (row["street"], row["housenumber"]) if p)
        if not row["street"]:
            continue
        place = " ".join(p for p in (row["postcode"], row["city"]) if p)
        texts += [", ".join(p for p in (street, place) if p), street, f"{street}, {row['city']}"]
    return texts


def write_input(path: Path, records: int, release: Release) -> None:
    """Points inside the release's box with one of its addresses each; a few out of range."""
    assert release.manifest.bbox is not None
    west, south, east, north = release.manifest.bbox
    texts = address_texts(release)
    rng = random.Random(7)
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["recId", "lat", "lon", "searchText"])
        for i in range(records):
            lat = rng.uniform(south, north) if i % 997 else 91.0
            lon = rng.uniform(west, east)
            writer.writerow([f"r{i}", f"{lat:.6f}", f"{lon:.6f}", rng.choice(texts)])


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
            chunk_size=WARM_UP_CHUNK,
            _env_file=None,  # type: ignore[call-arg]
        )
        platform = open_platform(settings)
        try:
            # Many small chunks first, so that every worker has imported the modules, opened
            # the release and built its indexes before the clock starts.
            warm_up = source.with_name("warm-up.csv")
            with source.open() as whole, warm_up.open("w") as sink:
                sink.writelines(itertools.islice(whole, 1 + 4 * WARM_UP_CHUNK * workers))
            run_job(platform, args.type, options, warm_up)
            settings.chunk_size = args.chunk_size  # read when the next job is split
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
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts")
    parser.add_argument("--executor", choices=("local", "dask"), default="dask")
    parser.add_argument("--type", default="geocode", help="job type to run")
    parser.add_argument(
        "--chunk-size", type=int, default=5_000, help="enough chunks to keep 8 workers busy"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    with tempfile.TemporaryDirectory() as folder:
        releases = Path(folder) / "releases"
        store = ReleaseStore(releases)
        release = store.load(ensure_default_release(store).id)
        source = Path(folder) / "input.csv"
        write_input(source, args.records, release)
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
        verdict = "meets" if efficiency >= TARGET_EFFICIENCY else "misses"
        console.print(
            f"Up to the cores available ({last.workers} workers): {efficiency:.0%} of linear "
            f"({verdict} the {TARGET_EFFICIENCY:.0%} bar)."
        )


if __name__ == "__main__":
    main()
