"""Import OpenStreetMap extracts (PBF, or OSM XML) into one reference release, streaming.

Each file is read with pyosmium in two passes: osmium's area assembler first collects the
multipolygon/boundary relations, then one pass over everything stores node locations (in
memory, or in a disk-backed sparse array when the memory budget calls for it; one store for
all files), hands road ways to ``osm_roads``, and tagged nodes and assembled areas to
``osm_features``. Filters run in C++, so untagged nodes never reach Python. Whatever needs
the whole picture (junctions, parents, street localities) is computed afterwards from scratch
Arrow files, batch by batch.

Several files make one release: an object found in more than one (overlapping extracts share
node, way and relation ids) is kept once, and roads of different files that share a node meet
at a junction there. Relations are assembled into areas per file, so a multipolygon is kept
when one file holds it whole.

Memory is bounded by ``memory_budget`` (``Settings.import_memory_mb``), not by the input: it
decides whether node locations stay in memory, and in how many parts junctions are found and
streets are grouped. What stays proportional to the input is small per object: 8 bytes per
road way and per kept address or place, the connectors' coordinates, and admin boundaries.

Release ids are ``<name>-<YYYY-MM-DD>`` (default name ``osm-<file stem>``), dated by the
newest file's replication timestamp, else the newest object timestamp (files up to 64 MiB),
else the file's modification time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import osmium

from geobatch.reference.batches import Bounds
from geobatch.reference.geonames import write_gazetteer
from geobatch.reference.memory import release_memory
from geobatch.reference.osm_features import FeatureCollector
from geobatch.reference.osm_roads import RoadCollector, build_network
from geobatch.reference.osm_streets import build_streets
from geobatch.reference.osm_tags import FEATURE_KEYS, ROAD_CLASSES, tag_dict
from geobatch.reference.progress import ImportProgress, NoProgress
from geobatch.reference.release import (
    Manifest,
    ReleaseBuilder,
    ReleaseError,
    ReleaseStore,
    check_release_id,
)

NodeCache = Literal["auto", "memory", "disk"]
DEFAULT_MEMORY_BUDGET = 1024**3
PBF_BYTES_PER_NODE = 6
"""A low guess (real extracts take 8-12 bytes a node), so the node count is overestimated."""
CACHED_NODE_BYTES = 32
"""An in-memory location (id and coordinates, 16 bytes) with room for the array to grow."""
TIMESTAMP_SCAN_MAX_BYTES = 64 * 1024**2
XML_SUFFIXES = (".osm", ".osm.gz", ".osm.bz2")
OBJECTS_PER_REPORT = 20_000


@dataclass(frozen=True, kw_only=True)
class ImportPlan:
    """How an import fits its memory budget: where node locations go, how junctions are found."""

    node_cache: Literal["memory", "disk"]
    memory_budget: int


def plan_import(
    paths: Sequence[Path], memory_budget: int, node_cache: NodeCache = "auto"
) -> ImportPlan:
    """Keep node locations in memory when, by a generous estimate, they fit half the budget."""
    if node_cache == "auto":
        nodes = sum(Path(p).stat().st_size for p in paths) // PBF_BYTES_PER_NODE
        node_cache = "memory" if nodes * CACHED_NODE_BYTES <= memory_budget // 2 else "disk"
    return ImportPlan(node_cache=node_cache, memory_budget=memory_budget)


def import_osm(
    pbf: Path | Sequence[Path],
    store: ReleaseStore,
    *,
    name: str | None = None,
    gazetteer: bool = True,
    node_cache: NodeCache = "auto",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: ImportProgress | None = None,
) -> Manifest:
    """Build and publish a release from one or several OSM extracts; returns its manifest.

    ``memory_budget`` is in bytes (the CLI passes ``Settings.import_memory_mb``); ``node_cache``
    overrides the plan's choice. Raises ``ReleaseError`` (and leaves nothing behind) for a
    missing, unreadable, truncated or empty file.
    """
    paths = [Path(pbf)] if isinstance(pbf, str | Path) else [Path(p) for p in pbf]
    if not paths:
        raise ReleaseError("no OSM file to import")
    for path in paths:
        if not path.is_file():
            raise ReleaseError(f"{path} does not exist or is not a file")
        if path.stat().st_size == 0:
            raise ReleaseError(f"{path.name} is empty")
    base = check_release_id(name) if name else default_name(*paths)
    day = max(source_timestamp(path) for path in paths).strftime("%Y-%m-%d")
    plan = plan_import(paths, memory_budget, node_cache)
    with store.building(f"{base}-{day}", base, auto_suffix=True) as builder:
        for path in paths:
            kind = "osm-xml" if path.name.lower().endswith(XML_SUFFIXES) else "osm-pbf"
            builder.add_source(path, kind)
        report = progress or NoProgress()
        _build(paths, builder, plan, report)
        if gazetteer:
            report.phase("gazetteer")
            write_gazetteer(builder, store.root / ".cache")
        report.phase("indexes")  # built when the release is sealed, as this block ends
    return builder.manifest


def default_name(*paths: Path) -> str:
    """``Helsinki.osm.pbf`` -> ``osm-helsinki``; several files: ``osm-andorra-monaco``."""
    stems = [re.sub(r"[^a-z0-9]+", "-", p.name.split(".")[0].lower()).strip("-") for p in paths]
    joined = "-".join(stem for stem in stems if stem)[:100].strip("-")
    return f"osm-{joined}" if joined else "osm"


def source_error(path: Path, exc: Exception) -> ReleaseError:
    """One sentence saying what is wrong with the file, osmium's words in brackets."""
    message = str(exc)
    if "out of order" in message:
        return ReleaseError(f"{path.name} is not sorted by type and id ({message})")
    if "EOF" in message or "truncated" in message.lower():
        return ReleaseError(f"{path.name} is truncated or corrupt ({message})")
    return ReleaseError(f"{path.name} is not a readable OSM file ({message})")


def source_timestamp(path: Path) -> datetime:
    """When the extract's data is from (see the module docstring)."""
    try:
        with osmium.io.Reader(str(path), osmium.osm.NOTHING) as reader:
            header = reader.header()
    except RuntimeError as exc:
        raise source_error(path, exc) from exc
    for key in ("osmosis_replication_timestamp", "timestamp"):
        value = header.get(key)
        if value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
            except ValueError:
                pass
    if path.stat().st_size <= TIMESTAMP_SCAN_MAX_BYTES:
        newest = None
        try:
            for obj in osmium.FileProcessor(str(path), osmium.osm.OBJECT):
                stamp = obj.timestamp  # type: ignore[union-attr]
                if stamp.year > 1970 and (newest is None or stamp > newest):
                    newest = stamp
        except RuntimeError as exc:
            raise source_error(path, exc) from exc
        if newest is not None:
            return newest.astimezone(UTC)
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _node_store(plan: ImportPlan, scratch: Path) -> osmium.index.LocationTable:
    if plan.node_cache == "memory":
        return osmium.index.create_map("flex_mem")
    return osmium.index.create_map(f"sparse_file_array,{scratch / 'node-locations'}")


def _build(
    paths: list[Path], builder: ReleaseBuilder, plan: ImportPlan, progress: ImportProgress
) -> None:
    scratch = builder.scratch
    roads = RoadCollector(scratch)
    features = FeatureCollector(scratch)
    locations = _node_store(plan, scratch)
    for number, path in enumerate(paths, start=1):
        label = f"reading {path.name}" + (f" ({number}/{len(paths)})" if len(paths) > 1 else "")
        progress.phase(label)
        _read(path, locations, roads, features, progress)
        features.next_file()
    del locations
    release_memory()

    if not (roads.ways or features.addresses.buffer.rows or features.places.buffer.rows):
        names = ", ".join(path.name for path in paths)
        verb = "holds" if len(paths) == 1 else "hold"
        raise ReleaseError(f"{names} {verb} no roads, addresses or places: nothing to import")
    bounds = Bounds()
    network = build_network(roads, builder, bounds, plan.memory_budget, progress)
    admin = features.finish(builder, bounds, progress)
    release_memory()
    progress.phase("streets")
    build_streets(
        builder,
        builder.read("segments"),
        network,
        admin,
        builder.read("addresses"),
        features.localities,
        plan.memory_budget,
    )
    builder.bbox = bounds.bbox


def _read(
    path: Path,
    locations: osmium.index.LocationTable,
    roads: RoadCollector,
    features: FeatureCollector,
    progress: ImportProgress,
) -> None:
    """One file's road ways, tagged nodes and areas into the collectors."""
    # Filters run in C++: only road ways, and nodes/areas with a key of interest, reach Python.
    roads_only = osmium.filter.TagFilter(*(("highway", value) for value in ROAD_CLASSES))
    roads_only.enable_for(osmium.osm.WAY)
    features_only = osmium.filter.KeyFilter(*FEATURE_KEYS)
    features_only.enable_for(osmium.osm.NODE | osmium.osm.AREA)
    processor = (
        osmium.FileProcessor(str(path))
        .with_locations(locations)  # type: ignore[arg-type]  # documented: a LocationTable too
        .with_areas(osmium.filter.KeyFilter(*FEATURE_KEYS))
        .with_filter(osmium.filter.EntityFilter(osmium.osm.NODE | osmium.osm.WAY | osmium.osm.AREA))
        .with_filter(roads_only)
        .with_filter(features_only)
    )
    objects = iter(processor)
    seen = 0
    while True:
        try:
            obj = next(objects)
        except StopIteration:
            break
        except RuntimeError as exc:
            raise source_error(path, exc) from exc
        kind = obj.type_str()
        if kind == "w":
            roads.add(obj, tag_dict(obj.tags))
        elif kind == "n":
            features.add_node(obj, tag_dict(obj.tags))
        elif kind == "a":
            features.add_area(obj, tag_dict(obj.tags))
        seen += 1
        if seen == OBJECTS_PER_REPORT:
            progress.advance(seen, _tally(roads, features))
            seen = 0
    progress.advance(seen, _tally(roads, features))


def _tally(roads: RoadCollector, features: FeatureCollector) -> str:
    return (
        f"{roads.ways:,} roads, {features.addresses.buffer.rows:,} addresses, "
        f"{features.places.buffer.rows:,} places"
    )
