"""Candidate positions on the reference network for every sample point of a batch.

One query on the piece index for all points at once, then exact projection onto
the straight pieces in numpy; per (point, segment) the nearest piece wins, and per point the
``max_candidates`` nearest segments are kept. Each candidate is then offered in the travel
directions along its segment that head roughly the road's way, since the HMM scores heading
and continuity per direction (a direction far off the road's heading is never on its path).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geobatch.engines.roadmatch.geometry import Samples, angle_diff
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
    samples: Samples,
    network: RoadNetwork,
    radius_m: float,
    max_candidates: int,
    max_turn: float = np.pi,
) -> Candidates:
    """Segments within ``radius_m`` of each sample, nearest first, ``max_candidates`` at most,
    in the travel directions within ``max_turn`` (radians) of the sample's heading."""
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
    point, piece = point[within], piece[within]
    dist = np.hypot(ex[within], ey[within])
    segment = network.piece_segment[piece]
    # Pairs come sorted by point, then piece, and a segment's pieces are numbered in a run,
    # so each (point, segment) is one run: its nearest piece (the first at equal distance)
    # is found by a reduction over runs, without sorting. Columns are gathered at the end.
    head = np.ones(len(point), dtype=bool)
    head[1:] = (point[1:] != point[:-1]) | (segment[1:] != segment[:-1])
    starts = np.flatnonzero(head)
    run = np.cumsum(head) - 1
    nearest = np.minimum.reduceat(dist, starts) if len(starts) else dist
    at_min = np.flatnonzero(dist == nearest[run])
    pick = at_min[np.r_[True, run[at_min][1:] != run[at_min][:-1]]] if len(at_min) else at_min
    # A distance is at most r, so "point * span + distance" with span > r orders by point,
    # then distance, in one float sort (much cheaper than a lexsort; stable, so segments at
    # the same distance, as at a junction, keep their order whatever else is in the batch,
    # and it runs faster on keys already in runs) ...
    span = 2.0 * r + 1.0
    # ... then the nearest segments per point.
    pick = pick[np.argsort(point[pick] * span + dist[pick], kind="stable")]
    sorted_point = point[pick]
    rank = np.arange(len(pick))
    head = np.ones(len(pick), dtype=bool)
    head[1:] = sorted_point[1:] != sorted_point[:-1]
    run_start = np.maximum.accumulate(np.where(head, rank, 0)) if len(pick) else rank
    pick = pick[rank - run_start < max_candidates]
    point, piece, dist, segment = (a[pick] for a in (point, piece, dist, segment))
    # The projections of the kept pairs only (a third of those within the radius).
    kept = within[pick]
    t, qx, qy = t[kept], px[point] - ex[kept], py[point] - ey[kept]

    offset = network.piece_offset[piece] + t * network.piece_length[piece]
    along = np.arctan2(network.piece_dy[piece], network.piece_dx[piece])
    # Both travel directions, only those heading within ``max_turn`` of the road.
    heading = np.stack([along, along + np.pi], axis=1)
    keep = angle_diff(heading, samples.heading[point][:, None]) <= max_turn
    both, side = np.nonzero(keep)
    direction = np.where(side == 0, 1, -1).astype(np.int8)
    return Candidates(
        point=point[both],
        segment=segment[both],
        direction=direction,
        offset=offset[both],
        distance=dist[both],
        heading=heading[both, side],
        x=qx[both],
        y=qy[both],
    )
