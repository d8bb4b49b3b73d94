"""Reverse geocoding and lookup throughput on one CPU core: the engines alone and whole jobs.

Run with ``.venv/bin/python benchmarks/reverse.py [--points N] [--json PATH]``.

The process pins itself to one core first, so the worker processes the job platform starts
inherit it and every number is single-core. For each release (the bundled Helsinki default
always; Monaco, Andorra and Baltimore from ``../shared/data/osm`` when present), built into a
temporary store:

1. **engine** - ``reverse_geocode`` over N random points inside the release's bounding box
   (best of 3, indexes already built; target >= 200,000 points/s), next to two baselines timed
   in the same run on the same points: the ``validate`` engine on the same records, and one
   bare ``cKDTree`` nearest-address query (the least any nearest-neighbour answer costs).
2. **lookup** - ``lookup`` of N ids drawn from every table of the release, one in ten unknown.
3. **job** - an N-record CSV run end to end through the job platform (in-process
   ``open_platform``, SQLite, one worker): upload, split, chunks, output assembly, timed from
   create to succeeded, for ``reverse_geocode`` and for a ``validate`` job of the same file
   (the platform's own cost: the ratio shows what the engine adds). Each job runs twice on
   one platform: ``job recs/s`` is the second run, as a running service does it; ``cold
   job`` the first, which also starts the worker process and builds the release's indexes.

Random points in a bounding box are a hard case: many fall in the sea or in mountains, far from
any street, and are answered from the locality search. The level mix is printed with the
numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table
from scipy.spatial import cKDTree

from geobatch.engines import RECORD_SCHEMAS, validate_records
from geobatch.engines.geocode.lookup import lookup, lookup_index
from geobatch.engines.geocode.reverse import reverse_geocode
from geobatch.engines.geocode.reverse_index import reverse_index
from geobatch.engines.geocode.spatial import sphere_xyz
from geobatch.reference import Release, ReleaseStore
from harness import best_of, job_seconds, releases

ENGINE_TARGET = 200_000
SHORT = {"houseNumber": "hn", "interpolated": "int", "street": "st", "locality": "loc"}


def random_points(release: Release, count: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    bbox = release.manifest.bbox
    assert bbox is not None
    rng = np.random.default_rng(seed)
    return rng.uniform(bbox[1], bbox[3], count), rng.uniform(bbox[0], bbox[2], count)


def records(lat: np.ndarray, lon: np.ndarray) -> pa.Table:
    """Chunk records as CSV input gives them: coordinates as text."""
    return pa.table(
        {
            "_ordinal": pa.array(np.arange(len(lat)), pa.int64()),
            "recId": pa.array(np.arange(len(lat)).astype(str)),
            "lat": pa.array(np.char.mod("%.7f", lat)),
            "lon": pa.array(np.char.mod("%.7f", lon)),
        }
    )


def engine(release: Release, count: int) -> dict[str, Any]:
    lat, lon = random_points(release, count)
    reverse_index(release)
    reverse_geocode(release, lat[:100], lon[:100])
    answered = reverse_geocode(release, lat, lon)
    seconds = best_of(3, lambda: reverse_geocode(release, lat, lon))
    chunk = records(lat, lon)
    schema = RECORD_SCHEMAS["reverse_geocode"]
    validate_s = best_of(3, lambda: validate_records(chunk, schema))
    addresses = release.table("addresses")
    tree = cKDTree(
        sphere_xyz(addresses.column("lat").to_numpy(), addresses.column("lon").to_numpy())
    )
    xyz = sphere_xyz(lat, lon)
    kdtree_s = best_of(3, lambda: tree.query(xyz, k=1))
    levels = pc.value_counts(pc.fill_null(answered.column("match_level"), "none")).to_pylist()
    return {
        "points_per_s": count / seconds,
        "validate_per_s": count / validate_s,
        "kdtree_per_s": count / kdtree_s,
        "levels": {item["values"]: item["counts"] / count for item in levels},
    }


def lookups(release: Release, count: int) -> dict[str, Any]:
    index = lookup_index(release)
    known = index.objects.column("ref_id").to_numpy(zero_copy_only=False)
    rng = np.random.default_rng(11)
    ids = list(known[rng.integers(0, len(known), count)])
    for position in range(0, count, 10):
        ids[position] = f"osm:node/{position}0000000000"
    seconds = best_of(3, lambda: lookup(release, ids, 1))
    as_set = set(known.tolist())
    baseline = best_of(3, lambda: [i in as_set for i in ids])
    return {"ids_per_s": count / seconds, "set_probe_per_s": count / baseline}


def csv_file(folder: Path, release: Release, count: int) -> Path:
    lat, lon = random_points(release, count, seed=3)
    path = folder / f"points-{release.manifest.id}.csv"
    body = "recId,lat,lon\n" + "".join(
        f"r{i},{a:.7f},{b:.7f}\n" for i, (a, b) in enumerate(zip(lat, lon, strict=True))
    )
    path.write_text(body)
    return path


def jobs(store: Path, release: Release, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="geobatch-bench-") as scratch:
        folder = Path(scratch)
        path = csv_file(folder, release, count)
        release_id = release.manifest.id
        reverse_s = job_seconds(
            store, folder / "a", path, "reverse_geocode", {"release": release_id}
        )
        validate_s = job_seconds(
            store, folder / "b", path, "validate", {"target_type": "reverse_geocode"}
        )
    return {
        "job_per_s": count / reverse_s.warm,
        "cold_job_per_s": count / reverse_s.cold,
        "validate_job_per_s": count / validate_s.warm,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    console = Console(width=180)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="geobatch-releases-") as root:
        store = ReleaseStore(Path(root))
        console.print("building releases ...")
        for release in releases(store, ("monaco", "andorra", "baltimore")):
            name = release.manifest.id
            console.print(f"measuring {name} ...")
            results[name] = {
                **engine(release, args.points),
                **lookups(release, args.points),
                **jobs(store.root, release, args.points),
            }
    table = Table(title=f"reverse geocoding and lookup, one core, {args.points:,} records")
    for column in (
        "release",
        "engine pts/s",
        "x validate",
        "x kd-tree",
        "job recs/s",
        "cold job",
        "x validate job",
        "lookup ids/s",
        "x set probe",
        "levels",
    ):
        table.add_column(column, justify="left" if column in ("release", "levels") else "right")
    for name, r in results.items():
        levels = " ".join(f"{SHORT.get(k, k)} {v:.0%}" for k, v in sorted(r["levels"].items()))
        table.add_row(
            name,
            f"{r['points_per_s']:,.0f}" + (" ✓" if r["points_per_s"] >= ENGINE_TARGET else ""),
            f"{r['points_per_s'] / r['validate_per_s']:.2f}",
            f"{r['points_per_s'] / r['kdtree_per_s']:.2f}",
            f"{r['job_per_s']:,.0f}",
            f"{r['cold_job_per_s']:,.0f}",
            f"{r['job_per_s'] / r['validate_job_per_s']:.2f}",
            f"{r['ids_per_s']:,.0f}",
            f"{r['ids_per_s'] / r['set_probe_per_s']:.2f}",
            levels,
        )
    console.print(table)
    console.print(
        f"target: engine >= {ENGINE_TARGET:,} points/s (✓). Ratios: throughput over the "
        "baseline measured in this run (validate engine / bare k-d tree query / validate job "
        "of the same file / Python set membership of the same ids)."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
