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
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from geobatch.reference.indexes.files import open_array, write_array
from geobatch.reference.indexes.grid import _BIAS, GridIndex, _cell, _expand, _keys

EARTH_RADIUS_M = 6_371_008.8
_METRES_PER_DEGREE = np.pi * EARTH_RADIUS_M / 180.0
_MARGIN = 1.001
"""Boxes are widened by this factor: a chord is a little shorter than its arc."""
_POLAR_LAT = 89.0
"""A query box reaching beyond this latitude spans every longitude."""
_GROWTH = 2.0
"""Each grid's cells are this much wider than the previous one's."""
_FEW = 64
"""A search with at most this many points within its whole bound skips the widening."""
_MAX_CELLS = 4_096
"""A query box over more grid cells than this (near a pole) reads its latitude band instead."""
KNOWN_NEIGHBOURS = 6
"""By default each grid cell records how far its queries must search to find this many
points; searches for more take the widening search."""
REACH_BATCH = 1 << 18
"""Grid cells measured with the k-d tree at a time (their distances and neighbours are
temporary arrays six columns wide)."""


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
    lat: np.ndarray, lon: np.ndarray, radius_m: float | np.ndarray
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


def _runs(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``first[i], first[i] + 1, ...`` for ``count[i]`` items each, concatenated."""
    rank = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    return np.asarray(np.repeat(first, count) + rank, dtype=np.int64)


def _cell_runs(
    grid: GridIndex, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every non-empty cell each box meets: the box, where its points start, how many."""
    box, cx, cy = _expand(
        _cell(x0, grid.cell), _cell(y0, grid.cell), _cell(x1, grid.cell), _cell(y1, grid.cell)
    )
    keys = _keys(cx, cy)
    pos = np.searchsorted(grid.keys, keys)
    hit = pos < len(grid.keys)
    hit[hit] = grid.keys[pos[hit]] == keys[hit]
    box, pos = box[hit], pos[hit]
    return box, grid.starts[pos], grid.starts[pos + 1] - grid.starts[pos]


def _cells(
    grid: GridIndex, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(box, point) for the points filed in the cells each box meets. Unlike
    ``GridIndex.query`` nothing is deduplicated: a point lies in one cell, and the boxes of
    one query (split at the antimeridian) meet different cells."""
    box, first, count = _cell_runs(grid, x0, y0, x1, y1)
    items = np.asarray(grid.items[_runs(first, count)], dtype=np.int64)
    return np.repeat(box, count), items


@dataclass(frozen=True, kw_only=True)
class SpherePoints:
    """Points as ``(n, 3)`` positions, grids over their longitudes and latitudes with cells
    each twice as wide as the last (each search reads the grid whose cells suit its radius),
    and the points by latitude (for the few searches near a pole, where a box spans every cell
    of its rows)."""

    xyz: np.ndarray
    grids: tuple[GridIndex, ...]  # finest first
    by_lat: np.ndarray  # point numbers sorted by latitude
    sorted_lat: np.ndarray
    reach_keys: tuple[np.ndarray, ...]
    """Per grid, the cells whose neighbours are recorded: those holding points, and in the
    coarsest grid also every cell next to one."""
    reaches: tuple[np.ndarray, ...]
    """Per grid, per cell of ``reach_keys``: the distances from the cell's centre to its
    nearest points, as float32 rounded up (inf beyond the number of points)."""

    def __len__(self) -> int:
        return len(self.xyz)

    @classmethod
    def build(
        cls,
        lat: np.ndarray,
        lon: np.ndarray,
        cell_m: float,
        reach_m: float | None = None,
        neighbours: int = KNOWN_NEIGHBOURS,
    ) -> SpherePoints:
        """Index points: the finest grid has cells of ``cell_m`` (about the distance to a
        point's nearest neighbours), coarser ones follow up to ``reach_m``, the widest search
        expected."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        cells = _cell_sizes(cell_m, reach_m)
        by_lat = np.argsort(lat, kind="stable")
        xyz = sphere_xyz(lat, lon).reshape(len(lat), 3)
        grids = tuple(
            GridIndex.build(cell / _METRES_PER_DEGREE, lon, lat, lon, lat) for cell in cells
        )
        return cls(
            xyz=xyz,
            grids=grids,
            by_lat=by_lat,
            sorted_lat=lat[by_lat],
            **_cell_reaches(grids, xyz, neighbours),
        )

    def _grid(self, radius_m: float) -> GridIndex:
        """The coarsest grid whose cells are no wider than the radius (else the finest)."""
        fits = [g for g in self.grids if g.cell * _METRES_PER_DEGREE <= radius_m]
        return fits[-1] if fits else self.grids[0]

    def _candidates(
        self, lat: np.ndarray, lon: np.ndarray, radius_m: float | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(query, point) pairs, each once, for every point that may lie within ``radius_m``
        (one radius, or one per query)."""
        owner, x0, y0, x1, y1 = _boxes(lat, lon, radius_m)
        grid = self._grid(float(np.min(radius_m)))
        cell = grid.cell
        cx0, cx1 = np.floor(x0 / cell), np.floor(x1 / cell)
        cy0, cy1 = np.floor(y0 / cell), np.floor(y1 / cell)
        wide = (cx1 - cx0 + 1) * (cy1 - cy0 + 1) > _MAX_CELLS
        # near a pole: every point of the latitude band (few there), then the rest by cell
        band = np.unique(owner[wide])
        first = len(lat)  # the first boxes are the queries' own, in order
        low = np.searchsorted(self.sorted_lat, y0[:first][band])
        high = np.searchsorted(self.sorted_lat, y1[:first][band], side="right")
        band_query = np.repeat(band, high - low)
        band_items = self.by_lat[_runs(low, high - low)] if len(band) else band
        narrow = ~wide & ~np.isin(owner, band) if len(band) else ~wide
        box, items = _cells(grid, x0[narrow], y0[narrow], x1[narrow], y1[narrow])
        return (
            np.concatenate([owner[narrow][box], band_query]),
            np.concatenate([items, np.asarray(band_items, dtype=np.int64)]),
        )

    def query(
        self, xyz: np.ndarray, k: int, distance_upper_bound: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like ``cKDTree.query`` with ``k`` as a number: ``(n, k)`` distances (inf where
        fewer than ``k`` points lie within the bound) and point numbers (``len(self)`` there),
        nearest first.

        The search starts within one grid cell and doubles its radius, up to the bound, only
        for the points that have not yet found ``k`` neighbours: a far bound costs little where
        points are dense.
        """
        size = len(xyz)
        distance = np.full((size, k), np.inf)
        found = np.full((size, k), len(self.xyz), dtype=np.int64)
        if not size or not len(self.xyz) or k < 1:
            return distance, found
        xyz = np.asarray(xyz, dtype=np.float64)
        lat, lon = sphere_latlon(xyz)
        pending = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
        bound = float(distance_upper_bound)
        # by cell, so that the searches below read the mapped arrays in order
        cell = self.grids[0].cell
        pending = pending[np.argsort(_keys(_cell(lon[pending], cell), _cell(lat[pending], cell)))]
        if k <= self.reaches[0].shape[1]:
            pending = self._settle(xyz, lat, lon, pending, bound, k, distance, found)
        radius = min(bound, self.grids[0].cell * _METRES_PER_DEGREE)
        if 4 * radius < bound < 2 * EARTH_RADIUS_M:
            # points with few neighbours within the whole bound are searched there at once
            few = self._count(lat[pending], lon[pending], bound) <= _FEW
            self._step(xyz, lat, lon, pending[few], bound, k, True, distance, found)
            pending = pending[~few]
        while len(pending):
            final = radius >= bound or radius >= 2 * EARTH_RADIUS_M
            done = self._step(xyz, lat, lon, pending, radius, k, final, distance, found)
            pending = pending[~done]
            radius = min(bound, radius * 2)
        return distance, found

    def _settle(
        self,
        xyz: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        pending: np.ndarray,
        bound: float,
        k: int,
        distance: np.ndarray,
        found: np.ndarray,
    ) -> np.ndarray:
        """Search each query once, within the distance its cell's centre is known to have
        ``k`` points at plus the query's distance from that centre (the triangle inequality
        promises ``k`` points there), or the bound if nearer; queries of a like radius share
        one pass. Return the queries left over (in no recorded cell, or near a pole)."""
        here_lat, here_lon, here = lat[pending], lon[pending], xyz[pending]
        reach = np.full(len(pending), np.inf)
        nearest = np.zeros(len(pending))  # no point is nearer than this
        recorded = np.zeros(len(pending), dtype=bool)
        for grid, cells, known in zip(self.grids, self.reach_keys, self.reaches, strict=True):
            if not len(cells):
                continue
            ix, iy = _cell(here_lon, grid.cell), _cell(here_lat, grid.cell)
            keys = _keys(ix, iy)
            pos = np.minimum(np.searchsorted(cells, keys), len(cells) - 1)
            hit = np.flatnonzero(cells[pos] == keys)
            centre = sphere_xyz((iy[hit] + 0.5) * grid.cell, (ix[hit] + 0.5) * grid.cell)
            offset = np.linalg.norm(here[hit] - centre, axis=1)
            upper = (known[pos[hit], k - 1] + offset) * _MARGIN + 1.0
            lower = (known[pos[hit], 0] * (1 - 1e-6) - offset) / _MARGIN - 1.0
            reach[hit] = np.minimum(reach[hit], upper)
            nearest[hit] = np.maximum(nearest[hit], lower)
            recorded[:] = False
            recorded[hit] = True
        polar = np.abs(here_lat) >= _POLAR_LAT
        # outside every recorded cell of the coarsest grid no point lies within one such cell
        cell = self.grids[-1].cell
        top = np.radians(np.minimum(np.abs(here_lat) + cell, 90.0))
        clear = cell * _METRES_PER_DEGREE * np.cos(top) / _MARGIN
        clear[np.abs(here_lon) > 180.0 - 2 * cell] = 0.0  # cells do not wrap the antimeridian
        none = ~polar & ((nearest > bound) | (~recorded & (clear >= bound)))
        # no point within a cell or so: one search to the bound finds the few there are
        alone = ~polar & ~none & ~recorded & (bound <= 4 * cell * _METRES_PER_DEGREE)
        usable = ~polar & ~none & (np.isfinite(reach) | alone)
        final = usable & (reach >= bound)
        radius = np.minimum(reach, bound)
        finest = self.grids[0].cell * _METRES_PER_DEGREE
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.floor(np.log2(np.maximum(radius, finest) / finest))
        level[final] = -1  # searched within the bound, to the end
        settled = none.copy()
        for value in np.unique(level[usable]):
            group = np.flatnonzero(usable & (level == value))
            settled[group] = self._step(
                xyz, lat, lon, pending[group], radius[group], k, bool(value < 0), distance, found
            )
        return np.asarray(pending[~settled])

    def _count(self, lat: np.ndarray, lon: np.ndarray, radius_m: float) -> np.ndarray:
        """How many points each search within ``radius_m`` would measure (a box spanning too
        many cells, near a pole, counts as many)."""
        owner, x0, y0, x1, y1 = _boxes(lat, lon, radius_m)
        grid = self._grid(radius_m)
        span = (np.floor(x1 / grid.cell) - np.floor(x0 / grid.cell) + 1) * (
            np.floor(y1 / grid.cell) - np.floor(y0 / grid.cell) + 1
        )
        wide = span > _MAX_CELLS
        box, _, count = _cell_runs(grid, x0[~wide], y0[~wide], x1[~wide], y1[~wide])
        total = np.bincount(owner[~wide][box], weights=count, minlength=len(lat)).astype(float)
        total[owner[wide]] = np.inf
        return total

    def _step(
        self,
        xyz: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        pending: np.ndarray,
        radius: float | np.ndarray,
        k: int,
        final: bool,
        distance: np.ndarray,
        found: np.ndarray,
    ) -> np.ndarray:
        """Search ``pending`` queries within ``radius``; fill in those that found ``k`` points
        (all of them when ``final``) and say which."""
        if not len(pending):
            return np.zeros(0, dtype=bool)
        at, item = self._candidates(lat[pending], lon[pending], radius)
        gap = np.take(xyz[pending], at, axis=0)
        gap -= np.take(self.xyz, item, axis=0)
        square = np.einsum("ij,ij->i", gap, gap)
        limit = np.broadcast_to(np.asarray(radius, dtype=np.float64), pending.shape)
        near = np.flatnonzero(np.sqrt(square) <= limit[at])
        at, item = at[near], item[near]
        metres, limit = np.sqrt(square[near]), limit[at]
        # by query, then distance: one sort of a float key (at + metres / radius lies in
        # [at, at + 1)), far cheaper than sorting on several keys
        order = np.argsort(at + metres / (limit * (1 + 1e-9)), kind="stable")
        at, item, metres = at[order], item[order], metres[order]
        starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]]) if len(at) else at
        rank = np.arange(len(at)) - np.repeat(starts, np.diff(np.r_[starts, len(at)]))
        done = (np.bincount(at, minlength=len(pending)) >= k) | final
        keep = (rank < k) & done[at]
        query = pending[at[keep]]
        distance[query, rank[keep]] = metres[keep]
        found[query, rank[keep]] = item[keep]
        return np.asarray(done)

    def save(self, folder: Path, prefix: str) -> None:
        write_array(folder, f"{prefix}/xyz", self.xyz)
        write_array(folder, f"{prefix}/by_lat", self.by_lat)
        write_array(folder, f"{prefix}/cells", np.array([g.cell for g in self.grids]))
        write_array(folder, f"{prefix}/sorted_lat", self.sorted_lat)
        for number, grid in enumerate(self.grids):
            grid.save(folder, f"{prefix}/grid{number}")
            write_array(folder, f"{prefix}/grid{number}/reach_keys", self.reach_keys[number])
            write_array(folder, f"{prefix}/grid{number}/reach", self.reaches[number])

    @classmethod
    def open(cls, folder: Path, prefix: str) -> SpherePoints:
        levels = range(len(open_array(folder, f"{prefix}/cells")))
        return cls(
            xyz=open_array(folder, f"{prefix}/xyz"),
            grids=tuple(GridIndex.open(folder, f"{prefix}/grid{number}") for number in levels),
            by_lat=open_array(folder, f"{prefix}/by_lat"),
            sorted_lat=open_array(folder, f"{prefix}/sorted_lat"),
            reach_keys=tuple(
                open_array(folder, f"{prefix}/grid{number}/reach_keys") for number in levels
            ),
            reaches=tuple(open_array(folder, f"{prefix}/grid{number}/reach") for number in levels),
        )


def _cell_reaches(grids: tuple[GridIndex, ...], xyz: np.ndarray, neighbours: int) -> dict[str, Any]:
    """``reach_keys`` and ``reaches`` of every grid (see ``_grid_reach``)."""
    tree = cKDTree(xyz) if len(xyz) else None
    pairs = [
        _grid_reach(grid, tree, neighbours, number == len(grids) - 1)
        for number, grid in enumerate(grids)
    ]
    return {"reach_keys": tuple(p[0] for p in pairs), "reaches": tuple(p[1] for p in pairs)}


def _grid_reach(
    grid: GridIndex, tree: cKDTree | None, neighbours: int, coarsest: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One grid's recorded cells and ``(cells, neighbours)`` distances from each cell's centre
    to its nearest points (inf where there are fewer points in all), as float32 rounded up.
    Measured once at import with a k-d tree; the workers only read them."""
    keys = grid.keys
    ix, iy = keys // (1 << 31) - _BIAS, keys % (1 << 31) - _BIAS
    if coarsest and len(keys):
        step = np.arange(-1, 2)
        ix = (ix[:, None, None] + step[None, :, None] + 0 * step[None, None, :]).ravel()
        iy = (iy[:, None, None] + 0 * step[None, :, None] + step[None, None, :]).ravel()
        keys = np.unique(_keys(ix, iy))
        ix, iy = keys // (1 << 31) - _BIAS, keys % (1 << 31) - _BIAS
    reach = np.full((len(keys), neighbours), np.inf, dtype=np.float32)
    if tree is not None:
        for start in range(0, len(keys), REACH_BATCH):
            part = slice(start, start + REACH_BATCH)
            centre = sphere_xyz((iy[part] + 0.5) * grid.cell, (ix[part] + 0.5) * grid.cell)
            nearest, _ = tree.query(centre, k=neighbours, workers=-1)  # every core: import only
            rounded = np.asarray(nearest, dtype=np.float32).reshape(len(centre), neighbours)
            reach[part] = np.nextafter(rounded, np.float32(np.inf))
    return np.asarray(keys, dtype=np.int64), reach


def write_sphere_points(
    folder: Path,
    prefix: str,
    lat: np.ndarray,
    lon: np.ndarray,
    cell_m: float,
    reach_m: float | None = None,
    neighbours: int = KNOWN_NEIGHBOURS,
) -> None:
    """``SpherePoints.build(...).save(folder, prefix)``, the same files, with one grid in
    memory at a time: what a country's street edges need at import is their positions, one
    k-d tree and the grid being filed."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    cells = _cell_sizes(cell_m, reach_m)
    by_lat = np.argsort(lat, kind="stable")
    write_array(folder, f"{prefix}/by_lat", by_lat)
    write_array(folder, f"{prefix}/sorted_lat", lat[by_lat])
    del by_lat
    write_array(folder, f"{prefix}/cells", np.array([cell / _METRES_PER_DEGREE for cell in cells]))
    xyz = sphere_xyz(lat, lon).reshape(len(lat), 3)
    write_array(folder, f"{prefix}/xyz", xyz)
    tree = cKDTree(xyz) if len(xyz) else None
    for number, cell in enumerate(cells):
        grid = GridIndex.build(cell / _METRES_PER_DEGREE, lon, lat, lon, lat)
        grid.save(folder, f"{prefix}/grid{number}")
        keys, reach = _grid_reach(grid, tree, neighbours, number == len(cells) - 1)
        del grid
        write_array(folder, f"{prefix}/grid{number}/reach_keys", keys)
        write_array(folder, f"{prefix}/grid{number}/reach", reach)


def _cell_sizes(cell_m: float, reach_m: float | None) -> list[float]:
    """The grids' cell widths in metres: ``cell_m``, doubling up to ``reach_m``."""
    cells = [cell_m]
    while cells[-1] * _GROWTH <= (reach_m or cell_m):
        cells.append(cells[-1] * _GROWTH)
    return cells
