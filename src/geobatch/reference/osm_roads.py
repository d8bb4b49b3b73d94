"""The road network of an OSM extract: ways split at junctions into segments, plus connectors.

While the file streams by, each road way is parked in a scratch Arrow file with its node ids
and coordinates (only nodes the extract has a location for; a gap splits the way into runs).
Once every way is known, the junctions are the nodes used twice or more among road ways plus
the ends of every run; each way is then cut at its junctions, vectorised per batch with numpy
and shapely. Connectors are the junctions, numbered densely in node-id order, so segments
sharing an end share a ``from_node``/``to_node``.

A way read from several files is kept once: the newest version, then the copy with the most
located nodes (an extract may hold a border-crossing way cut short). Nodes used twice are
found in as many parts (by node id modulo the part count) as the memory budget requires, so
no step holds every node reference of the network at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference import osm_tags
from geobatch.reference.batches import BATCH_ROWS, Bounds, ScratchFile
from geobatch.reference.progress import ImportProgress
from geobatch.reference.release import ReleaseBuilder
from geobatch.reference.schema import NAMES

EARTH_RADIUS_M = 6_371_008.8

ROADS = pa.schema(
    [
        pa.field("way", pa.int64()),
        pa.field("version", pa.int64()),
        pa.field("road_class", pa.string()),
        pa.field("name", pa.string()),
        pa.field("names", NAMES),
        pa.field("oneway", pa.int8()),
        pa.field("layer", pa.int8()),
        pa.field("tunnel", pa.bool_()),
        pa.field("bridge", pa.bool_()),
        pa.field("refs", pa.list_(pa.int64())),
        pa.field("lon", pa.list_(pa.float64())),
        pa.field("lat", pa.list_(pa.float64())),
        pa.field("breaks", pa.list_(pa.int32())),  # positions where a new run starts (after a gap)
    ]
)


def haversine_m(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> np.ndarray:
    """Great-circle distance in metres (within 0.5 % of the ellipsoidal distance)."""
    lon1, lat1, lon2, lat2 = (np.radians(v) for v in (lon1, lat1, lon2, lat2))
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0))))


class RoadCollector:
    """Parks road ways (tags decided, node ids and coordinates) in a scratch file.

    Two different nodes in a row at the very same location (a mapping error) would make a
    zero-length, invalid segment; the larger id is merged into the smaller instead, in every
    way (``aliases``), which keeps the graph connected.
    """

    def __init__(self, scratch: Path) -> None:
        self.file = ScratchFile(scratch / "roads.arrow", ROADS)
        self.ways = 0
        self.aliases: dict[int, int] = {}

    def add(self, way: Any, tags: dict[str, str]) -> None:
        highway = osm_tags.road_class(tags)
        if highway is None:
            return
        runs: list[list[tuple[int, float, float]]] = []
        current: list[tuple[int, float, float]] = []
        for node in way.nodes:
            location = node.location
            if location.valid():
                here = (node.ref, location.lon, location.lat)
                if not current or current[-1][1:] != here[1:]:
                    current.append(here)
                elif current[-1][0] != here[0]:  # a duplicate node: keep the smaller id
                    keep, drop = sorted((current[-1][0], here[0]))
                    self.aliases[drop] = keep
                    current[-1] = (keep, *here[1:])
            elif current:
                runs.append(current)
                current = []
        runs.append(current)
        runs = [run for run in runs if len(run) >= 2]
        if not runs:
            return
        flat = [node for run in runs for node in run]
        breaks, position = [], 0
        for run in runs[:-1]:
            position += len(run)
            breaks.append(position)
        self.file.append(
            {
                "way": way.id,
                "version": way.version,
                "road_class": highway,
                "name": tags.get("name"),
                "names": osm_tags.names(tags, with_ref=True) or None,
                "oneway": osm_tags.oneway(tags, highway),
                "layer": osm_tags.layer(tags),
                "tunnel": osm_tags.is_tunnel(tags),
                "bridge": osm_tags.is_bridge(tags),
                "refs": [node[0] for node in flat],
                "lon": [node[1] for node in flat],
                "lat": [node[2] for node in flat],
                "breaks": breaks,
            }
        )
        self.ways += 1


@dataclass
class _Runs:
    """One batch of parked ways as flat numpy arrays."""

    refs: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    offsets: np.ndarray  # way i holds positions offsets[i]:offsets[i + 1]
    run_start: np.ndarray  # bool: a run (way start, or after a gap) starts here
    run_last: np.ndarray  # bool: a run ends here


class Aliases:
    """Node id replacements (duplicate node -> the node it was merged into), vectorised."""

    def __init__(self, aliases: dict[int, int]) -> None:
        def root(node: int) -> int:
            while node in aliases:
                node = aliases[node]
            return node

        self.keys = np.array(sorted(aliases), dtype=np.int64)
        self.values = np.array([root(int(key)) for key in self.keys], dtype=np.int64)

    def apply(self, refs: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return refs
        pos = np.minimum(np.searchsorted(self.keys, refs), len(self.keys) - 1)
        hit = self.keys[pos] == refs
        return np.where(hit, self.values[pos], refs)


def _flat(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    offsets = column.offsets.to_numpy()
    return column.flatten().to_numpy(), offsets - offsets[0]


def _runs(batch: pa.RecordBatch, aliases: Aliases) -> _Runs:
    refs, offsets = _flat(batch.column("refs"))
    refs = aliases.apply(refs)
    lon, _ = _flat(batch.column("lon"))
    lat, _ = _flat(batch.column("lat"))
    breaks = batch.column("breaks")
    run_start = np.zeros(len(refs), dtype=bool)
    run_start[offsets[:-1]] = True
    if len(breaks.flatten()):
        parents = pc.list_parent_indices(breaks).to_numpy()
        run_start[offsets[parents] + breaks.flatten().to_numpy()] = True
    run_last = np.ones(len(refs), dtype=bool)
    run_last[:-1] = run_start[1:]
    return _Runs(refs, lon, lat, offsets, run_start, run_last)


def kept_ways(roads: pa.Table) -> np.ndarray:
    """Row mask keeping one copy of each way: newest version, most nodes, first read."""
    ways = roads.column("way").to_numpy()
    if len(np.unique(ways)) == len(ways):
        return np.ones(len(ways), dtype=bool)
    version = roads.column("version").to_numpy()
    nodes = pc.list_value_length(roads.column("refs")).to_numpy()
    order = np.lexsort((np.arange(len(ways)), -nodes, -version, ways))
    first = np.ones(len(order), dtype=bool)
    first[1:] = ways[order][1:] != ways[order][:-1]
    keep = np.zeros(len(ways), dtype=bool)
    keep[order[first]] = True
    return keep


def kept_batches(roads: pa.Table, keep: np.ndarray) -> Iterator[pa.RecordBatch]:
    """The parked ways batch by batch, each way once."""
    offset = 0
    for batch in roads.to_batches(max_chunksize=BATCH_ROWS):
        mask = keep[offset : offset + batch.num_rows]
        offset += batch.num_rows
        yield batch if mask.all() else batch.filter(pa.array(mask))


def junction_parts(roads: pa.Table, memory_budget: int) -> int:
    """In how many parts to look for shared nodes: each part's references, sorted, take a
    quarter of the budget at most (a sort needs about three times its input)."""
    references = sum(len(chunk.values) for chunk in roads.column("refs").chunks)
    return max(1, math.ceil(references * 8 * 3 / max(memory_budget // 4, 1)))


def connector_ids(
    roads: pa.Table, aliases: Aliases, keep: np.ndarray, parts: int, progress: ImportProgress
) -> np.ndarray:
    """Sorted node ids that end segments: used twice or more among road ways, or end a run."""
    ends = [np.zeros(0, np.int64)]
    for batch in kept_batches(roads, keep):
        runs = _runs(batch, aliases)
        ends.append(runs.refs[runs.run_start | runs.run_last])
    found = [np.unique(np.concatenate(ends))]
    for part in range(parts):
        pieces = [np.zeros(0, np.int64)]
        for batch in kept_batches(roads, keep):
            refs = aliases.apply(_flat(batch.column("refs"))[0])
            pieces.append(refs if parts == 1 else refs[refs % parts == part])
        refs = np.concatenate(pieces)
        del pieces
        refs.sort()
        found.append(refs[1:][refs[1:] == refs[:-1]])
        del refs
        progress.advance()
    return np.unique(np.concatenate(found))


def _lookup(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_ids, values)


@dataclass
class Network:
    """What later steps need of the written network: connector coordinates by dense index."""

    segments: int
    lon: np.ndarray
    lat: np.ndarray


def _segments(
    batch: pa.RecordBatch,
    connectors: np.ndarray,
    conn_lon: np.ndarray,
    conn_lat: np.ndarray,
    bounds: Bounds,
    aliases: Aliases,
) -> pa.RecordBatch:
    runs = _runs(batch, aliases)
    pos = np.minimum(_lookup(connectors, runs.refs), len(connectors) - 1)
    is_conn = (connectors[pos] == runs.refs) | runs.run_start | runs.run_last
    stops = np.flatnonzero(is_conn)
    starts_here = ~runs.run_last[stops[:-1]]
    seg_a, seg_b = stops[:-1][starts_here], stops[1:][starts_here]
    conn_lon[pos[stops]] = runs.lon[stops]
    conn_lat[pos[stops]] = runs.lat[stops]

    count = len(seg_a)
    sizes = seg_b - seg_a + 1
    ends = np.cumsum(sizes)
    seg_of = np.repeat(np.arange(count), sizes)
    vertex = np.arange(ends[-1] if count else 0) - np.repeat(ends - sizes, sizes) + seg_a[seg_of]
    lon, lat = runs.lon[vertex], runs.lat[vertex]
    bounds.update(lon, lat)

    pair = np.ones(len(vertex), dtype=bool)
    pair[ends - 1] = False
    first = vertex[pair]
    steps = haversine_m(runs.lon[first], runs.lat[first], runs.lon[first + 1], runs.lat[first + 1])
    length = np.add.reduceat(steps, ends - sizes - np.arange(count)) if count else steps

    lines = shapely.linestrings(np.column_stack([lon, lat]), indices=seg_of)
    wkb = shapely.to_wkb(lines, byte_order=1)

    way_index = np.searchsorted(runs.offsets, seg_a, side="right") - 1
    k = np.arange(count) - np.searchsorted(way_index, way_index, side="left")
    take = pa.array(way_index)
    way_ids = pc.cast(batch.column("way").take(take), pa.string())
    source_id = pc.binary_join_element_wise("osm:way/", way_ids, "")
    return pa.RecordBatch.from_pydict(
        {
            "id": pc.binary_join_element_wise(source_id, pc.cast(pa.array(k), pa.string()), ":"),
            "source_id": source_id,
            "from_node": pa.array(pos[seg_a], pa.int64()),
            "to_node": pa.array(pos[seg_b], pa.int64()),
            "road_class": batch.column("road_class").take(take),
            "name": batch.column("name").take(take),
            "names": batch.column("names").take(take),
            "oneway": batch.column("oneway").take(take),
            "layer": batch.column("layer").take(take),
            "tunnel": batch.column("tunnel").take(take),
            "bridge": batch.column("bridge").take(take),
            "length_m": pa.array(length, pa.float64()),
            "geometry": pa.array(wkb, pa.binary()),
        }
    )


def build_network(
    collector: RoadCollector,
    builder: ReleaseBuilder,
    bounds: Bounds,
    memory_budget: int,
    progress: ImportProgress,
) -> Network:
    """Write ``segments`` and ``connectors`` from the parked road ways."""
    roads = collector.file.read()
    aliases = Aliases(collector.aliases)
    keep = kept_ways(roads)
    parts = junction_parts(roads, memory_budget)
    progress.phase("junctions", parts)
    connectors = connector_ids(roads, aliases, keep, parts, progress)
    conn_lon = np.full(len(connectors), np.nan)
    conn_lat = np.full(len(connectors), np.nan)
    progress.phase("segments", int(keep.sum()))
    with builder.table_writer("segments") as writer:
        for batch in kept_batches(roads, keep):
            if batch.num_rows:
                writer.write(_segments(batch, connectors, conn_lon, conn_lat, bounds, aliases))
            progress.advance(batch.num_rows)
    if np.isnan(conn_lon).any():  # cannot happen: every connector ends a run of >= 2 nodes
        raise RuntimeError("a connector was not reached by any segment")
    node_ids = pc.cast(pa.array(connectors), pa.string())
    builder.write_table(
        "connectors",
        pa.table(
            {
                "node": pa.array(np.arange(len(connectors)), pa.int64()),
                "id": pc.binary_join_element_wise("osm:node/", node_ids, ""),
                "lon": conn_lon,
                "lat": conn_lat,
            }
        ),
    )
    return Network(segments=writer.rows, lon=conn_lon, lat=conn_lat)
