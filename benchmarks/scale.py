"""How release size maps to import cost, disk, worker memory and job speed.

Run with ``.venv/bin/python benchmarks/scale.py [--sizes 1,10,100] [--source PBF]``.

For each size N, a synthetic region of N copies of one extract is written with pyosmium
(``synthetic_region``: copies side by side in longitude with offset ids, copy 0 the extract
itself; kept in ``--cache`` and reused). The default extract, Andorra from
``../shared/data/osm``, has 70 k nodes, so 100 copies hold 7 M; Monaco's 180 k nodes make
36 M in 200 copies (``--source .../monaco.osm.pbf --sizes 1,10,200``). Each region is
imported with ``geobatch releases import`` as a user would, gazetteer included (its cache is
built beforehand, as any import after a store's first finds it; wall time, CPU time and the
peak RSS of the importing process tree, sampled every 50 ms), and then worked on:

1. **first job**: per job type (``geocode``, ``reverse_geocode``, ``road_match``), a fresh
   ``geobatch serve`` with one worker runs one small job, timed from the upload to the long
   poll saying it succeeded (so it includes whatever the worker must load or build first);
2. **warm jobs**: once every size is imported, one more fresh server per size, each with one
   worker, runs per type a small job and then the timed large ones: ``ROUNDS`` of them, each
   of other records (new queries to the geocoder), the sizes taking turns job by job so that
   other work on the machine slows every size alike; the fastest counts (records/s, and its
   ratio to the same job on the 1x release). After all three types, the private memory (USS)
   of each worker process.

Every input lies on copy 0 (drawn from the 1x release: addresses written as users write them,
20,000 mostly distinct queries that each copy's same-named streets could answer, with the
``at`` bias at the tile's centre; points near its roads; its segments moved sideways as road
records), so the large jobs' results are compared line by line with those of the 1x release:
``copy-0 answers`` says whether they are identical, else how many rows differ per job type. The 1x
release always runs, as the baseline.
Other work on the machine slows every timing: the one-minute load average is recorded when
the import starts, when it ends and when the jobs are done.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import osmium
import psutil
import shapely
from rich.console import Console
from rich.table import Table

from geobatch.reference import Release, ReleaseStore, import_osm
from geocode import queries as address_queries
from harness import SHARED_OSM, http_job, serve
from roadmatch_job import make_roads
from synthetic_region import region

JOB_TYPES = ("geocode", "reverse_geocode", "road_match")
SMALL = {"geocode": 200, "reverse_geocode": 1_000, "road_match": 200}
LARGE = {"geocode": 20_000, "reverse_geocode": 300_000, "road_match": 5_000}
ROUNDS = 2
"""Warm jobs per type and size, taking turns between sizes; the fastest counts."""
MIN_ADDRESSES = 50
"""An extract with fewer addresses is geocoded by street names (``geocode_queries``)."""
MB = 1024 * 1024


class PeakRss(threading.Thread):
    """The largest summed RSS of a process and its descendants, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            total = 0
            with contextlib.suppress(psutil.Error):
                for process in [self.root, *self.root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(0.05)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOBATCH_")}
    env.update(extra)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_region(pbf: Path, releases: Path, name: str) -> tuple[str, float, float, int]:
    """``geobatch releases import``: (release id, seconds, CPU seconds, peak RSS).

    An earlier release of that name is removed first; the store's ``.cache`` (the gazetteer,
    built by the first import into a store) is kept, as on a server that imports again.
    """
    for old in releases.glob(f"{name}-*"):
        shutil.rmtree(old)
    started, cpu = time.perf_counter(), _children_cpu()
    process = subprocess.Popen(
        [sys.executable, "-m", "geobatch", "releases", "import", str(pbf), "--name", name],
        env=_env(GEOBATCH_RELEASES_DIR=str(releases)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = PeakRss(process.pid)
    sampler.start()
    out, err = process.communicate()
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
    sampler.stopped.set()
    if process.returncode:
        raise RuntimeError(f"import of {pbf} failed: {err}")
    return out.strip(), seconds, cpu, sampler.peak


def warm_gazetteer(source: Path, releases: Path) -> None:
    """Build the store's gazetteer cache once, so no measured import pays for it."""
    if not list((releases / ".cache").glob("gazetteer-*")):
        store = ReleaseStore(releases)
        store.delete(import_osm(source, store, name="gazetteer-warm-up").id)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@dataclass
class Inputs:
    """Small and large CSV inputs per job type, all on copy 0."""

    small: dict[str, Path] = field(default_factory=dict)
    large: list[dict[str, Path]] = field(default_factory=list)
    """One set per round of warm jobs: each round's queries are new to the geocoder."""
    at: str = ""


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def geocode_queries(release: Release, names: list[str], count: int, seed: int) -> list[str]:
    """Queries the geocoder has mostly not seen: copy 0's addresses written as users write
    them (``benchmarks/geocode.py``: in full, without the town, in lower case, misspelt, with
    another house number), or, for an extract with few addresses, its street names with a
    house number."""
    if release.manifest.counts.get("addresses", 0) >= MIN_ADDRESSES:
        return address_queries(release, count, seed)
    rng = np.random.default_rng(seed)
    picked, numbers = rng.choice(len(names), count), rng.integers(1, 200, count)
    return [
        f"{names[i]} {n}" if "," not in names[i] else names[i].replace(",", f" {n},", 1)
        for i, n in zip(picked, numbers, strict=True)
    ]


def make_inputs(release: Release, folder: Path, seed: int = 11) -> Inputs:
    rng = np.random.default_rng(seed)
    west, south, east, north = release.manifest.bbox or (0.0, 0.0, 0.0, 0.0)
    inputs = Inputs(at=f"{(south + north) / 2:.5f},{(west + east) / 2:.5f}")
    streets = release.table("streets")
    names = [
        f"{name}, {locality}" if locality else name
        for name, locality in zip(
            streets.column("name").to_pylist(), streets.column("locality").to_pylist(), strict=True
        )
    ]
    segments = release.table("segments")
    lines = shapely.from_wkb(segments.column("geometry").to_numpy(zero_copy_only=False))
    mids = shapely.get_coordinates(shapely.line_interpolate_point(lines, 0.5, normalized=True))
    inputs.large = [{} for _ in range(ROUNDS)]
    sets = [("small", inputs.small, SMALL)]
    sets += [(f"large-{n}", target, LARGE) for n, target in enumerate(inputs.large)]
    for number, (size, target, counts) in enumerate(sets):
        texts = geocode_queries(release, names, counts["geocode"], seed + number)
        target["geocode"] = _write_csv(
            folder / f"geocode-{size}.csv",
            ["recId", "searchText"],
            [[f"g{i}", text] for i, text in enumerate(texts)],
        )
        points = mids[rng.choice(len(mids), counts["reverse_geocode"])]
        points = points + rng.normal(0, 0.0003, points.shape)
        target["reverse_geocode"] = _write_csv(
            folder / f"reverse-{size}.csv",
            ["recId", "lat", "lon"],
            [[f"r{i}", f"{lat:.6f}", f"{lon:.6f}"] for i, (lon, lat) in enumerate(points)],
        )
        roads = make_roads(release, counts["road_match"], seed=seed + number)
        wkt = shapely.to_wkt(shapely.from_wkb(roads.column("geometry").to_numpy(False)), 7)
        target["road_match"] = _write_csv(
            folder / f"roads-{size}.csv",
            ["id", "name", "geometry"],
            [
                [rid, name or "", text]
                for rid, name, text in zip(
                    roads.column("id").to_pylist(),
                    roads.column("name").to_pylist(),
                    wkt,
                    strict=True,
                )
            ],
        )
    return inputs


def run_job(
    client: httpx.Client, job_type: str, options: dict[str, Any], source: Path
) -> tuple[float, str]:
    """Upload a CSV as a job, wait until it succeeds: (seconds, job id)."""
    seconds, job = http_job(client, job_type, options, source.read_bytes(), "text/csv")
    return seconds, str(job["id"])


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def worker_uss(server_pid: int) -> list[int]:
    """Private memory of each pool worker (the forkserver's children), largest first."""
    sizes = []
    with contextlib.suppress(psutil.Error):
        for process in psutil.Process(server_pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "forkserver" in " ".join(process.parent().cmdline()):
                    sizes.append(process.memory_full_info().uss)
    return sorted(sizes, reverse=True)


@dataclass
class SizeResult:
    copies: int
    release_id: str
    nodes: int
    segments: int
    import_seconds: float
    import_cpu_seconds: float
    import_peak_rss: int
    release_bytes: int
    first_job: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    worker_uss: list[int] = field(default_factory=list)
    answers: dict[str, bytes] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)
    """The one-minute load average at the start of the import, at its end and after the warm
    jobs."""


def options_for(job_type: str, release_id: str, inputs: Inputs) -> dict[str, Any]:
    options: dict[str, Any] = {"release": release_id}
    if job_type == "geocode":
        options["at"] = inputs.at
    return options


def measure(
    copies: int, pbf: Path, nodes: int, cache: Path, inputs: Inputs | None
) -> tuple[SizeResult, Inputs]:
    """Import the region and run each type's first job on a fresh server."""
    releases = cache / "releases"
    load = [os.getloadavg()[0]]
    release_id, seconds, cpu, peak = import_region(pbf, releases, f"scale-x{copies}")
    load.append(os.getloadavg()[0])
    release = ReleaseStore(releases).load(release_id)
    if inputs is None:
        folder = cache / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        inputs = make_inputs(release, folder)
    result = SizeResult(
        copies=copies,
        release_id=release_id,
        nodes=nodes,
        segments=release.manifest.counts["segments"],
        import_seconds=seconds,
        import_cpu_seconds=cpu,
        import_peak_rss=peak,
        release_bytes=folder_bytes(releases / release_id),
        load=load,
    )
    for job_type in JOB_TYPES:
        with serve(releases, _fresh(cache / "server")) as (client, _):
            options = options_for(job_type, release_id, inputs)
            result.first_job[job_type], _ = run_job(
                client, job_type, options, inputs.small[job_type]
            )
    return result, inputs


def measure_warm(results: list[SizeResult], cache: Path, inputs: Inputs) -> None:
    """Warm jobs on one server per size (one worker each), the sizes taking turns job by
    job, so that other work on the machine slows every size alike; then each worker's USS."""
    releases = cache / "releases"
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(serve(releases, _fresh(cache / f"server-x{result.copies}")))
            for result in results
        ]
        for job_type in JOB_TYPES:
            for result, (client, _) in zip(results, servers, strict=True):
                options = options_for(job_type, result.release_id, inputs)
                run_job(client, job_type, options, inputs.small[job_type])
            for number, large in enumerate(inputs.large):
                for result, (client, _) in zip(results, servers, strict=True):
                    options = options_for(job_type, result.release_id, inputs)
                    seconds, job_id = run_job(client, job_type, options, large[job_type])
                    rate = LARGE[job_type] / seconds
                    result.throughput[job_type] = max(result.throughput.get(job_type, 0), rate)
                    if number == 0:
                        answers = client.get(f"/v1/jobs/{job_id}/results").content
                        result.answers[job_type] = answers
        for result, (_, pid) in zip(results, servers, strict=True):
            result.worker_uss = worker_uss(pid)
            result.load.append(os.getloadavg()[0])


def render(results: list[SizeResult], console: Console) -> None:
    base = results[0]
    table = Table(title="release size: import, disk, first job, warm jobs, worker memory")
    for column in (
        "copies",
        "nodes",
        "segments",
        "import s",
        "import CPU s",
        "import peak RSS MB",
        "release MB",
        "first job s (geo / rev / road)",
        "warm records/s (geo / rev / road)",
        "vs 1x",
        "worker USS MB",
        "copy-0 answers",
        "load avg (start / imported / warm end)",
    ):
        table.add_column(column, justify="right")
    for result in results:
        differ = {t: _rows_differ(result.answers[t], base.answers[t]) for t in JOB_TYPES}
        table.add_row(
            f"{result.copies}x",
            f"{result.nodes / 1e6:.2f} M",
            f"{result.segments:,}",
            f"{result.import_seconds:.1f}",
            f"{result.import_cpu_seconds:.1f}",
            f"{result.import_peak_rss / MB:,.0f}",
            f"{result.release_bytes / MB:,.0f}",
            " / ".join(f"{result.first_job[t]:.1f}" for t in JOB_TYPES),
            " / ".join(f"{result.throughput[t]:,.0f}" for t in JOB_TYPES),
            " / ".join(f"{result.throughput[t] / base.throughput[t]:.2f}" for t in JOB_TYPES),
            ", ".join(f"{uss / MB:,.0f}" for uss in result.worker_uss) or "-",
            "identical"
            if not any(differ.values())
            else "differ: " + ", ".join(f"{t} {n} rows" for t, n in differ.items() if n),
            " / ".join(f"{load:.1f}" for load in result.load),
        )
    console.print(table)


def _rows_differ(one: bytes, other: bytes) -> int:
    lines, others = one.splitlines(), other.splitlines()
    return sum(a != b for a, b in zip(lines, others, strict=False)) + abs(len(lines) - len(others))


def count_nodes(pbf: Path) -> int:
    return sum(1 for _ in osmium.FileProcessor(str(pbf), osmium.osm.NODE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="copies per region, e.g. 1,10")
    parser.add_argument("--source", type=Path, default=SHARED_OSM / "andorra.osm.pbf")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "geobatch-scale",
        help="where regions, releases and inputs are kept between runs",
    )
    args = parser.parse_args()
    sizes = sorted({1, *(int(size) for size in args.sizes.split(","))})
    console = Console(width=200)
    nodes = count_nodes(args.source)
    warm_gazetteer(args.source, args.cache / "releases")
    results: list[SizeResult] = []
    inputs: Inputs | None = None
    for copies in sizes:
        console.print(f"{copies}x: writing the region, importing it, first jobs ...")
        pbf = region(args.source, copies, args.cache / "regions")
        result, inputs = measure(copies, pbf, copies * nodes, args.cache, inputs)
        results.append(result)
    assert inputs is not None
    console.print("warm jobs, sizes taking turns ...")
    measure_warm(results, args.cache, inputs)
    render(results, console)


if __name__ == "__main__":
    main()
