"""A static grid index over boxes, stored as three flat arrays that can be memory-mapped.

Each item is filed under every square cell its box overlaps. The cells are kept as sorted
64-bit keys with the start of each cell's run of items (CSR), so a query is a few vectorised
binary searches over mapped pages: nothing is built in the process that asks. A query answers
every item whose cells meet the query box, a superset of the items whose boxes do; callers
measure exact distances afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geobatch.reference.indexes.files import open_array, write_array

BUILD_BATCH = 1_000_000
"""Boxes expanded into cells at a time while building."""
_BIAS = 1 << 30
"""Cell coordinates are offset by this so keys of negative cells stay ordered and positive."""


ItemBounds = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
"""The boxes (min x, min y, max x, max y) of the given items."""


def _cell(values: np.ndarray, size: float) -> np.ndarray:
    return np.floor(np.asarray(values, dtype=np.float64) / size).astype(np.int64)


def _keys(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    return np.asarray((ix + _BIAS) * (1 << 31) + (iy + _BIAS), dtype=np.int64)


def _expand(
    x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (owner, cell x, cell y) of the cell ranges [x0, x1] x [y0, y1]."""
    nx, ny = x1 - x0 + 1, y1 - y0 + 1
    count = nx * ny
    owner = np.repeat(np.arange(len(x0), dtype=np.int64), count)
    rank = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    width = np.repeat(nx, count)
    return owner, np.repeat(x0, count) + rank % width, np.repeat(y0, count) + rank // width


@dataclass(frozen=True, kw_only=True)
class GridIndex:
    """Items by cell: ``items[starts[k]:starts[k + 1]]`` lie in the cell with key ``keys[k]``."""

    cell: float
    size: int  # number of items indexed (ids are 0..size-1)
    keys: np.ndarray  # int64, sorted, unique
    starts: np.ndarray  # int64, len(keys) + 1
    items: np.ndarray  # int64

    @classmethod
    def build(
        cls,
        cell: float,
        min_x: np.ndarray,
        min_y: np.ndarray,
        max_x: np.ndarray,
        max_y: np.ndarray,
        *,
        batch: int = BUILD_BATCH,
    ) -> GridIndex:
        """File every box in its cells, ``batch`` boxes at a time so the temporary arrays of
        the expansion stay small; items are stored as int32 when they fit."""
        if not cell > 0:
            raise ValueError("cell size must be positive")
        size = len(min_x)
        item_type = np.int32 if size < 2**31 else np.int64
        keys: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        for start in range(0, size, batch):
            part = slice(start, start + batch)
            owner, cx, cy = _expand(
                _cell(min_x[part], cell),
                _cell(min_y[part], cell),
                _cell(max_x[part], cell),
                _cell(max_y[part], cell),
            )
            keys.append(_keys(cx, cy))
            owners.append((owner + start).astype(item_type))
            del owner, cx, cy
        all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        all_owners = np.concatenate(owners) if owners else np.zeros(0, item_type)
        del keys, owners
        # Stable: boxes were filed in order, so each cell's items stay sorted.
        order = np.argsort(all_keys, kind="stable")
        all_keys = all_keys[order]
        items = all_owners[order]
        del order, all_owners
        first = np.ones(len(all_keys), dtype=bool)
        first[1:] = all_keys[1:] != all_keys[:-1]
        unique = all_keys[first]
        starts = np.append(np.flatnonzero(first), len(all_keys)).astype(np.int64)
        return cls(cell=float(cell), size=size, keys=unique, starts=starts, items=items)

    def query(
        self,
        min_x: np.ndarray,
        min_y: np.ndarray,
        max_x: np.ndarray,
        max_y: np.ndarray,
        *,
        unique: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(query, item) pairs for items filed in cells the boxes meet, grouped by query.

        With ``unique`` each pair comes once and pairs are sorted; without, an item filed in
        several of a box's cells comes once per cell (cheaper, for callers that reduce anyway).
        """
        empty = np.zeros(0, dtype=np.int64)
        if not len(self.keys) or not len(np.atleast_1d(min_x)):
            return empty, empty
        return self._in_cells(
            _cell(min_x, self.cell),
            _cell(min_y, self.cell),
            _cell(max_x, self.cell),
            _cell(max_y, self.cell),
            unique=unique,
        )

    def query_shared(
        self,
        min_x: np.ndarray,
        min_y: np.ndarray,
        max_x: np.ndarray,
        max_y: np.ndarray,
        *,
        item_bounds: ItemBounds | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``query`` (unique pairs, sorted) for many boxes that cover the same cells, as the
        search boxes of points a few metres apart along roads do: each distinct range of
        cells is looked up once and its items handed to every box over it.

        With ``item_bounds`` (the boxes of given items), an item whose box misses the union
        of the boxes over a range of cells is not handed to them: it meets none of them.
        """
        empty = np.zeros(0, dtype=np.int64)
        size = len(np.atleast_1d(min_x))
        if not len(self.keys) or not size:
            return empty, empty
        x0, y0 = _cell(min_x, self.cell), _cell(min_y, self.cell)
        x1, y1 = _cell(max_x, self.cell), _cell(max_y, self.cell)
        corner, wide, high = _keys(x0, y0), x1 - x0, y1 - y0
        order = np.lexsort((high, wide, corner))
        corner, wide, high = corner[order], wide[order], high[order]
        head = np.ones(size, dtype=bool)
        head[1:] = (corner[1:] != corner[:-1]) | (wide[1:] != wide[:-1]) | (high[1:] != high[:-1])
        first = order[head]
        group = np.empty(size, dtype=np.int64)
        group[order] = np.cumsum(head) - 1
        owner, items = self._in_cells(x0[first], y0[first], x1[first], y1[first], unique=True)
        if item_bounds is not None and len(items):
            starts = np.flatnonzero(head)
            union = [
                reduce.reduceat(np.asarray(v, dtype=np.float64)[order], starts)[owner]
                for reduce, v in (
                    (np.minimum, min_x),
                    (np.minimum, min_y),
                    (np.maximum, max_x),
                    (np.maximum, max_y),
                )
            ]
            lo_x, lo_y, hi_x, hi_y = item_bounds(items)
            meets = (
                (lo_x <= union[2]) & (union[0] <= hi_x) & (lo_y <= union[3]) & (union[1] <= hi_y)
            )
            owner, items = owner[meets], items[meets]
        bounds = np.searchsorted(owner, np.arange(len(first) + 1))
        count = bounds[group + 1] - bounds[group]
        query = np.repeat(np.arange(size, dtype=np.int64), count)
        rank = np.arange(len(query), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        return query, items[np.repeat(bounds[group], count) + rank]

    def _in_cells(
        self, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray, *, unique: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(query, item) pairs for the cell ranges [x0, x1] x [y0, y1] (``query``)."""
        query, cx, cy = _expand(x0, y0, x1, y1)
        keys = _keys(cx, cy)
        pos = np.searchsorted(self.keys, keys)
        hit = pos < len(self.keys)
        hit[hit] = self.keys[pos[hit]] == keys[hit]
        query, pos = query[hit], pos[hit]
        first, count = self.starts[pos], self.starts[pos + 1] - self.starts[pos]
        owner = np.repeat(query, count)
        rank = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        items = np.asarray(self.items[np.repeat(first, count) + rank], dtype=np.int64)
        if not unique:
            return owner, items
        # Pairs arrive in runs sorted by query, which the stable (merging) sort exploits.
        pairs = np.sort(owner * self.size + items, kind="stable")
        keep = np.ones(len(pairs), dtype=bool)
        keep[1:] = pairs[1:] != pairs[:-1]
        pairs = pairs[keep]
        return pairs // self.size, pairs % self.size

    def save(self, folder: Path, prefix: str) -> None:
        write_array(folder, f"{prefix}/shape", np.array([self.cell, self.size], dtype=np.float64))
        write_array(folder, f"{prefix}/keys", self.keys)
        write_array(folder, f"{prefix}/starts", self.starts)
        write_array(folder, f"{prefix}/items", self.items)

    @classmethod
    def open(cls, folder: Path, prefix: str) -> GridIndex:
        shape = open_array(folder, f"{prefix}/shape")
        return cls(
            cell=float(shape[0]),
            size=int(shape[1]),
            keys=open_array(folder, f"{prefix}/keys"),
            starts=open_array(folder, f"{prefix}/starts"),
            items=open_array(folder, f"{prefix}/items"),
        )
