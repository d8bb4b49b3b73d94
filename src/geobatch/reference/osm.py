"""Import an OpenStreetMap extract (PBF, or OSM XML) into a reference release, streaming.

The file is read with pyosmium in two passes: osmium's area assembler first collects the
multipolygon/boundary relations, then one pass over everything stores node locations (in
memory for small files, in a disk-backed sparse array for large ones), hands road ways to
``osm_roads``, and tagged nodes and assembled areas to ``osm_features``. Filters run in C++,
so untagged nodes never reach Python. Whatever needs the whole picture (junctions, parents,
street localities) is computed afterwards from scratch Arrow files, batch by batch.

Release ids are ``<name>-<YYYY-MM-DD>`` (default name ``osm-<file stem>``), dated by the
file's replication timestamp, else the newest object timestamp (files up to 64 MiB), else the
file's modification time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import osmium

from geobatch.reference.batches import Bounds
from geobatch.reference.geonames import write_gazetteer
from geobatch.reference.osm_features import FeatureCollector
from geobatch.reference.osm_roads import RoadCollector, build_network
from geobatch.reference.osm_streets import build_streets
from geobatch.reference.osm_tags import FEATURE_KEYS, ROAD_CLASSES, tag_dict
from geobatch.reference.release import (
    Manifest,
    ReleaseBuilder,
    ReleaseError,
    ReleaseStore,
    check_release_id,
)

NodeCache = Literal["auto", "memory", "disk"]
DISK_CACHE_ABOVE_BYTES = 256 * 1024**2
"""Larger files keep node locations in a disk-backed sparse array instead of RAM."""
TIMESTAMP_SCAN_MAX_BYTES = 64 * 1024**2
XML_SUFFIXES = (".osm", ".osm.gz", ".osm.bz2")


def import_osm(
    pbf: Path,
    store: ReleaseStore,
    *,
    name: str | None = None,
    gazetteer: bool = True,
    node_cache: NodeCache = "auto",
) -> Manifest:
    """Build and publish a release from an OSM extract; returns its manifest.

    Raises ``ReleaseError`` (and leaves nothing behind) for a missing, unreadable, truncated
    or empty file.
    """
    path = Path(pbf)
    if not path.is_file():
        raise ReleaseError(f"{path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise ReleaseError(f"{path.name} is empty")
    base = check_release_id(name) if name else default_name(path)
    day = source_timestamp(path).strftime("%Y-%m-%d")
    kind = "osm-xml" if path.name.lower().endswith(XML_SUFFIXES) else "osm-pbf"
    with store.building(f"{base}-{day}", base, auto_suffix=True) as builder:
        builder.add_source(path, kind)
        _build(path, builder, node_cache)
        if gazetteer:
            write_gazetteer(builder, store.root / ".cache")
    return builder.manifest


def default_name(path: Path) -> str:
    """``Helsinki.osm.pbf`` -> ``osm-helsinki``."""
    stem = re.sub(r"[^a-z0-9]+", "-", path.name.split(".")[0].lower()).strip("-")
    return f"osm-{stem}" if stem else "osm"


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


def _node_index(path: Path, builder: ReleaseBuilder, node_cache: NodeCache) -> str:
    if node_cache == "auto":
        node_cache = "disk" if path.stat().st_size > DISK_CACHE_ABOVE_BYTES else "memory"
    if node_cache == "memory":
        return "flex_mem"
    return f"sparse_file_array,{builder.scratch / 'node-locations'}"


def _build(path: Path, builder: ReleaseBuilder, node_cache: NodeCache) -> None:
    scratch = builder.scratch
    roads = RoadCollector(scratch)
    features = FeatureCollector(scratch)
    # Filters run in C++: only road ways, and nodes/areas with a key of interest, reach Python.
    roads_only = osmium.filter.TagFilter(*(("highway", value) for value in ROAD_CLASSES))
    roads_only.enable_for(osmium.osm.WAY)
    features_only = osmium.filter.KeyFilter(*FEATURE_KEYS)
    features_only.enable_for(osmium.osm.NODE | osmium.osm.AREA)
    processor = (
        osmium.FileProcessor(str(path))
        .with_locations(_node_index(path, builder, node_cache))
        .with_areas(osmium.filter.KeyFilter(*FEATURE_KEYS))
        .with_filter(osmium.filter.EntityFilter(osmium.osm.NODE | osmium.osm.WAY | osmium.osm.AREA))
        .with_filter(roads_only)
        .with_filter(features_only)
    )
    objects = iter(processor)
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

    if not (roads.ways or features.addresses.buffer.rows or features.places.buffer.rows):
        raise ReleaseError(f"{path.name} holds no roads, addresses or places: nothing to import")
    bounds = Bounds()
    network = build_network(roads, builder, bounds)
    admin = features.finish(builder, bounds)
    build_streets(
        builder,
        builder.read("segments"),
        network,
        admin,
        builder.read("addresses"),
        features.localities,
    )
    builder.bbox = bounds.bbox
