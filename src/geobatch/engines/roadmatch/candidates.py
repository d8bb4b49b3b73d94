"""Candidate positions on the reference network for every sample point of a batch.

One query on the piece index for all points at once, then exact projection onto
the straight pieces in numpy; per (point, segment) the nearest piece wins, and per point the
``max_candidates`` nearest segments are kept. Each candidate is then offered in both travel
directions along its segment, since the HMM scores heading and continuity per direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geobatch.engines.roadmatch.geometry import Samples
from geobatch.engines.roadmatch.network import RoadNetwork


@dataclass(frozen=True, kw_only=True)
class Candidates:
    """Directed candidates sorted by point; ``point`` indexes the sample arrays."""

    point: np.ndarray  # int64
    segment: np.ndarray  # int64
    direction: np.ndarray  # int8, +1 along the segment's digitisation, -1 against
    offset: np.ndarray  # metres along the segment (its own direction) of the projection
    distance: np.ndarray  # metres from the point to the segment
    heading: np.ndarray  # radians, travel heading on the segment at the projection
    x: np.ndarray  # projected position, local metres
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.point)

    def take(self, keep: np.ndarray) -> Candidates:
        """The candidates where ``keep`` is True (order kept)."""
        return Candidates(
            point=self.point[keep],
            segment=self.segment[keep],
            direction=self.direction[keep],
            offset=self.offset[keep],
            distance=self.distance[keep],
            heading=self.heading[keep],
            x=self.x[keep],
            y=self.y[keep],
        )


def find_candidates(
    samples: Samples, network: RoadNetwork, radius_m: float, max_candidates: int
) -> Candidates:
    """Segments within ``radius_m`` of each sample, nearest first, ``max_candidates`` at most."""
    px, py, r = samples.x, samples.y, radius_m
    point, piece = network.pieces_near(px, py, r)
    dx, dy = network.piece_dx[piece], network.piece_dy[piece]
    length = network.piece_length[piece]
    rx = px[point] - network.piece_x0[piece]
    ry = py[point] - network.piece_y0[piece]
    t = np.clip((rx * dx + ry * dy) / (length * length), 0.0, 1.0)
    # From the projection to the point; only pairs within the radius go further.
    ex, ey = rx - t * dx, ry - t * dy
    within = np.flatnonzero(ex * ex + ey * ey <= r * r)
    point, piece, t = point[within], piece[within], t[within]
    dist = np.hypot(ex[within], ey[within])
    qx = px[point] - ex[within]
    qy = py[point] - ey[within]
    segment = network.piece_segment[piece]
    # Sort indices only, and gather the candidate columns once at the end. A distance is at
    # most r, so "key * span + distance" with span > r orders by key, then distance, in one
    # float sort (much cheaper than a lexsort). Nearest piece per (point, segment) ...
    span = 2.0 * r + 1.0
    pair = point * len(network) + segment
    # By distance, then stably by pair: exact at any network size, where one float key of
    # pair and distance would lose the distance's last digits once pair ids reach billions.
    order = np.argsort(dist, kind="stable")
    order = order[np.argsort(pair[order], kind="stable")]
    pair = pair[order]
    pick = order[np.r_[True, pair[1:] != pair[:-1]]] if len(pair) else order
    # ... then the nearest segments per point.
    pick = pick[np.argsort(point[pick] * span + dist[pick])]
    run_start = np.searchsorted(point[pick], point[pick], side="left")
    pick = pick[np.arange(len(pick)) - run_start < max_candidates]
    point, piece, t, qx, qy, dist, segment = (
        a[pick] for a in (point, piece, t, qx, qy, dist, segment)
    )

    offset = network.piece_offset[piece] + t * network.piece_length[piece]
    along = np.arctan2(network.piece_dy[piece], network.piece_dx[piece])
    both = np.repeat(np.arange(len(point)), 2)
    direction = np.tile(np.array([1, -1], dtype=np.int8), len(point))
    heading = along[both] + np.where(direction > 0, 0.0, np.pi)
    return Candidates(
        point=point[both],
        segment=segment[both],
        direction=direction,
        offset=offset[both],
        distance=dist[both],
        heading=heading,
        x=qx[both],
        y=qy[both],
    )
