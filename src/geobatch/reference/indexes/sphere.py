"""Points on the Earth, searched by straight-line (chord) distance through a mapped grid.

Positions become 3-D vectors in metres from the Earth's centre (a sphere of mean radius); the
chord between two of them equals the ground distance to within centimetres at the radii the
engines search (up to some tens of kilometres). ``SpherePoints`` files the points in a
``GridIndex`` over longitude and latitude and answers "the k nearest within r metres" the way
a k-d tree does, but from arrays that every worker maps instead of building a tree of its own:
the grid yields the points of the cells around each query (a superset) and the exact chord
distance picks among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geobatch.reference.indexes.files import open_array, write_array
from geobatch.reference.indexes.grid import GridIndex

EARTH_RADIUS_M = 6_371_008.8
_METRES_PER_DEGREE = np.pi * EARTH_RADIUS_M / 180.0
_MARGIN = 1.001
"""Boxes are widened by this factor: a chord is a little shorter than its arc."""
_POLAR_LAT = 89.0
"""A query box reaching beyond this latitude spans every longitude."""


def sphere_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(n, 3)`` positions in metres for latitudes and longitudes in degrees."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    cos_phi = np.cos(phi)
    return np.column_stack(
        (
            EARTH_RADIUS_M * cos_phi * np.cos(lam),
            EARTH_RADIUS_M * cos_phi * np.sin(lam),
            EARTH_RADIUS_M * np.sin(phi),
        )
    )


def sphere_latlon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes in degrees of ``(n, 3)`` positions (any length)."""
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    lat = np.degrees(np.arctan2(z, np.hypot(x, y)))
    lon = np.degrees(np.arctan2(y, x))
    return lat, lon


def _boxes(
    lat: np.ndarray, lon: np.ndarray, radius_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Longitude-latitude boxes holding every point within ``radius_m`` of each query, split
    at the antimeridian: (query of each box, min lon, min lat, max lon, max lat)."""
    size = len(lat)
    dlat = np.full(size, radius_m * _MARGIN / _METRES_PER_DEGREE)
    top = np.minimum(np.abs(lat) + dlat, 90.0)
    polar = top >= _POLAR_LAT
    with np.errstate(divide="ignore"):
        dlon = np.where(polar, 180.0, dlat / np.cos(np.radians(np.where(polar, 0.0, top))))
    dlon = np.minimum(dlon, 180.0)
    low, high = lon - dlon, lon + dlon
    whole = dlon >= 180.0
    low, high = np.where(whole, -180.0, low), np.where(whole, 180.0, high)
    owner = np.arange(size)
    west = np.flatnonzero(low < -180.0)
    east = np.flatnonzero(high > 180.0)
    return (
        np.concatenate([owner, west, east]),
        np.concatenate([np.maximum(low, -180.0), low[west] + 360.0, np.full(len(east), -180.0)]),
        np.concatenate([lat - dlat, lat[west] - dlat[west], lat[east] - dlat[east]]),
        np.concatenate([np.minimum(high, 180.0), np.full(len(west), 180.0), high[east] - 360.0]),
        np.concatenate([lat + dlat, lat[west] + dlat[west], lat[east] + dlat[east]]),
    )


@dataclass(frozen=True, kw_only=True)
class SpherePoints:
    """Points as ``(n, 3)`` positions and a grid over their longitudes and latitudes."""

    xyz: np.ndarray
    grid: GridIndex

    def __len__(self) -> int:
        return len(self.xyz)

    @classmethod
    def build(cls, lat: np.ndarray, lon: np.ndarray, cell_m: float) -> SpherePoints:
        """Index points; ``cell_m`` near the radius most queries ask for keeps queries quick."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        cell = cell_m / _METRES_PER_DEGREE
        return cls(
            xyz=sphere_xyz(lat, lon).reshape(len(lat), 3),
            grid=GridIndex.build(cell, lon, lat, lon, lat),
        )

    def query(
        self, xyz: np.ndarray, k: int, distance_upper_bound: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like ``cKDTree.query`` with ``k`` as a number: ``(n, k)`` distances (inf where
        fewer than ``k`` points lie within the bound) and point numbers (``len(self)`` there),
        nearest first; ties go to the lower point number."""
        size = len(xyz)
        distance = np.full((size, k), np.inf)
        found = np.full((size, k), len(self.xyz), dtype=np.int64)
        if not size or not len(self.xyz) or k < 1:
            return distance, found
        lat, lon = sphere_latlon(np.asarray(xyz, dtype=np.float64))
        valid = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
        owner, x0, y0, x1, y1 = _boxes(lat[valid], lon[valid], float(distance_upper_bound))
        owner = valid[owner]
        box, item = self.grid.query(x0, y0, x1, y1)
        query = owner[box]
        gap = xyz[query] - self.xyz[item]
        metres = np.sqrt(np.einsum("ij,ij->i", gap, gap))
        near = metres <= distance_upper_bound
        query, item, metres = query[near], item[near], metres[near]
        order = np.lexsort((item, metres, query))
        query, item, metres = query[order], item[order], metres[order]
        first = np.searchsorted(query, query, side="left")
        rank = np.arange(len(query)) - first
        keep = rank < k
        distance[query[keep], rank[keep]] = metres[keep]
        found[query[keep], rank[keep]] = item[keep]
        return distance, found

    def save(self, folder: Path, prefix: str) -> None:
        write_array(folder, f"{prefix}/xyz", self.xyz)
        self.grid.save(folder, f"{prefix}/grid")

    @classmethod
    def open(cls, folder: Path, prefix: str) -> SpherePoints:
        return cls(
            xyz=open_array(folder, f"{prefix}/xyz"),
            grid=GridIndex.open(folder, f"{prefix}/grid"),
        )
