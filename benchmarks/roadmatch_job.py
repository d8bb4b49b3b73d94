"""Road matching throughput, engine alone and as a ``road_match`` job end to end, on one core.

Run with ``.venv/bin/python benchmarks/roadmatch_job.py [--roads N] [--release PATH]``.

Test roads are built from a release's own segments (Andorra from ``../shared/data/osm`` when
present, else the bundled Helsinki release): each is a reference segment moved sideways by a
random 2-8 m with 1 m of noise on every vertex, drawn with replacement until there are
``--roads`` of them (20,000 by default), as GeoParquet (WKB geometry, ``id``, ``name``).

1. **engine**: ``match_records`` over the roads in chunks of ``GEOBATCH_CHUNK_SIZE`` (5,000) in
   this process, after the network is built (its build time is shown apart).
2. **job**: one ``geobatch serve`` with one worker process (``GEOBATCH_WORKERS=1``), the
   Parquet file uploaded as a ``road_match`` job and timed from the upload to the long poll
   saying it succeeded; includes the upload, the split, the worker's start-up (first set
   only) and network build, and the chunks (results are streamed on download, not timed).

Reported: roads/s and km/s of each (the engine also per CPU second of this process, which
a busy shared machine disturbs less than wall time), the job's own ``execution_time_sec``
and matched ratios, and the job's wall-time throughput as a ratio of the engine's (the
platform's overhead). The DC city GIS and TIGER roads (``../shared/data/dc-roads``, repeated
``--dc-copies`` times) are a second set, matched onto the DC OSM roads. Targets: at least
1,000 roads/s and 200 km/s on one core.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from rich.console import Console
from rich.table import Table

from geobatch.engines.roadmatch import MatchParams, network_for
from geobatch.engines.roadmatch.chunk import match_records
from geobatch.engines.roadmatch.matches import UNMATCHED
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm
from harness import http_job, serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evals"))
from roadmatch_data import osm_roads  # the DC files use negative ids: the XML reader

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ANDORRA = SHARED / "osm" / "andorra.osm.pbf"
CHUNK = 5000
TARGET_ROADS_S = 1000.0
TARGET_KM_S = 200.0
M_PER_DEG = 111_320.0


def build_release(store: ReleaseStore, source: Path | None) -> Release:
    if source is not None and source.is_file():
        return store.load(import_osm(source, store, gazetteer=False).id)
    return store.load(ensure_default_release(store).id)


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


def bench_engine(release: Release, roads: pa.Table) -> dict[str, float]:
    started = time.perf_counter()
    network = network_for(release)
    built = time.perf_counter() - started
    ordinals = pa.array(np.arange(1, roads.num_rows + 1), pa.int64())
    records = roads.add_column(0, "recId", roads.column("id")).add_column(0, "_ordinal", ordinals)
    params = MatchParams()
    km = 0.0
    matched = answered = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for offset in range(0, records.num_rows, CHUNK):
        batch = match_records(records.slice(offset, CHUNK), network, params)
        km += float(batch.matches.length_m.sum()) / 1000
        matched += int((batch.matches.status != UNMATCHED).sum())
        answered += len(batch.matches)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu_started,
        "network_s": built,
        "roads": roads.num_rows,
        "rejected": roads.num_rows - answered,
        "km": km,
        "matched_ratio": matched / max(answered, 1),
    }


def bench_job(client: httpx.Client, release_id: str, roads: pa.Table) -> dict[str, Any]:
    """Upload the roads as GeoParquet, wait for the job to end; seconds and statistics."""
    body = io.BytesIO()
    pq.write_table(roads, body)
    seconds, job = http_job(
        client,
        "road_match",
        {"release": release_id},
        body.getvalue(),
        "application/vnd.apache.parquet",
    )
    return {"seconds": seconds, "statistics": job["statistics"]}


def dc_roads(store: ReleaseStore, copies: int) -> tuple[Release, pa.Table] | None:
    """The DC city GIS and TIGER roads, ``copies`` times over, and the DC OSM release."""
    folder = SHARED / "dc-roads"
    if not (folder / "DcOsmRoads.osm").is_file():
        return None
    release = build_release(store, folder / "DcOsmRoads.osm")
    parts = [osm_roads(folder / name) for name in ("DcGisRoads.osm", "DcTigerRoads.osm")]
    lines = [line for part in parts for line in part.lines] * copies
    names = [name for part in parts for name in part.names] * copies
    table = pa.table(
        {
            "id": pa.array([f"road-{i}" for i in range(len(lines))]),
            "name": pa.array(names, pa.string()),
            "geometry": pa.array(shapely.to_wkb(np.asarray(lines)), pa.binary()),
        }
    )
    return release, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roads", type=int, default=20_000, help="synthetic roads")
    parser.add_argument("--dc-copies", type=int, default=40, help="times the DC roads repeat")
    parser.add_argument("--release", type=Path, default=ANDORRA, help="OSM extract to match on")
    args = parser.parse_args()
    console = Console(width=150)
    rows = []
    with tempfile.TemporaryDirectory(prefix="geobatch-bench-") as tmp:
        folder = Path(tmp)
        store = ReleaseStore(folder / "releases")
        release = build_release(store, args.release)
        sets = [(f"synthetic ({release.manifest.id})", release, make_roads(release, args.roads))]
        dc = dc_roads(store, args.dc_copies)
        if dc is not None:
            sets.append((f"DC GIS+TIGER x{args.dc_copies}", *dc))
        with serve(store.root, folder, GEOBATCH_CHUNK_SIZE=str(CHUNK)) as (client, _):
            for label, target, roads in sets:
                engine = bench_engine(target, roads)
                job = bench_job(client, target.manifest.id, roads)
                rows.append((label, roads.num_rows, engine, job))
    table = Table(title="road matching on one core: engine alone and as a job end to end")
    for column in (
        "set",
        "run",
        "roads",
        "seconds",
        "roads/s",
        "km/s",
        "matched",
        "vs engine",
        "target",
    ):
        table.add_column(column, justify="right")
    for label, count, engine, job in rows:
        stats = job["statistics"]
        engine_rate = count / engine["seconds"]
        for name, seconds, km, matched in (
            ("engine", engine["seconds"], engine["km"], engine["matched_ratio"]),
            ("engine, CPU time", engine["cpu_seconds"], engine["km"], engine["matched_ratio"]),
            ("job", job["seconds"], stats["kms_processed"], stats["roads_matched_ratio"]),
        ):
            rate = count / seconds
            ok = rate >= TARGET_ROADS_S and km / seconds >= TARGET_KM_S
            table.add_row(
                label,
                name,
                f"{count:,}",
                f"{seconds:.2f}",
                f"{rate:,.0f}",
                f"{km / seconds:,.1f}",
                f"{matched:.3f}",
                "-" if name == "engine, CPU time" else f"{rate / engine_rate:.2f}",
                "met" if ok else "missed",
            )
    console.print(table)
    for label, _count, engine, job in rows:
        stats = job["statistics"]
        console.print(
            f"{label}: network build {engine['network_s']:.2f} s, {engine['km']:.0f} km, "
            f"{engine['rejected']} roads rejected as bad geometries; job "
            f"execution_time_sec {stats['execution_time_sec']}, full "
            f"{stats['roads_fully_matched_ratio']}, partial "
            f"{stats['roads_partially_matched_ratio']}, unmatched {stats['roads_unmatched_ratio']}"
        )


if __name__ == "__main__":
    main()
