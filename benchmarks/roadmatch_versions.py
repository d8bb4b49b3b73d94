"""Road matching throughput on customer-like roads: an old snapshot's roads as a warm job.

Run with ``.venv/bin/python benchmarks/roadmatch_versions.py [--copies N] [--profile PATH]``.

The roads of ``osm/monaco-2012.osm.gz``, perturbed as ``evals/roadmatch_versions.py`` does
(offsets, jitter, simplification, splits and merges; names and oneway kept), repeated
``--copies`` times (10 by default), are matched onto a release of ``osm/monaco.osm.pbf``:

1. **engine**: ``road_match``'s chunk function over chunks of 5,000 records in this process,
   after a warm-up run; the best CPU time of ``--repeat`` runs (the steadier figure on a busy
   machine) and the wall time of the same runs;
2. **job**: the roads as a CSV (WKT) ``road_match`` job on a one-worker platform, timed from
   create to succeeded, once cold (worker start and network build) and once warm, as a
   long-running service runs it.

Targets per worker process, end to end as a warm job: >= 9,000 roads/s and >= 1,500 km/s.
``--profile`` writes the engine's cProfile statistics (CPU time) to a file.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely
from rich.console import Console
from rich.table import Table

from geobatch.engines.roadmatch import network_for
from geobatch.jobs.types import job_type
from geobatch.jobs.types.road_match import RoadMatchOptions
from geobatch.reference import Release, ReleaseStore, import_osm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evals"))
from roadmatch_data import SHARED_DATA, data_or_exit

from harness import best_of, job_seconds
from roadmatch_versions import Road, index_new, perturbed_roads, read_ways, truth_of_edges

CHUNK = 5000
TARGET_ROADS_S = 9000.0
TARGET_KM_S = 1500.0


def customer_roads(release: Release, seed: int = 2012) -> list[Road]:
    old = read_ways(SHARED_DATA / "osm" / "monaco-2012.osm.gz")
    new_osm = read_ways(SHARED_DATA / "osm" / "monaco.osm.pbf")
    network = network_for(release)
    old_nodes = {ref for way in old.values() for ref in way.refs}
    new = index_new(new_osm, old_nodes, network, release.table("segments"))
    truth = {way_id: truth_of_edges(way, new, network) for way_id, way in old.items()}
    return perturbed_roads(old, truth, network, seed)


def write_csv(roads: list[Road], copies: int, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["recId", "id", "name", "oneway", "geometry"])
        for copy in range(copies):
            for k, road in enumerate(roads):
                ident = f"{copy}-{k}"
                writer.writerow([ident, ident, road.name or "", road.oneway, road.line.wkt])


def records_of(roads: list[Road], copies: int) -> pa.Table:
    size = len(roads) * copies
    return pa.table(
        {
            "_ordinal": pa.array(np.arange(1, size + 1), pa.int64()),
            "recId": pa.array([str(i) for i in range(size)], pa.string()),
            "name": pa.array([r.name for r in roads] * copies, pa.string()),
            "oneway": pa.array([r.oneway for r in roads] * copies, pa.int8()),
            "geometry": pa.array(shapely.to_wkb(np.asarray([r.line for r in roads] * copies))),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    data_or_exit("osm/monaco-2012.osm.gz", "osm/monaco.osm.pbf")
    console = Console(width=140)
    kind = job_type("road_match")
    with tempfile.TemporaryDirectory(prefix="geobatch-bench-") as tmp:
        folder = Path(tmp)
        store = ReleaseStore(folder / "releases")
        release = store.load(
            import_osm(SHARED_DATA / "osm" / "monaco.osm.pbf", store, gazetteer=False).id
        )
        roads = customer_roads(release)
        records = records_of(roads, args.copies)
        count = records.num_rows
        options = kind.parse_options({"release": release.manifest.id})
        assert isinstance(options, RoadMatchOptions)

        def engine() -> None:
            for offset in range(0, count, CHUNK):
                kind.run(records.slice(offset, CHUNK), options, release)

        engine()  # warm-up: the network is built once per process
        started = time.perf_counter()
        cpu = best_of(args.repeat, engine)
        wall = (time.perf_counter() - started) / args.repeat
        if args.profile is not None:
            profile = cProfile.Profile(time.process_time)
            profile.runcall(engine)
            profile.dump_stats(str(args.profile))
        network = network_for(release)
        metric = network.projection.project(np.asarray([r.line for r in roads], dtype=object))
        km = float(shapely.length(metric).sum()) / 1000 * args.copies
        source = folder / "roads.csv"
        write_csv(roads, args.copies, source)
        job = job_seconds(
            store.root, folder / "platform", source, "road_match", {"release": release.manifest.id}
        )
    table = Table(title=f"{count:,} roads, {km:,.0f} km ({len(roads):,} x {args.copies})")
    for column in ("run", "seconds", "roads/s", "km/s", "target"):
        table.add_column(column, justify="right")
    for name, seconds in (
        ("engine, CPU", cpu),
        ("engine, wall (mean)", wall),
        ("job, cold", job.cold),
        ("job, warm", job.warm),
    ):
        met = count / seconds >= TARGET_ROADS_S and km / seconds >= TARGET_KM_S
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{count / seconds:,.0f}",
            f"{km / seconds:,.0f}",
            ("met" if met else "missed") if name.startswith("job, warm") else "-",
        )
    console.print(table)


if __name__ == "__main__":
    main()
