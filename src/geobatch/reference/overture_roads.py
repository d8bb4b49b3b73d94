"""Overture road segments as reference-release ``segments`` and ``connectors``.

An Overture segment is a long stretch of road whose ``connectors`` (``connector_id`` plus
``at``, a 0..1 linear position measured along the WGS84 ellipsoid) mark where it meets
others. Engines route over a graph whose edges end at junctions, so every road segment is
split at its connectors into pieces ``<GERS id>:<k>``. An end of a segment with no connector
gets a synthetic one, ``<GERS id>@0`` or ``<GERS id>@1``, so that every piece has two nodes.

Batches are split independently (``road_pieces``); nodes are numbered once all files have been
read (``number_nodes``), because a connector can appear in any batch of any file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from numpy.typing import NDArray

from geobatch.reference import schema
from geobatch.reference.overture_points import (
    Batch,
    Floats,
    OvertureDataError,
    column,
    field,
    mask,
    names_map,
    with_geometry,
)

SPLIT_TOLERANCE_M = 0.05
"""Connectors closer than this to a segment's end count as at the end, and vertices closer
than this to a split position are left out of the pieces (they would be slivers)."""

EARTH_RADIUS_M = 6_371_008.8
_WGS84_A = 6_378_137.0
_WGS84_E2 = 6.694379990141317e-3
_UNSCOPED = ("during", "mode", "using", "recognized", "vehicle")
Ints = NDArray[np.int64]
Metric = Callable[[Floats, Floats, Floats, Floats], Floats]

PIECES = pa.schema(
    [
        ("id", pa.string()),
        ("source_id", pa.string()),
        ("from_connector", pa.string()),
        ("to_connector", pa.string()),
        ("road_class", pa.string()),
        ("name", pa.string()),
        ("names", schema.NAMES),
        ("oneway", pa.int8()),
        ("layer", pa.int8()),
        ("tunnel", pa.bool_()),
        ("bridge", pa.bool_()),
    ]
)


def haversine_m(lon0: Floats, lat0: Floats, lon1: Floats, lat1: Floats) -> Floats:
    """Great-circle distances in metres, as the OSM importer measures ``length_m``."""
    p0, p1 = np.radians(lat0), np.radians(lat1)
    h = (
        np.sin((p1 - p0) / 2) ** 2
        + np.cos(p0) * np.cos(p1) * np.sin(np.radians(lon1 - lon0) / 2) ** 2
    )
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))), np.float64)


def _ellipsoid_m(lon0: Floats, lat0: Floats, lon1: Floats, lat1: Floats) -> Floats:
    """WGS84 lengths of short edges from the local radii of curvature.

    Overture measures ``at`` along the ellipsoid; a sphere would put a connector that sits on
    a vertex up to ~0.3 % of the length away from it.
    """
    phi = np.radians((lat0 + lat1) / 2)
    w = 1 - _WGS84_E2 * np.sin(phi) ** 2
    meridian = _WGS84_A * (1 - _WGS84_E2) / w**1.5
    normal = _WGS84_A / np.sqrt(w)
    dlon = (lon1 - lon0 + 180.0) % 360.0 - 180.0
    return np.hypot(np.radians(lat1 - lat0) * meridian, np.radians(dlon) * normal * np.cos(phi))


@dataclass(frozen=True)
class _Lines:
    """The vertices of a batch of LineStrings, with their positions along each line."""

    coords: Floats  # (v, 2) lon, lat
    line: Ints  # owning line of each vertex
    start: Ints  # first vertex of each line
    count: Ints  # vertices of each line
    along: Floats  # ellipsoidal metres from the line's first vertex
    length: Floats  # ellipsoidal length of each line

    @classmethod
    def of(cls, lines: NDArray[np.object_]) -> _Lines:
        coords, line = shapely.get_coordinates(lines, return_index=True)
        count = np.bincount(line, minlength=len(lines)).astype(np.int64)
        start = np.cumsum(count) - count
        along = _cumulative(coords, line, start, _ellipsoid_m)
        length = along[start + count - 1]
        return cls(coords, line.astype(np.int64), start, count, along, length)

    @cached_property
    def key(self) -> Floats:
        """``2 * line + fraction``: one sorted array to search positions of all lines at once."""
        fraction = self.along / np.where(self.length > 0, self.length, 1.0)[self.line]
        return 2.0 * self.line + fraction

    def edge(self, line: Ints, fraction: Floats, key: Floats) -> Ints:
        """The first vertex of the edge of ``line`` where ``fraction`` (of ``key``) falls."""
        k = np.searchsorted(key, 2.0 * line + fraction, side="right") - 1
        return np.clip(k, self.start[line], self.start[line] + self.count[line] - 2)

    def point_at(self, line: Ints, fraction: Floats) -> Floats:
        """The points at ``fraction`` of the lines' lengths."""
        k = self.edge(line, fraction, self.key)
        span = self.along[k + 1] - self.along[k]
        target = fraction * self.length[line] - self.along[k]
        w = np.clip(np.divide(target, span, out=np.zeros_like(span), where=span > 0), 0, 1)
        return self.coords[k] + w[:, None] * (self.coords[k + 1] - self.coords[k])

    def fraction_of(self, line: Ints, planar: Floats) -> Floats:
        """Ellipsoidal fractions of positions given in planar degrees (``line_locate_point``)."""
        flat = _cumulative(self.coords, self.line, self.start, _planar)
        total = flat[self.start + self.count - 1]
        safe = np.where(total > 0, total, 1.0)
        k = self.edge(line, planar / safe[line], 2.0 * self.line + flat / safe[self.line])
        span = flat[k + 1] - flat[k]
        w = np.clip(
            np.divide(planar - flat[k], span, out=np.zeros_like(span), where=span > 0), 0, 1
        )
        along = self.along[k] + w * (self.along[k + 1] - self.along[k])
        return along / np.where(self.length > 0, self.length, 1.0)[line]


def _planar(lon0: Floats, lat0: Floats, lon1: Floats, lat1: Floats) -> Floats:
    """Edge lengths in degrees, the measure of ``shapely.line_locate_point``."""
    return np.asarray(np.hypot(lon1 - lon0, lat1 - lat0), np.float64)


def _cumulative(coords: Floats, line: Ints, start: Ints, metric: Metric) -> Floats:
    """Distance of each vertex from its line's first vertex under ``metric``."""
    steps = metric(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1])
    steps = np.where(line[1:] == line[:-1], steps, 0.0)
    total = np.concatenate([[0.0], np.cumsum(steps)])
    return np.asarray(total - total[start[line]], dtype=np.float64)


@dataclass(frozen=True)
class Pieces:
    """Road pieces before node numbering: attributes plus their vertices, piece after piece."""

    table: pa.Table  # PIECES
    coords: Floats  # (v, 2)
    counts: Ints  # vertices of each piece

    @classmethod
    def concat(cls, parts: Sequence[Pieces]) -> Pieces:
        return cls(
            pa.concat_tables([p.table for p in parts]) if parts else PIECES.empty_table(),
            np.concatenate([p.coords for p in parts]) if parts else np.zeros((0, 2)),
            np.concatenate([p.counts for p in parts]) if parts else np.zeros(0, np.int64),
        )


def road_pieces(batch: Batch, known: pa.Table | None = None) -> Pieces:
    """The road segments of one batch split at their connectors; other subtypes are dropped.

    ``known`` (``id, lon, lat`` from connector files) is needed only by releases before
    2024-06, whose ``connector_ids`` carry no position: it is found by projecting the
    connector onto the segment.
    """
    table = with_geometry(batch)
    table = table.filter(pc.equal(column(table, "subtype"), "road"))
    lines = shapely.from_wkb(column(table, "geometry").to_numpy(zero_copy_only=False))
    if (shapely.get_type_id(lines) != shapely.GeometryType.LINESTRING).any():
        raise OvertureDataError("it has road segments whose geometry is not a LineString")
    keep = shapely.get_num_points(lines) >= 2
    table, lines = table.filter(pa.array(keep)), lines[keep]
    geo = _Lines.of(lines)
    ids = column(table, "id").cast(pa.string())
    line, at, connector = _positions(table, geo, lines, ids, known)
    first = np.flatnonzero(line[1:] == line[:-1])
    p_line, a, b = line[first], at[first], at[first + 1]
    k = np.arange(len(first)) - np.searchsorted(p_line, p_line)
    source = ids.take(pa.array(p_line))
    names = column(table, "names").take(pa.array(p_line))
    coords, counts = _sub_lines(geo, p_line, a, b)
    attributes = {
        "id": pc.binary_join_element_wise(source, pc.cast(pa.array(k), pa.string()), ":"),
        "source_id": source,
        "from_connector": connector.take(pa.array(first)),
        "to_connector": connector.take(pa.array(first + 1)),
        "road_class": column(table, "class").cast(pa.string()).take(pa.array(p_line)),
        "name": field(names, "primary").cast(pa.string()),
        "names": names_map(names),
        "oneway": _oneway(table, p_line, a, b, geo.length[p_line]),
        **_structure(table, p_line, a, b, geo.length[p_line]),
    }
    return Pieces(pa.table(attributes, schema=PIECES), coords, counts)


def _positions(
    table: pa.Table, geo: _Lines, lines: NDArray[np.object_], ids: pa.Array, known: pa.Table | None
) -> tuple[Ints, Floats, pa.Array]:
    """Split positions sorted by line and position: the connectors plus synthetic ends."""
    if "connectors" in table.schema.names:
        refs = column(table, "connectors")
        items = pc.list_flatten(refs)
        line = pc.list_parent_indices(refs).to_numpy(zero_copy_only=False).astype(np.int64)
        connector, at_array = field(items, "connector_id").cast(pa.string()), field(items, "at")
        ok = mask(pc.and_(pc.is_valid(connector), pc.is_valid(at_array)))
        at = at_array.filter(pa.array(ok)).to_numpy(zero_copy_only=False).astype(np.float64)
        line, connector = line[ok], connector.filter(pa.array(ok))
    else:
        if known is None:
            raise OvertureDataError(
                "its segments list connector_ids without positions, so the connector file "
                "must be imported with it"
            )
        refs = column(table, "connector_ids")
        connector = pc.list_flatten(refs).cast(pa.string())
        line = pc.list_parent_indices(refs).to_numpy(zero_copy_only=False).astype(np.int64)
        where = pc.index_in(connector, value_set=known.column("id"))
        ok = mask(pc.is_valid(where))
        where, line, connector = (
            where.filter(pa.array(ok)),
            line[ok],
            connector.filter(pa.array(ok)),
        )
        lon = known.column("lon").take(where).to_numpy()
        lat = known.column("lat").take(where).to_numpy()
        planar = shapely.line_locate_point(lines[line], shapely.points(lon, lat))
        at = geo.fraction_of(line, planar)
    finite = np.isfinite(at)
    line, at, connector = line[finite], at[finite], connector.filter(pa.array(finite))
    rows = np.arange(len(lines), dtype=np.int64)
    line = np.concatenate([line, rows, rows])
    at = np.clip(np.concatenate([at, np.zeros(len(rows)), np.ones(len(rows))]), 0.0, 1.0)
    synthetic = np.concatenate(
        [np.zeros(len(at) - 2 * len(rows), bool), np.ones(2 * len(rows), bool)]
    )
    ends = [pc.binary_join_element_wise(ids, end, "") for end in ("@0", "@1")]
    connector = pa.concat_arrays([connector, *ends])
    tolerance = _tolerance(geo.length)[line]
    at = np.where(at < tolerance, 0.0, np.where(at > 1 - tolerance, 1.0, at))
    order = np.lexsort((synthetic, at, line))
    line, at, synthetic, connector = (
        line[order],
        at[order],
        synthetic[order],
        connector.take(pa.array(order)),
    )
    # Drop a synthetic end where a connector is, and a connector listed twice in one place;
    # distinct connectors stay, however close: dropping one would cut the network.
    same_line = line[1:] == line[:-1]
    repeated = mask(pc.equal(connector[1:], connector[:-1])) & (at[1:] - at[:-1] <= tolerance[1:])
    covered = synthetic[1:] & (at[1:] == at[:-1])
    keep = np.ones(len(line), bool)
    keep[1:] = ~(same_line & (repeated | covered))
    return line[keep], at[keep], connector.filter(pa.array(keep))


def _tolerance(length: Floats) -> Floats:
    """``SPLIT_TOLERANCE_M`` as a fraction of each length, at most 0.1 % of a short one."""
    safe = np.where(length > 0, length, 1.0)
    return np.where(length > 0, np.minimum(SPLIT_TOLERANCE_M / safe, 1e-3), 1e-3)


def _sub_lines(geo: _Lines, line: Ints, a: Floats, b: Floats) -> tuple[Floats, Ints]:
    """The parts of the lines between fractions ``a`` and ``b``: vertices and their counts."""
    tolerance = _tolerance(geo.length[line])
    inner_from = np.searchsorted(geo.key, 2.0 * line + a + tolerance, side="right")
    inner_to = np.searchsorted(geo.key, 2.0 * line + b - tolerance, side="left")
    inner = np.maximum(inner_to - inner_from, 0)
    counts = inner + 2
    offsets = np.concatenate([[0], np.cumsum(counts)])
    coords = np.empty((offsets[-1], 2))
    coords[offsets[:-1]] = geo.point_at(line, a)
    coords[offsets[1:] - 1] = geo.point_at(line, b)
    step = np.arange(inner.sum()) - np.repeat(np.cumsum(inner) - inner, inner)
    coords[np.repeat(offsets[:-1] + 1, inner) + step] = geo.coords[
        np.repeat(inner_from, inner) + step
    ]
    return coords, counts.astype(np.int64)


def _oneway(table: pa.Table, line: Ints, a: Floats, b: Floats, length: Floats) -> pa.Array:
    """1 where travel against the geometry is denied to everyone, -1 along it, else 0.

    A rule counts when its only scope is the heading (no mode, time, purpose, status or
    vehicle) and its ``between`` range, if any, covers the piece.
    """
    rules = column(table, "access_restrictions")
    oneway = np.zeros(len(line), np.int8)
    if not pa.types.is_list(rules.type) or not len(line):
        return pa.array(oneway)
    items = pc.list_flatten(rules)
    when = field(items, "when")
    heading = field(when, "heading").cast(pa.string())
    ok = mask(pc.equal(field(items, "access_type").cast(pa.string()), "denied"))
    for scope in _UNSCOPED:
        value = field(when, scope)
        empty = pc.equal(pc.list_value_length(value), 0) if pa.types.is_list(value.type) else None
        ok &= mask(pc.is_null(value)) | (mask(empty) if empty is not None else False)
    backward = ok & mask(pc.equal(heading, "backward"))
    forward = ok & mask(pc.equal(heading, "forward"))
    rule, piece, covers = _covering(rules, line, a, b, length)
    denied_back = np.zeros(len(line), bool)
    denied_fwd = np.zeros(len(line), bool)
    denied_back[piece[covers & backward[rule]]] = True
    denied_fwd[piece[covers & forward[rule]]] = True
    oneway[denied_back & ~denied_fwd] = 1
    oneway[denied_fwd & ~denied_back] = -1
    return pa.array(oneway)


def _structure(
    table: pa.Table, line: Ints, a: Floats, b: Floats, length: Floats
) -> dict[str, pa.Array]:
    """``layer`` from the ``level_rules`` and ``tunnel``/``bridge`` from the ``road_flags``
    (``is_tunnel``, ``is_bridge``) whose ``between`` range covers the piece."""
    layer = np.zeros(len(line), np.int8)
    tunnel = np.zeros(len(line), bool)
    bridge = np.zeros(len(line), bool)
    levels = column(table, "level_rules")
    if pa.types.is_list(levels.type) and len(line):
        rule, piece, covers = _covering(levels, line, a, b, length)
        value = pc.fill_null(field(pc.list_flatten(levels), "value"), 0)
        value = np.clip(value.to_numpy(zero_copy_only=False).astype(np.int64), -5, 5)
        layer[piece[covers]] = value[rule[covers]]
    flags = column(table, "road_flags")
    if pa.types.is_list(flags.type) and len(line):
        rule, piece, covers = _covering(flags, line, a, b, length)
        values = field(pc.list_flatten(flags), "values")
        if pa.types.is_list(values.type):
            owner = pc.list_parent_indices(values).to_numpy(zero_copy_only=False)
            flag = pc.list_flatten(values).cast(pa.string())
            for name, out in (("is_tunnel", tunnel), ("is_bridge", bridge)):
                has = np.zeros(len(values), bool)
                has[owner[mask(pc.equal(flag, name))]] = True
                out[piece[covers & has[rule]]] = True
    return {"layer": pa.array(layer), "tunnel": pa.array(tunnel), "bridge": pa.array(bridge)}


def _covering(
    rules: pa.Array, line: Ints, a: Floats, b: Floats, length: Floats
) -> tuple[Ints, Ints, NDArray[np.bool_]]:
    """Every (rule, piece) pair of the same segment, as flat rule and piece indices, and
    whether the rule's ``between`` range (none: the whole segment) covers the piece."""
    items = pc.list_flatten(rules)
    owner = pc.list_parent_indices(rules).to_numpy(zero_copy_only=False).astype(np.int64)
    lo, hi = _between(field(items, "between"))
    first = np.searchsorted(line, owner, side="left")
    count = np.searchsorted(line, owner, side="right") - first
    rule = np.repeat(np.arange(len(owner)), count)
    piece = (
        np.repeat(first, count)
        + np.arange(count.sum())
        - np.repeat(np.cumsum(count) - count, count)
    )
    slack = _tolerance(length[piece])
    covers = (a[piece] >= lo[rule] - slack) & (b[piece] <= hi[rule] + slack)
    return rule, piece, covers


def _between(ranges: pa.Array) -> tuple[Floats, Floats]:
    """``between`` as (lo, hi); a missing or malformed range covers the whole segment."""
    lo, hi = np.zeros(len(ranges)), np.ones(len(ranges))
    if not pa.types.is_list(ranges.type):
        return lo, hi
    values = pc.list_flatten(ranges).to_numpy(zero_copy_only=False).astype(np.float64)
    lengths = pc.fill_null(pc.list_value_length(ranges), 0).to_numpy(zero_copy_only=False)
    starts = np.cumsum(lengths) - lengths
    pair = lengths == 2
    lo[pair], hi[pair] = values[starts[pair]], values[starts[pair] + 1]
    return lo, hi


def number_nodes(pieces: Pieces, connectors: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The ``segments`` and ``connectors`` tables, with dense node numbers.

    Nodes are the connectors of the connector files in file order, then those the pieces
    reference but the files lack (or all of them, without a connector file), placed where
    their first piece starts or ends. Piece ends are moved onto their node so that pieces
    meeting at a node share its exact coordinates.
    """
    ends = np.cumsum(pieces.counts)
    first_vertex, last_vertex = ends - pieces.counts, ends - 1
    # large_string: the ids of a country's pieces can exceed the 2 GiB of one string array
    ids = pa.concat_arrays(
        [
            values.cast(pa.large_string()).combine_chunks()
            for values in (
                connectors.column("id"),
                pieces.table.column("from_connector"),
                pieces.table.column("to_connector"),
            )
        ]
    )
    lon = np.concatenate(
        [
            connectors.column("lon").to_numpy(),
            pieces.coords[first_vertex, 0],
            pieces.coords[last_vertex, 0],
        ]
    )
    lat = np.concatenate(
        [
            connectors.column("lat").to_numpy(),
            pieces.coords[first_vertex, 1],
            pieces.coords[last_vertex, 1],
        ]
    )
    encoded = pc.dictionary_encode(ids)
    code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _, first_seen = np.unique(code, return_index=True)
    node_lon, node_lat = lon[first_seen], lat[first_seen]
    nodes = pa.table(
        {
            "node": np.arange(len(first_seen), dtype=np.int64),
            "id": encoded.dictionary.cast(pa.string()),
            "lon": node_lon,
            "lat": node_lat,
        },
        schema=schema.CONNECTORS,
    )
    n, p = connectors.num_rows, len(pieces.counts)
    from_node, to_node = code[n : n + p], code[n + p :]
    coords = pieces.coords.copy()
    coords[first_vertex] = np.column_stack([node_lon[from_node], node_lat[from_node]])
    coords[last_vertex] = np.column_stack([node_lon[to_node], node_lat[to_node]])
    piece = np.repeat(np.arange(p), pieces.counts)
    steps = haversine_m(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1])
    same = piece[1:] == piece[:-1]
    length = np.bincount(piece[1:][same], weights=steps[same], minlength=p)
    lines = shapely.linestrings(coords, indices=piece) if p else np.empty(0, object)
    t = pieces.table
    segments = pa.table(
        {
            "id": t.column("id"),
            "source_id": t.column("source_id"),
            "from_node": from_node,
            "to_node": to_node,
            "road_class": t.column("road_class"),
            "name": t.column("name"),
            "names": t.column("names"),
            "oneway": t.column("oneway"),
            "layer": t.column("layer"),
            "tunnel": t.column("tunnel"),
            "bridge": t.column("bridge"),
            "length_m": length,
            "geometry": pa.array(shapely.to_wkb(lines), pa.binary()),
        },
        schema=schema.SEGMENTS,
    )
    return segments, nodes
