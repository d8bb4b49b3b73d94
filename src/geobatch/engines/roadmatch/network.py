"""The reference road network as matching needs it: metric pieces, a spatial index, routes.

Built once per process per release (``network_for``) because it costs far more than a chunk:
segments are cut into straight pieces (numpy arrays of their ends and offsets, so candidate
projection is plain vector arithmetic) indexed by an STRtree, and junction-to-junction
distances are tabulated up to a bound (``RouteTable``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import shapely

from geobatch.engines.roadmatch.geometry import LocalProjection
from geobatch.engines.roadmatch.routes import RouteTable

if TYPE_CHECKING:
    from geobatch.reference import Release

ROUTE_LIMIT_M = 200.0
"""Longest junction-to-junction route tabulated. Samples are metres apart and a step whose
route exceeds its length by ~100 m already costs more than restarting the path, so longer
routes would never be used."""


class RoadNetwork:
    """Segments (with ids, names, oneway), their junction graph and a piece index."""

    def __init__(
        self,
        *,
        segment_ids: Sequence[str],
        source_ids: Sequence[str],
        geometries: np.ndarray,
        from_node: np.ndarray,
        to_node: np.ndarray,
        node_lon: np.ndarray,
        node_lat: np.ndarray,
        oneway: np.ndarray | None = None,
        names: Sequence[Sequence[str]] | None = None,
        road_class: Sequence[str | None] | None = None,
        route_limit_m: float = ROUTE_LIMIT_M,
        key: str = "",
    ) -> None:
        """Segments as lon/lat LineStrings with their junction indices into the node arrays."""
        n = len(segment_ids)
        self.key = key
        self.segment_ids = np.asarray(segment_ids, dtype=object)
        self.source_ids = np.asarray(source_ids, dtype=object)
        self.from_node = np.asarray(from_node, dtype=np.int64)
        self.to_node = np.asarray(to_node, dtype=np.int64)
        self.oneway = (
            np.zeros(n, dtype=np.int8) if oneway is None else np.asarray(oneway, dtype=np.int8)
        )
        self.names: list[tuple[str, ...]] = (
            [()] * n if names is None else [tuple(v for v in row if v) for row in names]
        )
        self.road_class = [None] * n if road_class is None else list(road_class)
        node_lon = np.asarray(node_lon, dtype=np.float64)
        node_lat = np.asarray(node_lat, dtype=np.float64)
        if len(node_lon):
            lon0 = float((node_lon.min() + node_lon.max()) / 2)
            lat0 = float((node_lat.min() + node_lat.max()) / 2)
        else:
            lon0 = lat0 = 0.0
        self.projection = LocalProjection(lon0=lon0, lat0=lat0)
        self.node_x, self.node_y = self.projection.forward(node_lon, node_lat)
        metric = self.projection.project(np.asarray(geometries, dtype=object))
        self.length_m = shapely.length(metric).astype(np.float64)
        self._build_pieces(metric)
        self.routes = RouteTable.build(
            len(node_lon), self.from_node, self.to_node, self.length_m, route_limit_m
        )
        self._route_limit_m = route_limit_m
        self._directed: RouteTable | None = None
        self._directed_lock = threading.Lock()

    @property
    def directed_routes(self) -> RouteTable:
        """Routes that respect oneway segments (for GPS traces), built on first use."""
        with self._directed_lock:
            if self._directed is None:
                self._directed = RouteTable.build(
                    len(self.node_x),
                    self.from_node,
                    self.to_node,
                    self.length_m,
                    self._route_limit_m,
                    oneway=self.oneway,
                )
            return self._directed

    def _build_pieces(self, metric: np.ndarray) -> None:
        coords, owner = shapely.get_coordinates(metric, return_index=True)
        same = owner[1:] == owner[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        seg = owner[:-1][same].astype(np.int64)
        length = np.hypot(b[:, 0] - a[:, 0], b[:, 1] - a[:, 1])
        keep = length > 0
        a, b, seg, length = a[keep], b[keep], seg[keep], length[keep]
        # Offset of each piece's start along its segment: cumulative length within the segment.
        cum = np.cumsum(length) - length
        run_first = np.searchsorted(seg, seg, side="left")
        self.piece_segment = seg
        self.piece_x0, self.piece_y0 = a[:, 0].copy(), a[:, 1].copy()
        self.piece_dx, self.piece_dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
        self.piece_length = length
        self.piece_offset = cum - cum[run_first]
        self.tree = shapely.STRtree(shapely.linestrings(np.stack([a, b], axis=1)))

    def __len__(self) -> int:
        return len(self.segment_ids)

    @classmethod
    def from_release(cls, release: Release) -> RoadNetwork:
        segments = release.table("segments")
        connectors = release.table("connectors").sort_by("node")
        return cls.from_tables(segments, connectors, key=release.manifest.id)

    @classmethod
    def from_tables(cls, segments: pa.Table, connectors: pa.Table, *, key: str = "") -> RoadNetwork:
        """From tables shaped like a release's ``segments`` and ``connectors`` (dense nodes)."""
        name = segments.column("name").to_pylist()
        variants = segments.column("names").to_pylist()
        names = [
            list(dict.fromkeys([n for n in [primary, *(v for _, v in (more or []))] if n]))
            for primary, more in zip(name, variants, strict=True)
        ]
        return cls(
            segment_ids=segments.column("id").to_pylist(),
            source_ids=segments.column("source_id").to_pylist(),
            geometries=shapely.from_wkb(segments.column("geometry").to_numpy(zero_copy_only=False)),
            from_node=segments.column("from_node").to_numpy(),
            to_node=segments.column("to_node").to_numpy(),
            node_lon=connectors.column("lon").to_numpy(),
            node_lat=connectors.column("lat").to_numpy(),
            oneway=segments.column("oneway").to_numpy(),
            names=names,
            road_class=segments.column("road_class").to_pylist(),
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
        return cls(
            segment_ids=ids,
            source_ids=[i.rsplit(":", 1)[0] if i.count(":") > 1 else i for i in ids],
            geometries=geoms,
            from_node=inverse[:n],
            to_node=inverse[n:],
            node_lon=unique[:, 0],
            node_lat=unique[:, 1],
            oneway=None if oneway is None else np.asarray(oneway),
            names=None if names is None else [[v] if v else [] for v in names],
        )


_CACHE: dict[str, RoadNetwork] = {}
_LOCK = threading.Lock()


def network_for(release: Release) -> RoadNetwork:
    """The release's network, built once per process per release (keyed on id and folder)."""
    key = f"{release.manifest.id}@{release.path}"
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = RoadNetwork.from_release(release)
            _CACHE[key] = found
        return found
