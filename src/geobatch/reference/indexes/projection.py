"""Local metric coordinates: an equirectangular projection scaled with the WGS84 radii.

Road matching works in metres. Around a latitude ``lat0`` the map from lon/lat to metres is a
pure numpy affine map that keeps distances within a fraction of a percent over a city or a
small country. A release fixes ``lon0`` at 0 and ``lat0`` at the middle latitude of its
network, so a tile's coordinates do not change when other tiles east or west join it.
"""

from __future__ import annotations

import math
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

    def project_xy(self, xy: np.ndarray) -> np.ndarray:
        """(n, 2) lon/lat coordinates to local metres."""
        return (xy - np.array([self.lon0, self.lat0])) * np.array(self.scale)  # type: ignore[no-any-return]

    def project(self, geometries: np.ndarray) -> np.ndarray:
        """Geometries from lon/lat to local metres (vectorised over all coordinates)."""
        return shapely.transform(geometries, self.project_xy)  # type: ignore[no-any-return]
