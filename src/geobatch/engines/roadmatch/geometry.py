"""Local metric coordinates and resampling of input lines.

Matching works in metres, in the network's ``LocalProjection`` (fixed when its release is
built).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from geobatch.reference.indexes.projection import LocalProjection as LocalProjection


@dataclass(frozen=True, kw_only=True)
class Samples:
    """Points resampled along each input line, in local metres, line after line."""

    line: np.ndarray  # int64, index of the input line of each point
    chainage: np.ndarray  # metres from the line's start
    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray  # radians, direction of the line at the point (atan2 of dy, dx)
    tangent: np.ndarray  # radians, direction of the input's own piece under the point
    starts: np.ndarray  # int64 offsets into the point arrays, one per line plus the end
    lengths: np.ndarray  # metres, length of each line

    def turn(self, point: np.ndarray, heading: np.ndarray) -> np.ndarray:
        """Angle between ``heading`` and the input at sample ``point``: the smaller of the
        differences to its chord (smooth on jittered lines) and to its own piece (right at
        the apex of a hairpin or the corner of a road, where the chord cuts across)."""
        return np.minimum(  # type: ignore[no-any-return]
            angle_diff(heading, self.heading[point]), angle_diff(heading, self.tangent[point])
        )


def resample(lines: Sequence[shapely.LineString] | np.ndarray, spacing_m: float) -> Samples:
    """Points every ``spacing_m`` along each (metric) line, both ends included.

    Interpolated in numpy over all lines' vertices at once (GEOS walks a line from its start
    for every point). Lines must have at least two points.

    Uniform chainage steps (rather than the input's own vertices) make the hidden Markov
    model's layers evenly spaced whatever the digitisation density, and bound the work per km.
    """
    coords, owner = shapely.get_coordinates(np.asarray(lines, dtype=object), return_index=True)
    return resample_coords(coords, owner, len(lines), spacing_m)


def resample_coords(
    coords: np.ndarray, owner: np.ndarray, n_lines: int, spacing_m: float
) -> Samples:
    """``resample`` of lines given as their (metric) vertices and each vertex's line, as
    ``shapely.get_coordinates(..., return_index=True)`` gives them: the engine projects
    vertices, never building metric geometries."""
    step = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    first_vertex = np.searchsorted(owner, np.arange(n_lines + 1))
    along = _along(step, first_vertex)
    lengths = along[first_vertex[1:] - 1] if len(along) else np.zeros(n_lines)
    steps = np.maximum(np.ceil(lengths / spacing_m).astype(np.int64), 2)
    counts = steps + 1
    starts = np.zeros(n_lines + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    line = np.repeat(np.arange(n_lines, dtype=np.int64), counts)
    rank = np.arange(starts[-1], dtype=np.int64) - starts[line]
    chainage = lengths[line] * rank / steps[line]
    # Interpolate on the concatenated vertices: find each sample's piece of its own line.
    # Each line's chainages restart at 0: search them shifted apart, line by line.
    shift = np.concatenate([[0.0], np.cumsum(lengths + 1.0)])
    position = shift[line] + chainage
    vertex = np.searchsorted(along + shift[owner], position, side="right") - 1
    low, high = first_vertex[line], first_vertex[line + 1] - 2
    vertex = np.clip(vertex, low, high)
    # The shift rounds: settle a sample within a rounding error of a vertex by its own line's
    # figures, so that where it falls does not depend on the lines before it.
    vertex -= (along[vertex] > chainage) & (vertex > low)
    vertex += (along[vertex + 1] <= chainage) & (vertex < high)
    piece = along[vertex + 1] - along[vertex]
    t = np.divide(chainage - along[vertex], piece, out=np.zeros_like(position), where=piece > 0)
    t = np.clip(t, 0.0, 1.0)
    x = coords[vertex, 0] + t * (coords[vertex + 1, 0] - coords[vertex, 0])
    y = coords[vertex, 1] + t * (coords[vertex + 1, 1] - coords[vertex, 1])
    # Central differences inside a line, one-sided at its ends.
    nxt = np.minimum(np.arange(len(x)) + 1, starts[line + 1] - 1)
    prv = np.maximum(np.arange(len(x)) - 1, starts[line])
    heading = np.arctan2(y[nxt] - y[prv], x[nxt] - x[prv])
    tangent = np.arctan2(
        coords[vertex + 1, 1] - coords[vertex, 1], coords[vertex + 1, 0] - coords[vertex, 0]
    )
    return Samples(
        line=line,
        chainage=chainage,
        x=x,
        y=y,
        heading=heading,
        tangent=tangent,
        starts=starts,
        lengths=lengths,
    )


def _along(step: np.ndarray, first_vertex: np.ndarray) -> np.ndarray:
    """Metres from its line's first vertex to every vertex, summed vertex by vertex from 0 for
    each line (as if it were alone), so a road's figures never depend on the roads batched
    with it; ``step[i]`` runs from vertex i to i + 1. Summed rank by rank over all lines."""
    along = np.zeros(len(step) + 1)
    count = np.diff(first_vertex)
    if not len(count):
        return along
    order = np.argsort(-count, kind="stable")
    begin, alive = first_vertex[:-1][order], count[order]
    cut = np.searchsorted(-alive, -np.arange(int(alive[0])), side="left").tolist()
    for rank in range(1, int(alive[0])):
        at = begin[: cut[rank]] + rank
        along[at] = along[at - 1] + step[at - 1]
    return along


def angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute difference of two headings, radians in [0, pi].

    The remainder (slow) is taken only where the difference reaches a full turn: below
    that it is the difference itself."""
    turn = 2 * np.pi
    d = np.abs(np.asarray(a) - np.asarray(b))
    if isinstance(d, np.ndarray):
        np.remainder(d, turn, out=d, where=d >= turn)
    else:
        d = d % turn
    return np.minimum(d, turn - d)  # type: ignore[no-any-return]
