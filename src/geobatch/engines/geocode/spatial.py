"""Positions on the Earth as 3-D vectors, so nearest-neighbour search is one mapped-grid query.

Points become vectors in metres from the Earth's centre (a sphere of mean radius). The chord
between two such vectors equals the ground distance to within centimetres at the radii that
reverse geocoding searches (tens of kilometres), so a grid
search over them (``reference.indexes.sphere``) answers "nearest
within r metres" for a whole chunk in one call, anywhere on Earth, with no projection to pick.
Short straight road edges are chords too, so projecting a point onto an edge is plain vector
arithmetic on these coordinates.
"""

from __future__ import annotations

import numpy as np

from geobatch.reference.indexes.sphere import EARTH_RADIUS_M, sphere_latlon, sphere_xyz

__all__ = [
    "EARTH_RADIUS_M",
    "closest_on_edges",
    "haversine_m",
    "side_of_edge",
    "sphere_latlon",
    "sphere_xyz",
]


def haversine_m(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distances in metres, element-wise."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def closest_on_edges(
    points: np.ndarray,
    starts: np.ndarray,
    along: np.ndarray,
    inverse_length2: np.ndarray,
    usable: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each point, which of its ``k`` candidate edges is closest, how far, and where.

    ``points`` is ``(n, 3)``; ``starts`` and ``along`` (end minus start) are ``(n, k, 3)``;
    ``inverse_length2`` and ``usable`` are ``(n, k)``. Returns the chosen column (0..k-1),
    the distance (inf where no candidate is usable) and the projected point ``(n, 3)``.
    """
    relative = points[:, None, :] - starts
    fraction = np.einsum("nki,nki->nk", relative, along) * inverse_length2
    np.clip(fraction, 0.0, 1.0, out=fraction)
    gap = relative - fraction[..., None] * along
    distance2 = np.einsum("nki,nki->nk", gap, gap)
    distance2[~usable] = np.inf
    pick = np.argmin(distance2, axis=1)
    every = np.arange(len(points))
    chosen = fraction[every, pick][:, None]
    projected = starts[every, pick] + chosen * along[every, pick]
    return pick, np.sqrt(distance2[every, pick]), projected


def side_of_edge(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """True where a point lies left of its edge (seen from above, walking start to end)."""
    a = ends - starts
    b = points - starts
    # (a cross b) dot starts, written out: np.cross is slow on many short vectors
    turn = (
        (a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]) * starts[..., 0]
        + (a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]) * starts[..., 1]
        + (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]) * starts[..., 2]
    )
    return np.asarray(turn > 0)
