"""Bounded shortest-path distances between all pairs of nearby junctions.

An upper-bounded origin-destination table (as in FMM): for every connector, the network
distance to each connector within ``limit_m``, and the last segment on that shortest path so
the path can be rebuilt. It is built when a release is imported, with vectorised edge
relaxation (Bellman-Ford rounds over a batch of origins at once, so memory follows the batch,
not the network), and stored as three arrays that workers memory-map: every HMM transition of
every road is then a binary search over shared pages instead of a graph search. Routes longer
than the limit are treated as unreachable, which is what the transition model would reject.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geobatch.reference.indexes.files import ArrayWriter, open_array, write_array

SMALL_TABLE = 1 << 20  # keys (8 MiB) up to which one binary search over all of them is faster


@dataclass(frozen=True, kw_only=True)
class RouteTable:
    """Sorted ``origin * n_nodes + destination`` keys with distance and last segment.

    ``row_start[o]`` is where origin ``o``'s keys begin, so a look-up reads one entry of it
    and then searches a row of a few dozen keys: two cache misses on a country-sized table
    instead of the twenty of a binary search over all of it.
    """

    n_nodes: int
    limit_m: float
    keys: np.ndarray  # int64, sorted
    dist: np.ndarray  # float64 metres
    last_segment: np.ndarray  # int64, segment entering the destination; -1 for origin itself
    row_start: np.ndarray  # int64, n_nodes + 1

    @classmethod
    def of(
        cls, n_nodes: int, limit_m: float, keys: np.ndarray, dist: np.ndarray, last: np.ndarray
    ) -> RouteTable:
        """A table over sorted keys, with its row starts computed."""
        starts = np.searchsorted(keys, np.arange(n_nodes + 1, dtype=np.int64) * n_nodes)
        return cls(
            n_nodes=n_nodes,
            limit_m=limit_m,
            keys=keys,
            dist=dist,
            last_segment=last,
            row_start=starts.astype(np.int64),
        )

    @classmethod
    def build(
        cls,
        n_nodes: int,
        from_node: np.ndarray,
        to_node: np.ndarray,
        length_m: np.ndarray,
        limit_m: float,
        oneway: np.ndarray | None = None,
        *,
        batch_origins: int = 50_000,
    ) -> RouteTable:
        """Relax all edges from each batch of origins' frontier until no distance improves.

        Without ``oneway`` every segment is travelled both ways (road datasets are digitised
        either way and oneway is scored on the states); with it, only the way traffic flows.
        Batches are independent, and keys of later origins sort after earlier ones, so the
        table is the same whatever the batch size.
        """
        graph = _Graph.of(n_nodes, from_node, to_node, length_m, oneway)
        parts = [found for _, found in graph.search_batches(limit_m, batch_origins)]
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return cls.of(n_nodes, limit_m, empty, np.zeros(0), empty)
        return cls.of(
            n_nodes,
            limit_m,
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )

    @staticmethod
    def write(
        folder: Path,
        prefix: str,
        n_nodes: int,
        from_node: np.ndarray,
        to_node: np.ndarray,
        length_m: np.ndarray,
        limit_m: float,
        oneway: np.ndarray | None = None,
        *,
        batch_origins: int = 50_000,
    ) -> None:
        """``build(...).save(folder, prefix)``, the same files, written batch by batch: only
        one batch of origins' routes is in memory, not the whole table."""
        graph = _Graph.of(n_nodes, from_node, to_node, length_m, oneway)
        write_array(folder, f"{prefix}/shape", np.array([n_nodes, limit_m], np.float64))
        row_start = np.zeros(n_nodes + 1, dtype=np.int64)
        written = 0
        with (
            ArrayWriter(folder, f"{prefix}/keys", np.int64) as keys,
            ArrayWriter(folder, f"{prefix}/dist", np.float64) as dist,
            ArrayWriter(folder, f"{prefix}/last_segment", np.int64) as last,
        ):
            for origins, found in graph.search_batches(limit_m, batch_origins):
                row_start[origins] = written + np.searchsorted(found[0], origins * n_nodes)
                keys.append(found[0])
                dist.append(found[1])
                last.append(found[2])
                written += len(found[0])
        row_start[n_nodes] = written
        write_array(folder, f"{prefix}/row_start", row_start)

    def save(self, folder: Path, prefix: str) -> None:
        write_array(folder, f"{prefix}/shape", np.array([self.n_nodes, self.limit_m], np.float64))
        write_array(folder, f"{prefix}/keys", self.keys)
        write_array(folder, f"{prefix}/dist", self.dist)
        write_array(folder, f"{prefix}/last_segment", self.last_segment)
        write_array(folder, f"{prefix}/row_start", self.row_start)

    @classmethod
    def open(cls, folder: Path, prefix: str) -> RouteTable:
        shape = open_array(folder, f"{prefix}/shape")
        return cls(
            n_nodes=int(shape[0]),
            limit_m=float(shape[1]),
            keys=open_array(folder, f"{prefix}/keys"),
            dist=open_array(folder, f"{prefix}/dist"),
            last_segment=open_array(folder, f"{prefix}/last_segment"),
            row_start=open_array(folder, f"{prefix}/row_start"),
        )

    def _find(self, origin: np.ndarray, destination: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        origin = np.asarray(origin, dtype=np.int64)
        key = origin * self.n_nodes + np.asarray(destination, dtype=np.int64)
        if not len(self.keys):
            return np.zeros(len(key), dtype=np.int64), np.zeros(len(key), dtype=bool)
        if len(self.keys) <= SMALL_TABLE:
            # A city's table stays in cache: one search in C beats the rounds below.
            pos = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
            return pos, self.keys[pos] == key
        lo = np.asarray(self.row_start[origin])
        end = np.asarray(self.row_start[origin + 1])
        hi = end.copy()
        # Binary search within each origin's row, all look-ups at once.
        active = lo < hi
        while active.any():
            mid = (lo + hi) // 2
            right = active & (self.keys[np.minimum(mid, len(self.keys) - 1)] < key)
            lo = np.where(right, mid + 1, lo)
            hi = np.where(active & ~right, mid, hi)
            active = lo < hi
        pos = np.minimum(lo, len(self.keys) - 1)
        return pos, (lo < end) & (self.keys[pos] == key)

    def distance(self, origin: np.ndarray, destination: np.ndarray) -> np.ndarray:
        """Network metres, ``inf`` beyond the limit."""
        pos, found = self._find(origin, destination)
        return np.where(found, self.dist[pos], np.inf)

    def path_segments(
        self,
        origin: np.ndarray,
        destination: np.ndarray,
        from_node: np.ndarray,
        to_node: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Segments on each shortest path, as (pair index, segment), destination end first.

        Rebuilt backwards one hop per round for all pairs at once.
        """
        origin = np.asarray(origin, dtype=np.int64)
        current = np.asarray(destination, dtype=np.int64).copy()
        pair = np.arange(len(origin), dtype=np.int64)
        out_pair: list[np.ndarray] = []
        out_seg: list[np.ndarray] = []
        for _ in range(len(self.keys)):
            active = current != origin
            if not active.any():
                break
            pair, origin, current = pair[active], origin[active], current[active]
            pos, found = self._find(origin, current)
            pair, origin, current, pos = pair[found], origin[found], current[found], pos[found]
            seg = self.last_segment[pos]
            out_pair.append(pair)
            out_seg.append(seg)
            current = np.where(from_node[seg] == current, to_node[seg], from_node[seg])
        if not out_pair:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(out_pair), np.concatenate(out_seg)


@dataclass(frozen=True, kw_only=True)
class _Graph:
    """Directed edges sorted by tail, with each node's first edge (CSR)."""

    n_nodes: int
    head: np.ndarray
    weight: np.ndarray
    edge_seg: np.ndarray
    first: np.ndarray
    degree: np.ndarray

    @classmethod
    def of(
        cls,
        n_nodes: int,
        from_node: np.ndarray,
        to_node: np.ndarray,
        length_m: np.ndarray,
        oneway: np.ndarray | None,
    ) -> _Graph:
        seg = np.arange(len(from_node), dtype=np.int64)
        tail = np.concatenate([from_node, to_node]).astype(np.int64)
        head = np.concatenate([to_node, from_node]).astype(np.int64)
        weight = np.concatenate([length_m, length_m]).astype(np.float64)
        edge_seg = np.concatenate([seg, seg])
        if oneway is not None:
            allowed = np.concatenate([oneway >= 0, oneway <= 0])
            tail, head, weight, edge_seg = (v[allowed] for v in (tail, head, weight, edge_seg))
        order = np.argsort(tail, kind="stable")
        tail, head, weight, edge_seg = tail[order], head[order], weight[order], edge_seg[order]
        first = np.searchsorted(tail, np.arange(n_nodes + 1))
        return cls(
            n_nodes=n_nodes,
            head=head,
            weight=weight,
            edge_seg=edge_seg,
            first=first,
            degree=np.diff(first),
        )

    def search_batches(
        self, limit_m: float, batch_origins: int
    ) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Every node's routes, ``batch_origins`` origins at a time, in origin order."""
        for a in range(0, self.n_nodes, max(1, batch_origins)):
            origins = np.arange(a, min(a + batch_origins, self.n_nodes), dtype=np.int64)
            yield origins, self.search(origins, limit_m)

    def search(
        self, nodes: np.ndarray, limit_m: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted keys, distances and last segments of routes from ``nodes`` within the limit."""
        n_nodes, first, degree = self.n_nodes, self.first, self.degree
        head, weight, edge_seg = self.head, self.weight, self.edge_seg
        keys = nodes * n_nodes + nodes
        dist = np.zeros(len(nodes))
        last = np.full(len(nodes), -1, dtype=np.int64)
        f_origin, f_node, f_dist = nodes, nodes, dist.copy()
        while len(f_origin):
            reps = degree[f_node]
            src = np.repeat(f_origin, reps)
            base = np.repeat(f_dist, reps)
            # Index of each repeated entry's edge: first[node] + rank within the node's run.
            run_start = np.repeat(np.cumsum(reps) - reps, reps)
            edge = np.repeat(first[f_node], reps) + (np.arange(len(src)) - run_start)
            cand_dist = base + weight[edge]
            keep = cand_dist <= limit_m
            src, edge, cand_dist = src[keep], edge[keep], cand_dist[keep]
            cand_keys = src * n_nodes + head[edge]
            # Best candidate per key this round.
            order = np.lexsort((cand_dist, cand_keys))
            cand_keys, cand_dist, edge = cand_keys[order], cand_dist[order], edge[order]
            uniq = np.ones(len(cand_keys), dtype=bool)
            uniq[1:] = cand_keys[1:] != cand_keys[:-1]
            cand_keys, cand_dist, edge = cand_keys[uniq], cand_dist[uniq], edge[uniq]
            # Compare with the table.
            pos = np.searchsorted(keys, cand_keys)
            found = pos < len(keys)
            found[found] = keys[pos[found]] == cand_keys[found]
            improves = ~found
            improves[found] = cand_dist[found] < dist[pos[found]] - 1e-9
            if not improves.any():
                break
            upd = found & improves
            dist[pos[upd]] = cand_dist[upd]
            last[pos[upd]] = edge_seg[edge[upd]]
            new = ~found
            if new.any():
                keys = np.concatenate([keys, cand_keys[new]])
                dist = np.concatenate([dist, cand_dist[new]])
                last = np.concatenate([last, edge_seg[edge[new]]])
                order = np.argsort(keys, kind="stable")
                keys, dist, last = keys[order], dist[order], last[order]
            f_origin = cand_keys[improves] // n_nodes
            f_node = cand_keys[improves] % n_nodes
            f_dist = cand_dist[improves]
        return keys, dist, last
