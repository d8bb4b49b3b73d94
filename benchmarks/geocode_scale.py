"""Warm forward geocoding on releases of 1x, 10x, 50x one extract, in process, by CPU time.

Run with ``.venv/bin/python benchmarks/geocode_scale.py [--sizes 1,10,50] [--source PBF]``.

The regions are those of ``scale.py`` (``synthetic_region``: shifted copies of one extract,
copy 0 the extract itself), imported in process into ``--cache`` and kept there between runs
(a release whose index version is outdated is imported again). Every query lies on copy 0:
street names of the 1x release written as users write them (with the town, with a house
number, alone, in lower case, with a typo), so every copy holds the same names and a query
finds one same-named street per copy, as a country holds hundreds of "Hauptstraße"s.

Per size and per mode (``at``: with the bias at copy 0's centre, as ``scale.py`` asks;
``plain``: without it), ``geocode_records`` first answers other queries (the warm-up: the
indexes are mapped and read), then the timed queries with the geocoder's remembered answers
and the folded texts cleared, by CPU time. The sizes take turns, ``--rounds`` times, and each
keeps its best round, so that a busy machine slows all alike. ``copy-0 answers`` compares
every result row with the 1x release's: the target is identical answers at >= 0.8x the 1x
speed.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from geobatch.engines.geocode import forward_geocoder, geocode_records
from geobatch.engines.geocode.normalize import expand_text, fold, postcode_key, street_key
from geobatch.reference import Release, ReleaseError, ReleaseNotFound, ReleaseStore, import_osm
from harness import SHARED_OSM
from synthetic_region import region

COMPARED = ("lat", "lon", "label", "match_level", "confidence", "ref_id")


def release_of(copies: int, source: Path, cache: Path) -> Release:
    """The imported region of ``copies`` copies, imported once per index version."""
    store = ReleaseStore(cache / "releases")
    name = f"{source.name.split('.')[0]}-x{copies}"
    try:
        return store.load(store.resolve(name).id)
    except (ReleaseError, ReleaseNotFound):
        for old in [m for m in store.list() if m.name == name]:
            store.delete(old.id)
    pbf = region(source, copies, cache / "regions")
    started = time.perf_counter()
    manifest = import_osm(pbf, store, name=name)
    print(f"{copies}x imported in {time.perf_counter() - started:.0f} s")
    return store.load(manifest.id)


def _typo(text: str, rng: random.Random) -> str:
    if len(text) < 6:
        return text
    position = rng.randrange(1, len(text) - 2)
    return text[:position] + text[position + 1] + text[position] + text[position + 2 :]


def queries(release: Release, count: int, seed: int) -> list[str]:
    """``count`` distinct street queries of the release (repeats only once variants run out)."""
    streets = release.table("streets")
    pairs = [
        (name, town or "")
        for name, town in zip(
            streets.column("name").to_pylist(), streets.column("locality").to_pylist(), strict=True
        )
        if name
    ]
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(count):
        for _attempt in range(20):
            name, town = rng.choice(pairs)
            kind = rng.randrange(5)
            if kind == 1:
                name = f"{name} {rng.randrange(1, 60)}"
            elif kind == 2:
                town = ""
            elif kind == 3:
                name = _typo(name, rng)
            text = f"{name}, {town}" if town else name
            text = text.lower() if kind == 4 else text
            if text not in seen:
                break
        seen.add(text)
        out.append(text)
    return out


def records(texts: list[str]) -> pa.Table:
    return pa.table(
        {
            "_ordinal": pa.array(range(len(texts)), pa.int64()),
            "recId": pa.array([str(i) for i in range(len(texts))]),
            "searchText": pa.array(texts),
        }
    )


def unseen(release: Release, timed: pa.Table, at: tuple[float, float] | None) -> float:
    """CPU seconds of the timed queries, none of them remembered."""
    forward_geocoder(release).clear_caches()
    for remembered in (fold, expand_text, street_key, postcode_key):
        remembered.cache_clear()
    started = time.process_time()
    geocode_records(timed, release, at=at)
    return time.process_time() - started


def _differ(one: pa.Table, other: pa.Table) -> int:
    a, b = one.to_pylist(), other.to_pylist()
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50", help="copies per region, e.g. 1,10")
    parser.add_argument("--source", type=Path, default=SHARED_OSM / "monaco.osm.pbf")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "geobatch-geocode-scale",
        help="where regions and releases are kept between runs",
    )
    parser.add_argument("--records", type=int, default=1_500)
    parser.add_argument("--rounds", type=int, default=3, help="turns each size takes")
    args = parser.parse_args()
    sizes = sorted({1, *(int(size) for size in args.sizes.split(","))})
    console = Console(width=160)
    base = release_of(1, args.source, args.cache)
    west, south, east, north = base.manifest.bbox or (0.0, 0.0, 0.0, 0.0)
    modes: dict[str, tuple[float, float] | None] = {
        "at": ((south + north) / 2, (west + east) / 2),
        "plain": None,
    }
    timed = records(queries(base, args.records, seed=7))
    warm_up = records(queries(base, 300, seed=8))
    releases = {copies: release_of(copies, args.source, args.cache) for copies in sizes}
    table = Table(title=f"warm forward geocoding, {args.records:,} queries on copy 0")
    for column in ("copies", "mode", "records/s (CPU)", "vs 1x", "copy-0 answers"):
        table.add_column(column, justify="right")
    for mode, at in modes.items():
        answers = {}
        for copies, release in releases.items():
            geocode_records(warm_up, release, at=at)
            answers[copies] = geocode_records(timed, release, at=at).results.select(COMPARED)
        seconds = {copies: float("inf") for copies in sizes}
        for _ in range(args.rounds):
            for copies, release in releases.items():
                seconds[copies] = min(seconds[copies], unseen(release, timed, at))
        for copies in sizes:
            differ = _differ(answers[copies], answers[1])
            row: list[Any] = [
                f"{copies}x",
                mode,
                f"{args.records / seconds[copies]:,.0f}",
                f"{seconds[1] / seconds[copies]:.2f}",
                "identical" if not differ else f"{differ} rows differ",
            ]
            table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
