"""Local metric coordinates and resampling of input lines.

Matching works in metres: a release covers a city or a small country, so an equirectangular
projection around the network's centre (scaled with the WGS84 radii at that latitude) keeps
distances within a fraction of a percent there, and is a pure numpy affine map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

_A = 6378137.0
_E2 = 6.69437999014e-3


@dataclass(frozen=True, kw_only=True)
class LocalProjection:
    """Equirectangular metres around (lon0, lat0)."""

    lon0: float
    lat0: float

    @property
    def scale(self) -> tuple[float, float]:
        """Metres per degree of longitude and of latitude at ``lat0``."""
        phi = math.radians(self.lat0)
        w = 1.0 - _E2 * math.sin(phi) ** 2
        meridional = _A * (1.0 - _E2) / w**1.5
        normal = _A / math.sqrt(w)
        return math.radians(1.0) * normal * math.cos(phi), math.radians(1.0) * meridional

    def forward(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kx, ky = self.scale
        return (np.asarray(lon) - self.lon0) * kx, (np.asarray(lat) - self.lat0) * ky

    def inverse(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kx, ky = self.scale
        return np.asarray(x) / kx + self.lon0, np.asarray(y) / ky + self.lat0

    def project(self, geometries: np.ndarray) -> np.ndarray:
        """Geometries from lon/lat to local metres (vectorised over all coordinates)."""
        kx, ky = self.scale
        shift = np.array([self.lon0, self.lat0])
        scale = np.array([kx, ky])
        return shapely.transform(geometries, lambda xy: (xy - shift) * scale)  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class Samples:
    """Points resampled along each input line, in local metres, line after line."""

    line: np.ndarray  # int64, index of the input line of each point
    chainage: np.ndarray  # metres from the line's start
    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray  # radians, direction of the line at the point (atan2 of dy, dx)
    starts: np.ndarray  # int64 offsets into the point arrays, one per line plus the end
    lengths: np.ndarray  # metres, length of each line


def resample(lines: Sequence[shapely.LineString] | np.ndarray, spacing_m: float) -> Samples:
    """Points every ``spacing_m`` along each (metric) line, both ends included.

    Interpolated in numpy over all lines' vertices at once (GEOS walks a line from its start
    for every point). Lines must have at least two points.

    Uniform chainage steps (rather than the input's own vertices) make the hidden Markov
    model's layers evenly spaced whatever the digitisation density, and bound the work per km.
    """
    geoms = np.asarray(lines, dtype=object)
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    step = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    step[owner[1:] != owner[:-1]] = 0.0  # no length between one line's end and the next start
    along = np.concatenate([[0.0], np.cumsum(step)])  # non-decreasing over all vertices
    first_vertex = np.searchsorted(owner, np.arange(len(geoms) + 1))
    base = along[np.minimum(first_vertex[:-1], len(along) - 1)] if len(along) else along
    lengths = along[first_vertex[1:] - 1] - base if len(along) else np.zeros(len(geoms))
    steps = np.maximum(np.ceil(lengths / spacing_m).astype(np.int64), 2)
    counts = steps + 1
    starts = np.zeros(len(geoms) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    line = np.repeat(np.arange(len(geoms), dtype=np.int64), counts)
    rank = np.arange(starts[-1], dtype=np.int64) - starts[line]
    chainage = lengths[line] * rank / steps[line]
    # Interpolate on the concatenated vertices: find each sample's piece of its own line.
    position = base[line] + chainage
    vertex = np.searchsorted(along, position, side="right") - 1
    vertex = np.clip(vertex, first_vertex[line], first_vertex[line + 1] - 2)
    piece = along[vertex + 1] - along[vertex]
    t = np.divide(position - along[vertex], piece, out=np.zeros_like(position), where=piece > 0)
    t = np.clip(t, 0.0, 1.0)
    x = coords[vertex, 0] + t * (coords[vertex + 1, 0] - coords[vertex, 0])
    y = coords[vertex, 1] + t * (coords[vertex + 1, 1] - coords[vertex, 1])
    # Central differences inside a line, one-sided at its ends.
    nxt = np.minimum(np.arange(len(x)) + 1, starts[line + 1] - 1)
    prv = np.maximum(np.arange(len(x)) - 1, starts[line])
    heading = np.arctan2(y[nxt] - y[prv], x[nxt] - x[prv])
    return Samples(
        line=line, chainage=chainage, x=x, y=y, heading=heading, starts=starts, lengths=lengths
    )


def angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute difference of two headings, radians in [0, pi]."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % (2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)  # type: ignore[no-any-return]
