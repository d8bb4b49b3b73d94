"""The reference road network as matching needs it: metric pieces, a piece index, routes.

Everything heavy (pieces, their grid index, the route tables) comes ready from the release
as memory-mapped arrays (``reference.indexes.roads``), so opening a network costs
milliseconds and no private memory, and every worker on a machine shares one copy. Segment
ids and names stay in the release's Arrow table and are read only for the segments a road
matched. ``from_lines`` builds the same arrays in memory for a handful of lines (tests,
single requests against ad-hoc networks).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference.indexes import RoadArrays, RouteTable
from geobatch.reference.indexes.roads import ROUTE_LIMIT_M, build_road_arrays, table_parts

if TYPE_CHECKING:
    from geobatch.reference import Release

__all__ = ["ROUTE_LIMIT_M", "RoadNetwork", "network_for"]

BOX_MARGIN_M = 0.001
"""A piece's box is grown by this much before it is found clear of a point's search box:
far more than the rounding of the distance the candidate search measures, so no piece it
would keep is left out."""


class TextColumn(Sequence[str]):
    """A string column read one value (or one ``take``) at a time, never turned into a list."""

    def __init__(self, values: pa.ChunkedArray | pa.Array) -> None:
        self._values = values  # chunks stay mapped: combining them would copy into the heap

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return self._values[index].to_pylist()  # type: ignore[no-any-return]
        return str(self._values[int(index)].as_py())

    def __iter__(self) -> Iterator[str]:
        return iter(self._values.to_pylist())

    def take(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.take_list(indices), dtype=object)

    def take_list(self, indices: np.ndarray) -> list[str]:
        """The values at ``indices``, gathered by Arrow in one call."""
        return self._values.take(pa.array(indices, pa.int64())).to_pylist()  # type: ignore[no-any-return]

    def tolist(self) -> list[str]:
        return self._values.to_pylist()  # type: ignore[no-any-return]


class SegmentNames(Sequence[tuple[str, ...]]):
    """Each segment's names (primary first, then its variants), decoded on first use."""

    def __init__(self, name: pa.ChunkedArray | pa.Array, names: pa.ChunkedArray | pa.Array):
        self._name, self._names = name, names
        self._one = functools.lru_cache(maxsize=65_536)(self._decode)

    def __len__(self) -> int:
        return len(self._name)

    def has_name(self) -> np.ndarray:
        """Per segment, whether its primary name is set and not empty."""
        present = pc.fill_null(pc.greater(pc.utf8_length(self._name), 0), False)
        return np.asarray(present.to_numpy(zero_copy_only=False), dtype=bool)

    def _decode(self, index: int) -> tuple[str, ...]:
        primary = self._name[index].as_py()
        variants = self._names[index].as_py() or []
        return tuple(dict.fromkeys(n for n in [primary, *(v for _, v in variants)] if n))

    @overload
    def __getitem__(self, index: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[str, ...]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, ...] | Sequence[tuple[str, ...]]:
        if isinstance(index, slice):
            return [self._one(i) for i in range(*index.indices(len(self)))]
        return self._one(int(index))


class RoadNetwork:
    """Segments (with ids, names, oneway, layer, tunnel, bridge), their junction graph, pieces
    and their index."""

    def __init__(
        self,
        arrays: RoadArrays,
        *,
        segment_ids: Sequence[str],
        source_ids: Sequence[str],
        names: Sequence[tuple[str, ...]],
        key: str = "",
    ) -> None:
        self.key = key
        self.arrays = arrays
        self.projection = arrays.projection
        self.segment_ids = segment_ids
        self.source_ids = source_ids
        self.names = names
        self.from_node = arrays.from_node
        self.to_node = arrays.to_node
        self.oneway = arrays.oneway
        self.layer, self.tunnel, self.bridge = arrays.layer, arrays.tunnel, arrays.bridge
        self.length_m = arrays.length_m
        self.node_x, self.node_y = arrays.node_x, arrays.node_y
        self.piece_segment = arrays.piece_segment
        self.piece_x0, self.piece_y0 = arrays.piece_x0, arrays.piece_y0
        self.piece_dx, self.piece_dy = arrays.piece_dx, arrays.piece_dy
        self.piece_length = arrays.piece_length
        self.piece_offset = arrays.piece_offset
        self.routes: RouteTable = arrays.routes
        self.directed_routes: RouteTable = arrays.directed_routes
        self._group_lock = threading.Lock()
        self._group_of: dict[tuple[str, ...], int] = {}
        self._group_names: list[tuple[str, ...]] = []

    def __len__(self) -> int:
        return len(self.from_node)

    @functools.cached_property
    def named(self) -> np.ndarray:
        """Per segment, whether it has a name (one pass over the names, on first use)."""
        if isinstance(self.names, SegmentNames):
            return self.names.has_name()
        return np.fromiter((bool(n) for n in self.names), dtype=bool, count=len(self.names))

    @functools.cached_property
    def _name_group(self) -> np.ndarray:
        return np.full(len(self), -1, dtype=np.int64)

    def name_groups(self, segments: np.ndarray) -> np.ndarray:
        """Per segment, an id shared by every segment with the same names, so that a road's
        name is compared once with the names of a whole street; assigned on first use."""
        with self._group_lock:
            groups: np.ndarray = np.take(self._name_group, segments)
            unseen = np.unique(segments[groups < 0])
            for segment in unseen.tolist():
                names = self.names[segment]
                group = self._group_of.setdefault(names, len(self._group_names))
                if group == len(self._group_names):
                    self._group_names.append(names)
                self._name_group[segment] = group
            if len(unseen):
                groups = np.take(self._name_group, segments)
            return groups

    def group_names(self, group: int) -> tuple[str, ...]:
        """The names of the segments of ``group`` (``name_groups``)."""
        return self._group_names[group]

    def ids_of(self, segments: np.ndarray) -> list[str]:
        """Segment ids of ``segments`` (indices), in one gather where the column allows."""
        return _take(self.segment_ids, segments)

    def source_ids_of(self, segments: np.ndarray) -> list[str]:
        """Source ids (``osm:way/1``, GERS ids) of ``segments``."""
        return _take(self.source_ids, segments)

    def piece_range(self, segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first piece of each segment and one past its last (a segment's pieces are
        numbered in a run)."""
        first = np.searchsorted(self.piece_segment, segment, side="left")
        return first, np.searchsorted(self.piece_segment, segment, side="right")

    def pieces_near(
        self, x: np.ndarray, y: np.ndarray, radius_m: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(point, piece) pairs, sorted, for pieces filed near each point: a superset of those
        within ``radius_m`` (deduplicated here: measured faster than leaving it to the caller).
        A road's samples, and roads crossing, share cells: each set of cells is read once, and
        a piece whose box lies clear of all their search boxes is measured for none of them."""
        r = radius_m
        return self.arrays.pieces.query_shared(
            x - r, y - r, x + r, y + r, item_bounds=self._piece_bounds
        )

    def _piece_bounds(
        self, piece: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Boxes of ``piece``, grown by ``BOX_MARGIN_M``."""
        x0, y0 = self.piece_x0[piece], self.piece_y0[piece]
        x1, y1 = x0 + self.piece_dx[piece], y0 + self.piece_dy[piece]
        m = BOX_MARGIN_M
        return (
            np.minimum(x0, x1) - m,
            np.minimum(y0, y1) - m,
            np.maximum(x0, x1) + m,
            np.maximum(y0, y1) + m,
        )

    @classmethod
    def from_release(cls, release: Release) -> RoadNetwork:
        """The release's ready arrays, mapped; ids and names read from its segments table."""
        segments = release.table("segments")
        return cls(
            RoadArrays.open(release.path),
            segment_ids=TextColumn(segments.column("id")),
            source_ids=TextColumn(segments.column("source_id")),
            names=SegmentNames(segments.column("name"), segments.column("names")),
            key=release.manifest.id,
        )

    @classmethod
    def from_tables(cls, segments: pa.Table, connectors: pa.Table, *, key: str = "") -> RoadNetwork:
        """Built in memory from tables shaped like a release's (for networks edited on the fly)."""
        return cls(
            RoadArrays(**dict(table_parts(segments, connectors))),
            segment_ids=TextColumn(segments.column("id")),
            source_ids=TextColumn(segments.column("source_id")),
            names=SegmentNames(segments.column("name"), segments.column("names")),
            key=key,
        )

    @classmethod
    def from_lines(
        cls,
        lines: Sequence[shapely.LineString],
        *,
        ids: Sequence[str] | None = None,
        oneway: Sequence[int] | None = None,
        names: Sequence[str | None] | None = None,
        layer: Sequence[int] | None = None,
        tunnel: Sequence[bool] | None = None,
        bridge: Sequence[bool] | None = None,
        precision: int = 7,
    ) -> RoadNetwork:
        """From lon/lat LineStrings, joined where their end points coincide (to ``precision``)."""
        geoms = np.asarray(lines, dtype=object)
        n = len(geoms)
        starts = shapely.get_coordinates(shapely.get_point(geoms, 0))
        ends = shapely.get_coordinates(shapely.get_point(geoms, -1))
        ends_all = np.round(np.concatenate([starts, ends]), precision)
        unique, inverse = np.unique(ends_all, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        ids = list(ids) if ids is not None else [f"seg:{i}" for i in range(n)]
        arrays = build_road_arrays(
            iter([geoms]),
            from_node=inverse[:n],
            to_node=inverse[n:],
            node_lon=unique[:, 0],
            node_lat=unique[:, 1],
            oneway=None if oneway is None else np.asarray(oneway),
            layer=None if layer is None else np.asarray(layer),
            tunnel=None if tunnel is None else np.asarray(tunnel),
            bridge=None if bridge is None else np.asarray(bridge),
        )
        return cls(
            arrays,
            segment_ids=ids,
            source_ids=[i.rsplit(":", 1)[0] if i.count(":") > 1 else i for i in ids],
            names=[(v,) if v else () for v in names] if names is not None else [()] * n,
        )


def _take(values: Sequence[str], indices: np.ndarray) -> list[str]:
    if isinstance(values, TextColumn):
        return values.take_list(indices)
    return [values[k] for k in indices.tolist()]


_CACHE: dict[str, RoadNetwork] = {}
_LOCK = threading.Lock()


def network_for(release: Release) -> RoadNetwork:
    """The release's network, opened once per process per release (keyed on id and folder)."""
    key = f"{release.manifest.id}@{release.path}"
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = RoadNetwork.from_release(release)
            _CACHE[key] = found
        return found
