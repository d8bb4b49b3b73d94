"""The road network as road matching reads it, built at import and memory-mapped after.

Segments are cut into straight pieces in the release's local metres (numpy arrays of their
starts, directions, lengths and offsets along the segment, so projecting a point is plain
vector arithmetic), the pieces are filed in a ``GridIndex``, and junction-to-junction routes
are tabulated up to ``ROUTE_LIMIT_M`` both ways and along oneways (``RouteTable``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import shapely

from geobatch.reference.indexes.files import open_array, write_array
from geobatch.reference.indexes.grid import GridIndex
from geobatch.reference.indexes.projection import LocalProjection
from geobatch.reference.indexes.routes import RouteTable

PREFIX = "roads"
ROUTE_LIMIT_M = 200.0
"""Longest junction-to-junction route tabulated. Samples are metres apart and a step whose
route exceeds its length by ~100 m already costs more than restarting the path, so longer
routes would never be used."""
CELL_M = 30.0
"""Grid cell of the piece index: about the usual search radius (measured: smaller cells file
pieces in too many cells, larger ones answer too many far pieces)."""
BATCH_SEGMENTS = 100_000
"""Segments parsed from WKB at a time while building."""

_SEGMENT_ARRAYS = ("from_node", "to_node", "oneway", "length_m", "layer", "tunnel", "bridge")
_NODE_ARRAYS = ("node_x", "node_y")
_PIECE_ARRAYS = (
    "piece_segment",
    "piece_x0",
    "piece_y0",
    "piece_dx",
    "piece_dy",
    "piece_length",
    "piece_offset",
)


@dataclass(frozen=True, kw_only=True)
class RoadArrays:
    """Everything road matching needs of a network, as flat arrays (mapped or in memory)."""

    projection: LocalProjection
    from_node: np.ndarray  # int64 per segment
    to_node: np.ndarray
    oneway: np.ndarray  # int8: 0 both ways, 1 along, -1 against
    layer: np.ndarray  # int8: -5..5, 0 at ground level
    tunnel: np.ndarray  # bool
    bridge: np.ndarray  # bool
    length_m: np.ndarray  # float64
    node_x: np.ndarray  # float64 per node, local metres
    node_y: np.ndarray
    piece_segment: np.ndarray  # int64 per piece
    piece_x0: np.ndarray
    piece_y0: np.ndarray
    piece_dx: np.ndarray
    piece_dy: np.ndarray
    piece_length: np.ndarray
    piece_offset: np.ndarray  # metres from the segment's start to the piece's start
    pieces: GridIndex
    routes: RouteTable  # both ways on every segment
    directed_routes: RouteTable  # oneways only the way traffic flows

    @classmethod
    def open(cls, folder: Path) -> RoadArrays:
        origin = open_array(folder, f"{PREFIX}/projection")
        arrays = {
            name: open_array(folder, f"{PREFIX}/{name}")
            for name in (*_SEGMENT_ARRAYS, *_NODE_ARRAYS, *_PIECE_ARRAYS)
        }
        return cls(
            projection=LocalProjection(lon0=float(origin[0]), lat0=float(origin[1])),
            pieces=GridIndex.open(folder, f"{PREFIX}/piece_grid"),
            routes=RouteTable.open(folder, f"{PREFIX}/routes"),
            directed_routes=RouteTable.open(folder, f"{PREFIX}/directed_routes"),
            **arrays,
        )


def projection_for(node_lat: np.ndarray) -> LocalProjection:
    """``lon0`` 0 and ``lat0`` the middle latitude (see ``projection``'s module doc)."""
    if not len(node_lat):
        return LocalProjection(lon0=0.0, lat0=0.0)
    return LocalProjection(lon0=0.0, lat0=float((node_lat.min() + node_lat.max()) / 2))


def _offsets(segment: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Each piece's distance from its segment's start, summed within the segment only.

    Summed rank by rank (all first pieces, then all second pieces ...) so a segment's
    offsets do not depend on the segments before it in the array.
    """
    offset = np.zeros(len(segment))
    if not len(segment):
        return offset
    run_start = np.searchsorted(segment, segment, side="left")
    rank = np.arange(len(segment)) - run_start
    for k in range(1, int(rank.max()) + 1):
        at = np.flatnonzero(rank == k)
        offset[at] = offset[at - 1] + length[at - 1]
    return offset


def _pieces(metric: np.ndarray, first_segment: int) -> dict[str, np.ndarray]:
    coords, owner = shapely.get_coordinates(metric, return_index=True)
    same = owner[1:] == owner[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    seg = owner[:-1][same].astype(np.int64)
    length = np.hypot(b[:, 0] - a[:, 0], b[:, 1] - a[:, 1])
    keep = length > 0
    a, b, seg, length = a[keep], b[keep], seg[keep], length[keep]
    return {
        "piece_segment": seg + first_segment,
        "piece_x0": a[:, 0].copy(),
        "piece_y0": a[:, 1].copy(),
        "piece_dx": b[:, 0] - a[:, 0],
        "piece_dy": b[:, 1] - a[:, 1],
        "piece_length": length,
        "piece_offset": _offsets(seg, length),
    }


def road_parts(
    geometries: Iterator[np.ndarray],
    *,
    from_node: np.ndarray,
    to_node: np.ndarray,
    node_lon: np.ndarray,
    node_lat: np.ndarray,
    oneway: np.ndarray | None = None,
    layer: np.ndarray | None = None,
    tunnel: np.ndarray | None = None,
    bridge: np.ndarray | None = None,
    route_limit_m: float = ROUTE_LIMIT_M,
    routes: bool = True,
) -> Iterator[tuple[str, Any]]:
    """Each part of the road index in turn (name, value), from lon/lat LineStrings (in batches,
    in segment order) and their junction indices; without ``routes``, all but the two route
    tables (which ``write_routes`` writes from the parts on disk).

    Parts come one at a time and are not kept here once given out, so an importer can write
    each and drop it before the next is built: memory follows the largest part, not all.
    """
    n = len(from_node)
    node_lat = np.asarray(node_lat, dtype=np.float64)
    projection = projection_for(node_lat)
    yield "projection", projection
    node_x, node_y = projection.forward(np.asarray(node_lon, dtype=np.float64), node_lat)
    yield "node_x", np.asarray(node_x, dtype=np.float64)
    yield "node_y", np.asarray(node_y, dtype=np.float64)
    del node_x, node_y
    from_node = np.asarray(from_node, dtype=np.int64)
    to_node = np.asarray(to_node, dtype=np.int64)
    oneway = np.zeros(n, dtype=np.int8) if oneway is None else np.asarray(oneway, np.int8)
    yield "from_node", from_node
    yield "to_node", to_node
    yield "oneway", oneway
    yield "layer", np.zeros(n, np.int8) if layer is None else np.asarray(layer, np.int8)
    yield "tunnel", np.zeros(n, bool) if tunnel is None else np.asarray(tunnel, bool)
    yield "bridge", np.zeros(n, bool) if bridge is None else np.asarray(bridge, bool)
    lengths: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _PIECE_ARRAYS}
    done = 0
    for batch in geometries:
        metric = projection.project(np.asarray(batch, dtype=object))
        lengths.append(shapely.length(metric).astype(np.float64))
        for name, values in _pieces(metric, done).items():
            parts[name].append(values)
        done += len(batch)
    if done != n:
        raise ValueError(f"{done} geometries for {n} segments")
    length_m = np.concatenate(lengths) if lengths else np.zeros(0)
    del lengths
    yield "length_m", length_m
    for name in ("piece_segment", "piece_length", "piece_offset"):
        yield name, _joined(parts.pop(name), name)
    ends = {name: _joined(parts.pop(name), name) for name in list(parts)}
    x0, y0 = ends["piece_x0"], ends["piece_y0"]
    x1, y1 = x0 + ends["piece_dx"], y0 + ends["piece_dy"]
    grid = GridIndex.build(
        CELL_M, np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)
    )
    del x0, y0, x1, y1
    yield "pieces", grid
    del grid
    for name in list(ends):
        yield name, ends.pop(name)
    if not routes:
        return
    n_nodes = len(node_lat)
    yield "routes", RouteTable.build(n_nodes, from_node, to_node, length_m, route_limit_m)
    yield (
        "directed_routes",
        RouteTable.build(n_nodes, from_node, to_node, length_m, route_limit_m, oneway=oneway),
    )


def _joined(values: list[np.ndarray], name: str) -> np.ndarray:
    return np.concatenate(values) if values else np.zeros(0, _dtype(name))


def build_road_arrays(geometries: Iterator[np.ndarray], **network: Any) -> RoadArrays:
    """All parts in memory (for small networks built on the fly); see ``road_parts``."""
    return RoadArrays(**dict(road_parts(geometries, **network)))


def _dtype(name: str) -> type:
    return np.int64 if name == "piece_segment" else np.float64


def wkb_batches(segments: pa.Table) -> Iterator[np.ndarray]:
    column = segments.column("geometry")
    for start in range(0, segments.num_rows, BATCH_SEGMENTS):
        chunk = column.slice(start, BATCH_SEGMENTS)
        yield shapely.from_wkb(chunk.to_numpy(zero_copy_only=False))


def table_parts(
    segments: pa.Table, connectors: pa.Table, *, routes: bool = True
) -> Iterator[tuple[str, Any]]:
    """``road_parts`` of tables shaped like a release's ``segments`` and ``connectors``."""
    connectors = connectors.sort_by("node")
    return road_parts(
        wkb_batches(segments),
        from_node=segments.column("from_node").to_numpy(),
        to_node=segments.column("to_node").to_numpy(),
        node_lon=connectors.column("lon").to_numpy(),
        node_lat=connectors.column("lat").to_numpy(),
        oneway=segments.column("oneway").to_numpy(),
        layer=segments.column("layer").to_numpy(),
        tunnel=segments.column("tunnel").to_numpy(zero_copy_only=False),
        bridge=segments.column("bridge").to_numpy(zero_copy_only=False),
        routes=routes,
    )


def build_road_index(folder: Path, segments: pa.Table, connectors: pa.Table) -> None:
    """Write the release's road arrays into ``folder``, one part at a time."""
    for name, part in table_parts(segments, connectors, routes=False):
        if isinstance(part, LocalProjection):
            write_array(folder, f"{PREFIX}/projection", np.array([part.lon0, part.lat0]))
        elif isinstance(part, GridIndex):
            part.save(folder, f"{PREFIX}/piece_grid")
        else:
            write_array(folder, f"{PREFIX}/{name}", part)
        del part
    write_routes(folder)


def write_routes(folder: Path, route_limit_m: float = ROUTE_LIMIT_M) -> None:
    """Both route tables, from the network arrays already written (mapped, not loaded), one
    batch of origins at a time."""
    network = {name: open_array(folder, f"{PREFIX}/{name}") for name in _SEGMENT_ARRAYS}
    n_nodes = len(open_array(folder, f"{PREFIX}/node_x"))
    ends = (n_nodes, network["from_node"], network["to_node"], network["length_m"])
    RouteTable.write(folder, f"{PREFIX}/routes", *ends, route_limit_m)
    RouteTable.write(
        folder, f"{PREFIX}/directed_routes", *ends, route_limit_m, oneway=network["oneway"]
    )
