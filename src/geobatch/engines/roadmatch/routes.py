"""Bounded shortest-path distances between all pairs of nearby junctions.

An upper-bounded origin-destination table (as in FMM): for every connector, the network
distance to each connector within ``limit_m``, and the last segment on that shortest path so
the path can be rebuilt. It is built once per network with vectorised edge relaxation
(Bellman-Ford rounds over all origins at once), after which every HMM transition of every
road is a binary search instead of a graph search. Routes longer than the limit are treated
as unreachable, which is what the transition model would reject anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class RouteTable:
    """Sorted ``origin * n_nodes + destination`` keys with distance and last segment."""

    n_nodes: int
    limit_m: float
    keys: np.ndarray  # int64, sorted
    dist: np.ndarray  # float64 metres
    last_segment: np.ndarray  # int64, segment entering the destination; -1 for origin itself

    @classmethod
    def build(
        cls,
        n_nodes: int,
        from_node: np.ndarray,
        to_node: np.ndarray,
        length_m: np.ndarray,
        limit_m: float,
        oneway: np.ndarray | None = None,
    ) -> RouteTable:
        """Relax all edges from every origin's frontier until no distance improves.

        Without ``oneway`` every segment is travelled both ways (road datasets are digitised
        either way and oneway is scored on the states); with it, only the way traffic flows.
        """
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
        degree = np.diff(first)

        nodes = np.arange(n_nodes, dtype=np.int64)
        keys = nodes * n_nodes + nodes
        dist = np.zeros(n_nodes)
        last = np.full(n_nodes, -1, dtype=np.int64)
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
        return cls(n_nodes=n_nodes, limit_m=limit_m, keys=keys, dist=dist, last_segment=last)

    def _find(self, origin: np.ndarray, destination: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = np.asarray(origin, dtype=np.int64) * self.n_nodes + np.asarray(
            destination, dtype=np.int64
        )
        pos = np.searchsorted(self.keys, key)
        pos = np.minimum(pos, len(self.keys) - 1)
        return pos, self.keys[pos] == key

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
