"""Throughput of the road matching engine on one core.

Run with ``.venv/bin/python benchmarks/roadmatch.py [--releases DIR] [--repeat N] [--json PATH]``.

The process pins itself to one CPU (and numeric libraries to one thread), builds the road
network of each release (the default Helsinki one, Monaco and Andorra when
``../shared/data/osm`` is present), and times ``match_lines`` on synthetic road sets made from
the release's own ways by ``evals/roadmatch_synthetic.py`` (``offset``: shifted 2-10 m;
``combined``: offset, noisy and split; ``merge``: chains of ways, i.e. longer roads). The
engine is timed as the job runs it, ``match_columns`` (the answer in columns, no object per
road); ``job chunk, warm`` is a ``road_match`` chunk of the ``combined`` roads the way a warm
worker processes it: the chunk's Parquet read, the job type's ``run`` (inputs decoded,
matched, result table built), its tally and the result Parquet written. Each time is the
best of ``--repeat`` runs after a warm-up run, wall-clock and CPU (the CPU time is the
steadier figure on a busy machine). Targets: >= 1,000 roads/s and >= 200 km/s.

Why a ratio: absolute numbers move with the machine. Next to each set the script times a
baseline on the same lines in the same run - plain nearest-segment snapping (the same
resampling, an STRtree nearest query per sample, the distinct segments per road) - and prints
engine throughput / baseline throughput, which is what to compare across runs.

To add a measurement (e.g. an end-to-end job), append a function to ``MEASUREMENTS`` that
takes the context and returns rows.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evals"))

from roadmatch_synthetic import Case, build_cases, releases, ways_of

from geobatch.engines.roadmatch import MatchParams, RoadNetwork, match_columns, network_for
from geobatch.engines.roadmatch.candidates import find_candidates
from geobatch.engines.roadmatch.geometry import resample
from geobatch.jobs.types import CommonOptions, job_type
from geobatch.reference import Release

SETS = ("offset", "combined", "merge")


@dataclass(frozen=True, kw_only=True)
class Row:
    release: str
    subject: str
    roads: int
    km: float
    seconds: float
    cpu_seconds: float
    baseline_seconds: float | None

    @property
    def roads_per_s(self) -> float:
        return self.roads / self.seconds

    @property
    def km_per_s(self) -> float:
        return self.km / self.seconds


@dataclass(frozen=True, kw_only=True)
class Context:
    root: Path
    repeat: int
    params: MatchParams


def best_time(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds over ``repeat`` runs after a warm-up run."""
    run()
    wall = cpu = float("inf")
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall, cpu


def nearest_snapping(lines: list[shapely.LineString], network: RoadNetwork) -> list[list[str]]:
    """The baseline: each sample snapped to its nearest segment, distinct segments per road."""
    metric = network.projection.project(np.asarray(lines, dtype=object))
    samples = resample(metric, MatchParams().spacing_m)
    nearest = find_candidates(samples, network, 30.0, 1)
    key = np.unique(samples.line[nearest.point] * len(network) + nearest.segment)
    bounds = np.searchsorted(key // len(network), np.arange(len(lines) + 1))
    ids = np.asarray([network.segment_ids[int(k)] for k in key % len(network)], dtype=object)
    return [list(ids[bounds[i] : bounds[i + 1]]) for i in range(len(lines))]


def lonlat(case: Case, network: RoadNetwork) -> list[shapely.LineString]:
    projection = network.projection
    return list(
        shapely.transform(
            np.asarray(case.lines, dtype=object),
            lambda xy: np.column_stack(projection.inverse(xy[:, 0], xy[:, 1])),
        )
    )


def engine_alone(context: Context) -> list[Row]:
    rows: list[Row] = []
    for release in releases(context.root):
        name = release.manifest.name
        started, started_cpu = time.perf_counter(), time.process_time()
        network = RoadNetwork.from_release(release)
        build, build_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        rows.append(
            Row(
                release=name,
                subject=f"network build, cold ({len(network)} segments)",
                roads=0,
                km=0.0,
                seconds=build,
                cpu_seconds=build_cpu,
                baseline_seconds=None,
            )
        )
        ways = ways_of(network, release.table("segments"))
        cases = build_cases(network, ways, np.random.default_rng(7))
        for kind in SETS:
            case, against = cases[kind]
            lines = lonlat(case, against)
            km = float(sum(line.length for line in case.lines)) / 1000.0

            def engine(
                lines: list[shapely.LineString] = lines,
                case: Case = case,
                network: RoadNetwork = network,
            ) -> object:
                return match_columns(lines, case.names, network, context.params, oneway=case.oneway)

            def baseline(
                lines: list[shapely.LineString] = lines, network: RoadNetwork = network
            ) -> object:
                return nearest_snapping(lines, network)

            seconds, cpu_seconds = best_time(engine, context.repeat)
            rows.append(
                Row(
                    release=name,
                    subject=f"match_columns, {kind}",
                    roads=len(lines),
                    km=km,
                    seconds=seconds,
                    cpu_seconds=cpu_seconds,
                    baseline_seconds=best_time(baseline, context.repeat)[0],
                )
            )
    return rows


def chunk_records(case: Case, network: RoadNetwork) -> bytes:
    """The test roads as a chunk file of ``road_match`` records (GeoParquet, WKB)."""
    lines = lonlat(case, network)
    table = pa.table(
        {
            "_ordinal": pa.array(np.arange(1, len(lines) + 1), pa.int64()),
            "recId": pa.array([str(i) for i in range(len(lines))], pa.string()),
            "name": pa.array(case.names, pa.string()),
            "oneway": pa.array(case.oneway, pa.int8()),
            "geometry": pa.array(shapely.to_wkb(np.asarray(lines, dtype=object)), pa.binary()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def process_chunk(chunk: bytes, options: CommonOptions, release: Release) -> object:
    """A chunk as a warm worker processes it, less the storage: read, run, tally, write."""
    kind = job_type("road_match")
    records = pq.read_table(io.BytesIO(chunk))
    outcome = kind.run(records, options, release)
    kind.tally(outcome)
    pq.write_table(outcome.results, io.BytesIO())
    pq.write_table(outcome.errors, io.BytesIO())
    return outcome


def job_chunk(context: Context) -> list[Row]:
    kind = job_type("road_match")
    rows: list[Row] = []
    for release in releases(context.root):
        network = network_for(release)
        ways = ways_of(network, release.table("segments"))
        case, against = build_cases(network, ways, np.random.default_rng(7))["combined"]
        chunk = chunk_records(case, against)
        options = kind.parse_options({"release": release.manifest.id})
        run = functools.partial(process_chunk, chunk, options, release)
        seconds, cpu_seconds = best_time(run, context.repeat)
        rows.append(
            Row(
                release=release.manifest.name,
                subject="job chunk, warm (combined)",
                roads=len(case.lines),
                km=float(sum(line.length for line in case.lines)) / 1000.0,
                seconds=seconds,
                cpu_seconds=cpu_seconds,
                baseline_seconds=None,
            )
        )
    return rows


MEASUREMENTS: list[Callable[[Context], list[Row]]] = [engine_alone, job_chunk]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=Path, help="release folder to build into and reuse")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="geobatch-bench-") as scratch:
        context = Context(
            root=args.releases or Path(scratch), repeat=args.repeat, params=MatchParams()
        )
        for measure in MEASUREMENTS:
            rows.extend(measure(context))
    table = Table(title="road matching throughput, one core (targets: 1,000 roads/s, 200 km/s)")
    columns = ("release", "what", "roads", "km", "seconds", "cpu s", "roads/s", "km/s")
    for column in (*columns, "roads/s (cpu)", "km/s (cpu)", "vs snapping"):
        table.add_column(column, justify="left" if column in ("release", "what") else "right")
    for row in rows:
        ratio = "-" if row.baseline_seconds is None else f"{row.baseline_seconds / row.seconds:.2f}"
        table.add_row(
            row.release,
            row.subject,
            str(row.roads) if row.roads else "-",
            f"{row.km:.1f}" if row.roads else "-",
            f"{row.seconds:.3f}",
            f"{row.cpu_seconds:.3f}",
            f"{row.roads_per_s:,.0f}" if row.roads else "-",
            f"{row.km_per_s:,.0f}" if row.roads else "-",
            f"{row.roads / row.cpu_seconds:,.0f}" if row.roads else "-",
            f"{row.km / row.cpu_seconds:,.0f}" if row.roads else "-",
            ratio,
        )
    Console(width=160).print(table)
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))


if __name__ == "__main__":
    main()
