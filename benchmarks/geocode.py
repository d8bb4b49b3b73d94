"""Forward geocoding throughput on one CPU core: the engine alone and whole jobs.

Run with ``.venv/bin/python benchmarks/geocode.py [--records N] [--json PATH]``.

The process pins itself to one core first, so the worker the job platform starts inherits it
and every number is single-core. For each release (the bundled Helsinki default always;
Monaco and Baltimore from ``../shared/data/osm`` when present), built into a temporary store,
N records (default 100,000) are written from the release's own address points as users
write them: in full, without the locality, in lower case, with a random typo in the street,
or with a random house number (which is answered by interpolation or at street level). A
query already drawn is redrawn with another variant, so that the per-chunk memo of repeated
queries helps little; the ``distinct`` column says how far that got on each extract.

1. **engine** - ``geocode_records`` over the records in chunks of 5,000 (as the job
   platform hands them over; indexes built beforehand, the geocoder's remembered answers and
   the folded texts cleared before each run, so that every query is new to it, best of 2 by
   CPU time), next to the ``validate`` engine on the same chunks (the cost of merely reading
   every record).
2. **job** - the N records as a CSV, end to end through the job platform (in-process
   ``open_platform``, SQLite, one worker): upload, split, chunks, output assembly, timed from
   create to succeeded, for ``geocode`` and for a ``validate`` job of the same file. Each job
   runs twice on one platform: ``job recs/s`` is the second run, as a running service does
   it; ``cold job`` the first, which also starts the worker and builds the indexes (the
   gazetteer's takes a few seconds). The geocoder remembers answers, so the first run is of
   5,000 other queries, timed as ``cold job``.

Target: >= 15,000 records/s on one core for the engine and the warm job. Ratios compare
with the baseline measured in the same run, so they are what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv
from rich.console import Console
from rich.table import Table

from geobatch.engines import RECORD_SCHEMAS, validate_records
from geobatch.engines.geocode import forward_geocoder, geocode_records
from geobatch.engines.geocode.normalize import expand_text, fold, postcode_key, street_key
from geobatch.reference import Release, ReleaseStore
from harness import best_of, job_seconds, releases

TARGET = 15_000
WARM_UP = 5_000
CHUNK = 5_000


def _typo(text: str, rng: random.Random) -> str:
    if len(text) < 6:
        return text
    position = rng.randrange(1, len(text) - 2)
    return text[:position] + text[position + 1] + text[position] + text[position + 2 :]


def queries(release: Release, count: int, seed: int = 5) -> list[str]:
    """``count`` address queries written in the ways users write them, distinct where possible.

    The reference extracts are small (Monaco has 63 addresses), so a query already drawn is
    drawn again with another variant - another typo, another house number - up to a few
    times; only then is a repeat accepted. The table shows the share that is distinct.
    """
    rows = [
        row
        for row in release.table("addresses").to_pylist()
        if row["street"] and row["housenumber"]
    ]
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(count):
        for _attempt in range(20):
            text = _variant(rng.choice(rows), rng)
            if text not in seen:
                break
        seen.add(text)
        out.append(text)
    return out


def _variant(row: dict[str, Any], rng: random.Random) -> str:
    street, number = str(row["street"]), str(row["housenumber"])
    city = " ".join(str(p) for p in (row["postcode"], row["city"]) if p)
    kind = rng.randrange(5)
    if kind == 1:
        city = ""
    elif kind == 2:
        street = _typo(street, rng)
    elif kind == 3:
        number = str(rng.randrange(1, 500))
    text = f"{street} {number}" + (f", {city}" if city else "")
    return text.lower() if kind == 4 else text


def records(texts: list[str]) -> pa.Table:
    return pa.table(
        {
            "_ordinal": pa.array(range(len(texts)), pa.int64()),
            "recId": pa.array([str(i) for i in range(len(texts))]),
            "searchText": pa.array(texts),
        }
    )


def engine(release: Release, texts: list[str]) -> dict[str, Any]:
    table = records(texts)
    chunks = [table.slice(start, CHUNK) for start in range(0, table.num_rows, CHUNK)]
    geocoder = forward_geocoder(release)
    answered = [geocode_records(chunk, release) for chunk in chunks]

    def cold() -> None:
        geocoder.clear_caches()  # no answers remembered from the previous run
        for remembered in (fold, expand_text, street_key, postcode_key):
            remembered.cache_clear()  # nor folded texts: every query is one not seen before
        for chunk in chunks:
            geocode_records(chunk, release)

    seconds = best_of(2, cold)
    schema = RECORD_SCHEMAS["geocode"]
    validate_s = best_of(2, lambda: [validate_records(chunk, schema) for chunk in chunks])
    levels = pa.concat_tables(a.results for a in answered).column("match_level")
    counts = pc.value_counts(pc.fill_null(levels, "none")).to_pylist()
    return {
        "records_per_s": len(texts) / seconds,
        "validate_per_s": len(texts) / validate_s,
        "distinct": len(set(texts)) / len(texts),
        "levels": {item["values"]: item["counts"] / len(texts) for item in counts},
    }


def jobs(store: Path, release: Release, texts: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="geobatch-bench-") as scratch:
        folder = Path(scratch)
        path = folder / "addresses.csv"
        pa.csv.write_csv(records(texts).drop_columns(["_ordinal"]), path)
        others = folder / "warm-up.csv"  # other queries: the geocoder remembers answers
        pa.csv.write_csv(
            records(queries(release, WARM_UP, seed=99)).drop_columns(["_ordinal"]), others
        )
        geocode_s = job_seconds(
            store, folder / "a", path, "geocode", {"release": release.manifest.id}, others
        )
        validate_s = job_seconds(store, folder / "b", path, "validate", {"target_type": "geocode"})
    return {
        "job_per_s": len(texts) / geocode_s.warm,
        "cold_job_per_s": WARM_UP / geocode_s.cold,
        "validate_job_per_s": len(texts) / validate_s.warm,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    console = Console(width=160)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="geobatch-releases-") as root:
        store = ReleaseStore(Path(root))
        console.print("building releases ...")
        for release in releases(store, ("monaco", "baltimore")):
            console.print(f"measuring {release.manifest.id} ...")
            texts = queries(release, args.records)
            results[release.manifest.id] = {
                **engine(release, texts),
                **jobs(store.root, release, texts),
            }
    table = Table(title=f"forward geocoding, one core, {args.records:,} records")
    for column in (
        "release",
        "distinct",
        "engine recs/s",
        "x validate",
        "job recs/s",
        "cold job",
        "x validate job",
        "levels",
    ):
        table.add_column(column, justify="left" if column in ("release", "levels") else "right")
    for name, r in results.items():
        levels = " ".join(f"{k} {v:.0%}" for k, v in sorted(r["levels"].items()))
        table.add_row(
            name,
            f"{r['distinct']:.0%}",
            f"{r['records_per_s']:,.0f}" + (" ✓" if r["records_per_s"] >= TARGET else ""),
            f"{r['records_per_s'] / r['validate_per_s']:.3f}",
            f"{r['job_per_s']:,.0f}" + (" ✓" if r["job_per_s"] >= TARGET else ""),
            f"{r['cold_job_per_s']:,.0f}",
            f"{r['job_per_s'] / r['validate_job_per_s']:.3f}",
            levels,
        )
    console.print(table)
    console.print(
        f"target: >= {TARGET:,} records/s (✓). Ratios: throughput over the validate engine / "
        "validate job of the same records, measured in this run."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
