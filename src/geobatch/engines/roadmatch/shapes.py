"""The geometry of matched stretches: the part of a reference segment between two offsets.

Cut from the network's straight pieces (the same arrays candidates are projected onto), so
the stretch a user sees on a map is exactly the range reported, in lon/lat.
"""

from __future__ import annotations

import numpy as np
import shapely

from geobatch.engines.roadmatch.network import RoadNetwork


def covered_lines(
    network: RoadNetwork, segment: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """LineStrings (lon/lat) of ``segment[k]`` between ``lo[k]`` and ``hi[k]`` metres."""
    segment = np.asarray(segment, dtype=np.int64)
    if len(segment) == 0:
        return np.empty(0, dtype=object)
    first, stop = network.piece_range(segment)
    count = stop - first
    owner = np.repeat(np.arange(len(segment)), count)
    piece = np.repeat(first, count) + (
        np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    )
    start = network.piece_offset[piece]
    length = network.piece_length[piece]
    # The pieces that the range touches (at least one per range, even for a zero-length one).
    touches = (start + length >= lo[owner]) & (start <= hi[owner])
    owner, piece, start, length = owner[touches], piece[touches], start[touches], length[touches]
    t0 = np.clip((lo[owner] - start) / length, 0.0, 1.0)
    t1 = np.clip((hi[owner] - start) / length, 0.0, 1.0)
    x0, y0 = network.piece_x0[piece], network.piece_y0[piece]
    dx, dy = network.piece_dx[piece], network.piece_dy[piece]
    head = np.r_[True, owner[1:] != owner[:-1]]
    # Each range: where its first piece is entered, then where each of its pieces is left.
    xs = np.concatenate([x0[head] + t0[head] * dx[head], x0 + t1 * dx])
    ys = np.concatenate([y0[head] + t0[head] * dy[head], y0 + t1 * dy])
    which = np.concatenate([owner[head], owner])
    rank = np.concatenate([np.zeros(int(head.sum())), np.arange(1, len(owner) + 1)])
    order = np.lexsort((rank, which))
    lon, lat = network.projection.inverse(xs[order], ys[order])
    return shapely.linestrings(np.column_stack([lon, lat]), indices=which[order])  # type: ignore[no-any-return]
