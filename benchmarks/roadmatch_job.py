"""Road matching throughput per worker process: the engine alone and as a warm job, on one core.

Run with ``.venv/bin/python benchmarks/roadmatch_job.py [--roads N] [--release PATH]``: one
command measures every set on about ``--roads`` roads (25,000 by default) and prints, per set,
roads/s and km/s in CPU time and in wall time.

Sets (each repeated until it has about ``--roads`` roads; the Andorra and Monaco extracts come
from ``../shared/data/osm``, and sets whose extract is absent are left out):

- **Andorra offset**, **Monaco offset**: the release's OSM ways (its segments end to end),
  each moved sideways by 2-10 m as ``evals/roadmatch_synthetic.py`` does, with their name and
  oneway flag, as customer road datasets come;
- **Andorra merge**: chains of two or three ways meeting end to end, as one long road each
  (the ``merge`` kind of the same evaluation), where the Viterbi recursion runs longest;
- **segments**: reference segments (of ``--release``, Andorra when present, else the bundled
  Helsinki release) moved sideways by a random 2-8 m with 1 m of noise on every vertex;
- the DC city GIS and TIGER roads (``../shared/data/dc-roads``, ``--dc-copies`` times over,
  matched onto the DC OSM roads) when ``--dc-copies`` is above 0.

Runs per set:

1. **engine**: the ``road_match`` job type's chunk function over the roads in chunks of
   ``GEOBATCH_CHUNK_SIZE`` (5,000) in this process, after a warm-up chunk (the network is
   opened once per process); CPU time of this process (steadier on a busy machine) and wall;
2. **job, warm**: one ``geobatch serve`` with one worker process (``GEOBATCH_WORKERS=1``),
   the roads uploaded as GeoParquet in a ``road_match`` job, after a warm-up job on the same
   release, timed from the upload to the long poll saying it succeeded (upload, split,
   chunks, result parts and output file); CPU time is that of the server and its worker
   together over the job, wall time the client's.

Targets per worker process, end to end as a warm job: >= 9,000 roads/s and >= 1,500 km/s.

Measured with ``--roads 25000``, before (the engine as it was before the step-major Viterbi,
length-sorted batches and batch-independent sums) and after, both run at once on the 2-core
shared development machine under a load average of about 20: CPU times are the figures to
compare; wall times there were 7-14 times the CPU times and say nothing about the engine.

| set (roads, km) | engine CPU, s | engine roads/s | engine km/s | job warm CPU, s |
|---|---|---|---|---|
| Andorra offset (25,498, 10,104) | 7.07 -> 5.56 | 3,605 -> 4,589 | 1,429 -> 1,819 | 13.4 -> 10.8 |
| Andorra merge (25,056, 24,164) | 19.03 -> 12.30 | 1,317 -> 2,037 | 1,270 -> 1,965 | 24.3 -> 18.1 |
| Monaco offset (24,713, 5,013) | 5.80 -> 4.87 | 4,259 -> 5,077 | 864 -> 1,030 | 5.6 -> 8.9 |
| segments (25,000, 7,333) | 5.34 -> 5.07 | 4,686 -> 4,927 | 1,374 -> 1,445 | 6.6 -> 8.0 |

The job's CPU time (server and worker together) varied more than the change between runs
on that machine.

Measured again with ``--roads 25000`` on that machine under a load average of about 3,
main before and after candidate search by shared cell ranges (and pieces clear of every
search box left out), the shape score's Frechet distance in linear time, LineStrings decoded
without copies, batches cut from the longest road down and fewer sorts and gathers per
batch, one run right after the other; the answers and job statistics are identical:

| set | engine CPU, s | job warm CPU, s | job roads/s (CPU) | job km/s (CPU) |
|---|---|---|---|---|
| Andorra offset | 3.05 -> 2.25 | 3.39 -> 2.44 | 7,522 -> 10,450 | 2,981 -> 4,141 |
| Andorra merge | 5.49 -> 3.86 | 5.90 -> 4.36 | 4,247 -> 5,747 | 4,096 -> 5,542 |
| Monaco offset | 2.43 -> 1.79 | 2.46 -> 2.02 | 10,046 -> 12,234 | 2,038 -> 2,482 |
| segments | 2.22 -> 1.60 | 2.39 -> 1.78 | 10,460 -> 14,045 | 3,068 -> 4,120 |

Targets per worker, end to end as a warm job (>= 9,000 roads/s and >= 1,500 km/s), are met
in CPU time by the sets of short roads; Andorra merge (roads of about 1 km) meets the km/s
target but not the roads/s one: there the Viterbi recursion, a dozen array operations per
step for every 15 m of a batch's longest road, is a third of the time, and larger batches
(``batch_km``) were measured no faster.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from rich.console import Console
from rich.table import Table

from geobatch.engines.roadmatch import network_for
from geobatch.jobs.types import job_type
from geobatch.jobs.types.road_match import RoadMatchOptions
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm
from harness import http_job, serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evals"))
from roadmatch_data import osm_roads  # the DC files use negative ids: the XML reader
from roadmatch_synthetic import build_cases, ways_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ANDORRA = SHARED / "osm" / "andorra.osm.pbf"
MONACO = SHARED / "osm" / "monaco.osm.pbf"
CHUNK = 5000
TARGET_ROADS_S = 9000.0
TARGET_KM_S = 1500.0
M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class RoadSet:
    """Road records (``id``, ``name``, ``oneway``, WKB ``geometry``) and their release."""

    label: str
    release: Release
    roads: pa.Table
    km: float


def build_release(store: ReleaseStore, source: Path | None) -> Release:
    """The release of an OSM extract (imported once per run), else the bundled default."""
    if source is None or not source.is_file():
        return store.load(ensure_default_release(store).id)
    if source not in _IMPORTED:
        _IMPORTED[source] = store.load(import_osm(source, store, gazetteer=False).id)
    return _IMPORTED[source]


_IMPORTED: dict[Path, Release] = {}


def road_records(
    lines: np.ndarray, names: list[str | None] | None, oneway: list[int] | None, copies: int
) -> pa.Table:
    """``lines`` (lon/lat) ``copies`` times over as road records."""
    size = len(lines) * copies
    columns: dict[str, pa.Array] = {"id": pa.array([f"road-{i}" for i in range(size)])}
    if names is not None:
        columns["name"] = pa.array(list(names) * copies, pa.string())
    if oneway is not None:
        columns["oneway"] = pa.array(list(oneway) * copies, pa.int8())
    columns["geometry"] = pa.array(shapely.to_wkb(np.tile(lines, copies)), pa.binary())
    return pa.table(columns)


def way_sets(label: str, release: Release, kinds: tuple[str, ...], roads: int) -> list[RoadSet]:
    """The release's ways perturbed as the synthetic evaluation does, about ``roads`` each."""
    network = network_for(release)
    ways = ways_of(network, release.table("segments"))
    cases = build_cases(network, ways, np.random.default_rng(7))
    out = []
    for kind in kinds:
        case = cases[kind][0]
        metric = np.asarray(case.lines, dtype=object)
        lines = shapely.transform(
            metric, lambda xy: np.column_stack(network.projection.inverse(xy[:, 0], xy[:, 1]))
        )
        copies = max(1, round(roads / len(lines)))
        km = float(shapely.length(metric).sum()) / 1000 * copies
        table = road_records(lines, case.names, case.oneway, copies)
        out.append(RoadSet(f"{label} {kind}", release, table, km))
    return out


def make_roads(release: Release, count: int, seed: int = 7) -> pa.Table:
    """Reference segments moved sideways 2-8 m with 1 m vertex noise, as road records."""
    rng = np.random.default_rng(seed)
    segments = release.table("segments")
    lengths = segments.column("length_m").to_numpy()
    pool = np.flatnonzero(lengths > 20)
    rows = rng.choice(pool, size=count)
    lines = shapely.from_wkb(segments.column("geometry").take(pa.array(rows)).to_numpy(False))
    lat = float(np.mean(shapely.get_coordinates(lines[:100])[:, 1]))
    per_m = np.array([1 / (M_PER_DEG * np.cos(np.radians(lat))), 1 / M_PER_DEG])
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    start, end = (
        shapely.get_coordinates(shapely.get_point(lines, 0)),
        shapely.get_coordinates(shapely.get_point(lines, -1)),
    )
    direction = (end - start) / per_m
    normal = np.column_stack([-direction[:, 1], direction[:, 0]])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    offset = rng.uniform(2, 8, count) * rng.choice([-1, 1], count)
    moved = coords + (normal[owner] * offset[owner, None] + rng.normal(0, 1, coords.shape)) * per_m
    geometries = shapely.linestrings(moved, indices=owner)
    return pa.table(
        {
            "id": pa.array([f"road-{i}" for i in range(count)]),
            "name": segments.column("name").take(pa.array(rows)),
            "geometry": pa.array(shapely.to_wkb(geometries), pa.binary()),
        }
    )


def segment_set(release: Release, count: int) -> RoadSet:
    """``make_roads`` as a set, its length measured in the release's metres."""
    roads = make_roads(release, count)
    lines = shapely.from_wkb(roads.column("geometry").to_numpy(zero_copy_only=False))
    metric = network_for(release).projection.project(lines)
    km = float(shapely.length(metric).sum()) / 1000
    return RoadSet(f"segments ({release.manifest.name})", release, roads, km)


def dc_set(store: ReleaseStore, copies: int) -> RoadSet | None:
    """The DC city GIS and TIGER roads, ``copies`` times over, and the DC OSM release."""
    folder = SHARED / "dc-roads"
    if copies < 1 or not (folder / "DcOsmRoads.osm").is_file():
        return None
    release = build_release(store, folder / "DcOsmRoads.osm")
    parts = [osm_roads(folder / name) for name in ("DcGisRoads.osm", "DcTigerRoads.osm")]
    lines = np.asarray([line for part in parts for line in part.lines], dtype=object)
    names = [name for part in parts for name in part.names]
    metric = network_for(release).projection.project(lines)
    km = float(shapely.length(metric).sum()) / 1000 * copies
    return RoadSet(f"DC GIS+TIGER x{copies}", release, road_records(lines, names, None, copies), km)


def bench_engine(road_set: RoadSet) -> dict[str, float]:
    """CPU and wall seconds of the job type's chunk function over every chunk, warm."""
    kind = job_type("road_match")
    options = kind.parse_options({"release": road_set.release.manifest.id})
    assert isinstance(options, RoadMatchOptions)
    size = road_set.roads.num_rows
    records = road_set.roads.add_column(0, "recId", road_set.roads.column("id")).add_column(
        0, "_ordinal", pa.array(np.arange(1, size + 1), pa.int64())
    )
    kind.run(records.slice(0, CHUNK), options, road_set.release)  # opens the network
    started, cpu_started = time.perf_counter(), time.process_time()
    for offset in range(0, size, CHUNK):
        kind.run(records.slice(offset, CHUNK), options, road_set.release)
    return {
        "cpu": time.process_time() - cpu_started,
        "wall": time.perf_counter() - started,
    }


def _cpu_seconds(pid: int) -> float:
    """CPU seconds so far of the server process and every process it started."""
    server = psutil.Process(pid)
    total = 0.0
    for process in [server, *server.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def bench_job(client: httpx.Client, pid: int, road_set: RoadSet) -> dict[str, Any]:
    """A warm-up job, then the timed one: wall seconds, platform CPU seconds, statistics."""
    options = {"release": road_set.release.manifest.id}
    media = "application/vnd.apache.parquet"
    warm_up = io.BytesIO()
    pq.write_table(road_set.roads.slice(0, 200), warm_up)
    http_job(client, "road_match", options, warm_up.getvalue(), media)
    body = io.BytesIO()
    pq.write_table(road_set.roads, body)
    cpu_started = _cpu_seconds(pid)
    seconds, job = http_job(client, "road_match", options, body.getvalue(), media)
    return {
        "wall": seconds,
        "cpu": _cpu_seconds(pid) - cpu_started,
        "statistics": job["statistics"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roads", type=int, default=25_000, help="roads per set, about")
    parser.add_argument("--dc-copies", type=int, default=0, help="times the DC roads repeat")
    parser.add_argument("--release", type=Path, default=ANDORRA, help="OSM extract of segments")
    parser.add_argument("--no-job", action="store_true", help="measure the engine only")
    args = parser.parse_args()
    console = Console(width=150)
    rows = []
    with tempfile.TemporaryDirectory(prefix="geobatch-bench-") as tmp:
        folder = Path(tmp)
        store = ReleaseStore(folder / "releases")
        sets: list[RoadSet] = []
        if ANDORRA.is_file():
            sets += way_sets(
                "Andorra", build_release(store, ANDORRA), ("offset", "merge"), args.roads
            )
        if MONACO.is_file():
            sets += way_sets("Monaco", build_release(store, MONACO), ("offset",), args.roads)
        sets.append(segment_set(build_release(store, args.release), args.roads))
        dc = dc_set(store, args.dc_copies)
        if dc is not None:
            sets.append(dc)
        engines = [bench_engine(road_set) for road_set in sets]
        jobs: list[dict[str, Any] | None] = [None] * len(sets)
        if not args.no_job:
            with serve(store.root, folder, GEOBATCH_CHUNK_SIZE=str(CHUNK)) as (client, pid):
                jobs = [bench_job(client, pid, road_set) for road_set in sets]
        rows = list(zip(sets, engines, jobs, strict=True))
    table = Table(title="road matching per worker process: engine alone and as a warm job")
    for column in ("set", "roads", "km", "run", "seconds", "roads/s", "km/s", "target"):
        table.add_column(column, justify="left" if column in ("set", "run") else "right")
    for road_set, engine, job in rows:
        count = road_set.roads.num_rows
        runs = [("engine, CPU", engine["cpu"]), ("engine, wall", engine["wall"])]
        if job is not None:
            runs += [("job warm, CPU", job["cpu"]), ("job warm, wall", job["wall"])]
        for name, seconds in runs:
            rate, km_rate = count / seconds, road_set.km / seconds
            met = rate >= TARGET_ROADS_S and km_rate >= TARGET_KM_S
            table.add_row(
                road_set.label,
                f"{count:,}",
                f"{road_set.km:,.0f}",
                name,
                f"{seconds:.2f}",
                f"{rate:,.0f}",
                f"{km_rate:,.0f}",
                ("met" if met else "missed") if name.startswith("job") else "-",
            )
    console.print(table)
    for road_set, _engine, job in rows:
        if job is None:
            continue
        stats = job["statistics"]
        console.print(
            f"{road_set.label}: job execution_time_sec {stats['execution_time_sec']}, "
            f"kms_processed {stats['kms_processed']:.0f}, full "
            f"{stats['roads_fully_matched_ratio']}, partial "
            f"{stats['roads_partially_matched_ratio']}, unmatched {stats['roads_unmatched_ratio']}"
        )


if __name__ == "__main__":
    main()
