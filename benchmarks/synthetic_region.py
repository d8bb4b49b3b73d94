"""Synthetic OSM regions: N copies of one extract side by side in longitude, written with pyosmium.

Copy ``k`` is the source moved ``k`` times its width (plus a margin) east and every node, way
and relation id raised by ``k`` times a power of ten above the largest id, so copies never
touch and never share an id, and copy 0 is exactly the source. Coordinates are shifted in
osmium's fixed-point units (1e-7 degree), so no copy is off by a rounding. The source is read
once into plain arrays; the copies are written sorted (all nodes, then ways, then relations)
as a PBF, by several processes at once.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import osmium

UNITS = 10_000_000  # osmium stores coordinates as integer 1e-7 degrees
MARGIN_DEGREES = 0.05


@dataclass
class Extract:
    """Everything in an OSM file, as arrays and lists that can be written again shifted."""

    node_ids: list[int] = field(default_factory=list)
    node_x: list[int] = field(default_factory=list)
    node_y: list[int] = field(default_factory=list)
    node_tags: list[list[tuple[str, str]]] = field(default_factory=list)
    ways: list[tuple[int, list[int], list[tuple[str, str]]]] = field(default_factory=list)
    relations: list[tuple[int, list[tuple[str, int, str]], list[tuple[str, str]]]] = field(
        default_factory=list
    )
    timestamp: str = ""

    @property
    def id_step(self) -> int:
        """A power of ten above every id: copy k adds k times this."""
        biggest = max(
            max(self.node_ids, default=0),
            max((w[0] for w in self.ways), default=0),
            max((r[0] for r in self.relations), default=0),
        )
        return int(10 ** len(str(biggest)))

    @property
    def x_step(self) -> int:
        """The extract's width plus a margin, in 1e-7 degrees."""
        return int(max(self.node_x) - min(self.node_x)) + int(MARGIN_DEGREES * UNITS)


def read_extract(path: Path) -> Extract:
    extract = Extract()
    newest = None
    for obj in osmium.FileProcessor(str(path)):
        kind = obj.type_str()
        tags = [(tag.k, tag.v) for tag in obj.tags]
        stamp = obj.timestamp
        if stamp.year > 1970 and (newest is None or stamp > newest):
            newest = stamp
        if kind == "n":
            if not obj.location.valid():  # type: ignore[union-attr]
                continue
            extract.node_ids.append(obj.id)
            extract.node_x.append(obj.location.x)  # type: ignore[union-attr]
            extract.node_y.append(obj.location.y)  # type: ignore[union-attr]
            extract.node_tags.append(tags)
        elif kind == "w":
            extract.ways.append((obj.id, [n.ref for n in obj.nodes], tags))  # type: ignore[union-attr]
        elif kind == "r":
            members = [(m.type, m.ref, m.role) for m in obj.members]  # type: ignore[union-attr]
            extract.relations.append((obj.id, members, tags))
    extract.timestamp = newest.strftime("%Y-%m-%dT%H:%M:%SZ") if newest else ""
    return extract


def write_region(extract: Extract, copies: int, target: Path, workers: int | None = None) -> None:
    """Write ``copies`` shifted copies of ``extract`` to ``target`` (a ``.osm.pbf``).

    Writing is per object in Python (about 10 us a node), so ``workers`` processes (default:
    one per CPU) each write a run of copies as three files (nodes, ways, relations); their
    data blocks are then joined in type, copy and id order under the first file's header.
    """
    if max(extract.node_x) + (copies - 1) * extract.x_step > 180 * UNITS:
        raise ValueError(f"{copies} copies of this extract do not fit east of it in one row")
    workers = max(1, min(workers or os.cpu_count() or 1, copies))
    runs = _split(copies, workers)
    parts = target.with_name("parts-" + target.name)
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        files = pool.starmap(
            _write_part,
            [
                (extract, kind, run, parts / f"{kind}-{n}.osm.pbf")
                for kind in KINDS
                for n, run in enumerate(runs)
            ],
        )
    partial = target.with_name("partial-" + target.name)
    with partial.open("wb") as out:
        for number, path in enumerate(files):
            data = path.read_bytes()
            out.write(data if number == 0 else data[_header_end(data) :])
    shutil.rmtree(parts)
    partial.rename(target)


KINDS = ("nodes", "ways", "relations")


def _split(count: int, parts: int) -> list[range]:
    """``range(count)`` in ``parts`` consecutive runs of nearly equal length."""
    bounds = [count * i // parts for i in range(parts + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _header_end(data: bytes) -> int:
    """Where a PBF's first block (its OSMHeader) ends: a 4-byte length, a BlobHeader whose
    field 3 is the blob's size, then the blob."""
    length = int.from_bytes(data[:4], "big")
    header, position, size = data[4 : 4 + length], 0, 0
    while position < len(header):
        key, position = _varint(header, position)
        if key & 7 == 0:
            value, position = _varint(header, position)
            if key >> 3 == 3:
                size = value
        else:  # length-delimited: type, indexdata
            value, position = _varint(header, position)
            position += value
    return 4 + length + size


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def _write_part(extract: Extract, kind: str, copies: range, path: Path) -> Path:
    """Copies ``copies`` of the extract's ``kind`` of objects, as one sorted file."""
    header = osmium.io.Header()
    if extract.timestamp:
        header.set("osmosis_replication_timestamp", extract.timestamp)
    step, x_step = extract.id_step, extract.x_step
    writer = osmium.SimpleWriter(str(path), header=header, overwrite=True)
    try:
        if kind == "nodes":
            ids = np.asarray(extract.node_ids, dtype=np.int64)
            x = np.asarray(extract.node_x, dtype=np.int64)
            lat = (np.asarray(extract.node_y, dtype=np.int64) / UNITS).tolist()
            for k in copies:
                lon = ((x + k * x_step) / UNITS).tolist()
                for node_id, node_lon, node_lat, tags in zip(
                    (ids + k * step).tolist(), lon, lat, extract.node_tags, strict=True
                ):
                    writer.add_node(
                        osmium.osm.mutable.Node(
                            id=node_id, location=(node_lon, node_lat), tags=tags, version=1
                        )
                    )
        for k in copies if kind == "ways" else ():
            offset = k * step
            for way_id, refs, tags in extract.ways:
                writer.add_way(
                    osmium.osm.mutable.Way(
                        id=way_id + offset, nodes=[r + offset for r in refs], tags=tags, version=1
                    )
                )
        for k in copies if kind == "relations" else ():
            offset = k * step
            for rel_id, members, tags in extract.relations:
                writer.add_relation(
                    osmium.osm.mutable.Relation(
                        id=rel_id + offset,
                        members=[(t, ref + offset, role) for t, ref, role in members],
                        tags=tags,
                        version=1,
                    )
                )
    finally:
        writer.close()
    return path


def region(source: Path, copies: int, cache: Path) -> Path:
    """The region of ``copies`` copies of ``source``, written once into ``cache``."""
    target = cache / f"{source.name.split('.')[0]}-x{copies}.osm.pbf"
    if copies == 1:
        return source
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        write_region(read_extract(source), copies, target)
    return target
