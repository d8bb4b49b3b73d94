"""The worldwide gazetteer of a release for geocoding: mapped files built at import.

``reference/indexes/gazetteer.py`` files every name and alias of continents, countries,
regions, counties, cities and the release's own boroughs and admin areas under folded keys;
this module opens those files (no index is built per worker) and answers what the parser and
the matcher ask: is this key a country (ISO codes first), a region, a locality; which rows
does it name, ranked by kind and population within a country or region given alongside.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geobatch.engines.geocode.cache import Memo, cached
from geobatch.reference import Release
from geobatch.reference.indexes.gazetteer import (
    ALIAS,
    BOROUGH,
    CODE,
    CONTINENT,
    COUNTRY,
    COUNTY,
    LOCAL,
    LOCALITY,
    OWN,
    REGION,
    WORLD,
    GazetteerArrays,
)
from geobatch.reference.indexes.sphere import sphere_xyz

COUNTRY_AT_M = 55_000.0
"""``country_at`` answers the country of the nearest GeoNames city within this distance."""
KIND_WEIGHT = np.array([0.5, 1.0, 0.1, 0.12, 1.0, 1.0])
"""Per kind (borough ... continent): how much a place of that kind counts against others of
the same name, times its population. A city outranks the larger region it shares a name
with ("New York", "Madrid"); a named borough ranks below a same-named town."""
ALIAS_WEIGHT = 0.1
"""A place found by an alternate name counts less than one found by its own name ("Harlem"
is Harlem in New York, though Haarlem is larger and is also spelled so)."""
REGION_KINDS = (CONTINENT, REGION, COUNTY)
LOCALITY_KINDS = (LOCALITY, BOROUGH)
MAX_MATCHES = 256
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class Area:
    """A locality, region or country: a point to answer with and what to call it."""

    name: str
    level: str
    lon: float
    lat: float
    ref_id: str | None
    population: int
    country: str | None
    state: str | None = None


@dataclass(frozen=True)
class _Entry:
    """What one key names: rows, how each was matched, a bit per kind, the country coded."""

    rows: np.ndarray
    how: np.ndarray
    kinds: int
    country: str | None


_NOTHING = _Entry(rows=np.empty(0, np.int64), how=np.empty(0, np.int64), kinds=0, country=None)
_REGION_BITS = sum(1 << kind for kind in REGION_KINDS)
_LOCALITY_BITS = sum(1 << kind for kind in LOCALITY_KINDS)


def column_list(table: pa.Table, name: str) -> list[object]:
    values: list[object] = table.column(name).to_pylist()
    return values


def float_column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(pc.fill_null(table.column(name), np.nan).to_numpy(), dtype=np.float64)


class _Column:
    """One attribute of the rows of both parts: world rows first, then the release's own."""

    def __init__(self, world: np.ndarray, local: np.ndarray) -> None:
        self.world = world
        self.local = local
        self.size = len(world)

    def __getitem__(self, rows: np.ndarray | int) -> np.ndarray:
        rows = np.asarray(rows)
        if rows.ndim == 0:
            row = int(rows)
            part = self.world if row < self.size else self.local
            value: np.ndarray = part[row if row < self.size else row - self.size]
            return value
        in_world = rows < self.size
        if in_world.all():
            picked: np.ndarray = self.world[rows]
            return picked
        out = np.empty(len(rows), dtype=self.world.dtype)
        out[in_world] = self.world[rows[in_world]]
        out[~in_world] = self.local[rows[~in_world] - self.size]
        return out


class GazetteerIndex:
    """The release's mapped gazetteer with the lookups forward geocoding needs."""

    def __init__(self, world: GazetteerArrays, local: GazetteerArrays, release: Release) -> None:
        self.parts = (world, local)
        self.release = release
        self.size = len(world.kind)
        self.population = _Column(world.population, local.population)
        self.kind = _Column(world.kind, local.kind)
        self.lon = _Column(world.lon, local.lon)
        self.lat = _Column(world.lat, local.lat)
        self._entries: Memo[str, _Entry] = Memo()
        self._region_countries: Memo[str, frozenset[str]] = Memo()
        self._regions: Memo[str, tuple[tuple[Area, float], ...]] = Memo()
        self._lock = threading.Lock()

    # -- rows ----------------------------------------------------------------------------

    def label(self, column: str, row: int) -> str | None:
        part, at = (self.parts[0], row) if row < self.size else (self.parts[1], row - self.size)
        value = part.labels.column(column)[at].as_py()
        return value if isinstance(value, str) else None

    def labels(self, column: str, rows: np.ndarray) -> list[str | None]:
        rows = np.asarray(rows, dtype=np.int64)
        in_world = rows < self.size
        world = self.parts[0].labels.column(column).take(pa.array(rows[in_world]))
        if in_world.all():
            values: list[str | None] = world.to_pylist()
            return values
        local = self.parts[1].labels.column(column).take(pa.array(rows[~in_world] - self.size))
        out: list[str | None] = [None] * len(rows)
        for position, value in zip(
            np.flatnonzero(in_world).tolist(), world.to_pylist(), strict=True
        ):
            out[position] = value
        for position, value in zip(
            np.flatnonzero(~in_world).tolist(), local.to_pylist(), strict=True
        ):
            out[position] = value
        return out

    def matches(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows filed under ``key`` and how (own name, alias, ISO code), at most MAX_MATCHES."""
        found = self._entry(key)
        return found.rows, found.how

    def _entry(self, key: str) -> _Entry:
        found = self._entries.get(key)
        if found is not None:
            return found
        packed = []
        for offset, part in ((0, self.parts[0]), (self.size, self.parts[1])):
            group = part.keys.group(key) if key else -1
            if group >= 0:
                rows = np.asarray(
                    part.keys.rows[part.keys.starts[group] : part.keys.starts[group + 1]]
                )
                packed.append(rows + offset * 4)
        if not packed:
            found = _NOTHING
        else:
            joined = np.concatenate(packed)[:MAX_MATCHES]
            rows, how = joined >> 2, joined & 3
            kinds = np.bitwise_or.reduce(np.left_shift(1, self.kind[rows].astype(np.int64)))
            found = _Entry(rows=rows, how=how, kinds=int(kinds), country=self._country(rows, how))
        return self._remember(self._entries, key, found)

    def _country(self, rows: np.ndarray, how: np.ndarray) -> str | None:
        countries = np.flatnonzero((self.kind[rows] == COUNTRY) & np.isfinite(self.lon[rows]))
        if not len(countries):
            return None  # "Antarctica" without towns is the continent
        rows, how = rows[countries], how[countries]
        rank = np.lexsort((-self.population[rows], np.select([how == CODE, how == OWN], [0, 1], 2)))
        return self.label("country", int(rows[rank[0]]))

    # -- what the parser asks ------------------------------------------------------------

    def country(self, key: str) -> str | None:
        """The ISO alpha-2 code of the country named or coded ``key`` (codes first)."""
        return self._entry(key).country

    def is_region(self, key: str) -> bool:
        return bool(self._entry(key).kinds & _REGION_BITS)

    def is_locality(self, key: str) -> bool:
        return bool(self._entry(key).kinds & _LOCALITY_BITS)

    # -- what the matcher asks -----------------------------------------------------------

    def weights(self, rows: np.ndarray, how: np.ndarray) -> np.ndarray:
        """How much each row counts among same-named places: population by kind and match."""
        population = self.population[rows].astype(np.float64) + 1.0
        kind = self.kind[rows]
        weight = population * KIND_WEIGHT[kind]
        own = how != ALIAS
        if own.any():  # an alias counts less only against a real place of that name
            weight[
                (how == ALIAS) & (population.max(where=own, initial=0) >= 0.01 * population)
            ] *= ALIAS_WEIGHT
        return np.asarray(weight)

    def anchor(self, key: str) -> tuple[float, float] | None:
        """Where the most populous locality named ``key`` lies ("Gràcia, Barcelona")."""
        rows, _ = self.matches(key)
        rows = rows[np.isin(self.kind[rows], LOCALITY_KINDS) & np.isfinite(self.lon[rows])]
        if not len(rows):
            return None
        row = int(rows[np.argmax(self.population[rows])])
        return float(self.lon[row]), float(self.lat[row])

    def region_codes(self, key: str) -> set[tuple[str | None, str | None]]:
        """(country, admin1) of the regions and counties named ``key``."""
        rows, _ = self.matches(key)
        rows = rows[np.isin(self.kind[rows], (REGION, COUNTY))]
        return set(zip(self.labels("country", rows), self.labels("admin1", rows), strict=True))

    def region_countries(self, key: str) -> frozenset[str]:
        """Countries of the continents, regions and counties named ``key`` (remembered: a
        region is named by many queries, and each answer is filtered by it)."""
        found = self._region_countries.get(key)
        if found is None:
            rows, _ = self.matches(key)
            rows = rows[np.isin(self.kind[rows], REGION_KINDS)]
            found = frozenset(c for c in self.labels("country", rows) if c)
            self._remember(self._region_countries, key, found)
        return found

    def regions(self, key: str) -> tuple[tuple[Area, float], ...]:
        """Continents, regions and counties named ``key`` with their share of its weight
        (remembered, like ``region_countries``)."""
        found = self._regions.get(key)
        if found is None:
            found = self._remember(self._regions, key, self._find_regions(key))
        return found

    def _remember(self, memo: Memo[str, _T], key: str, value: _T) -> _T:
        """Keep ``value`` under ``key`` in one of the memos (shared by threads)."""
        with self._lock:
            return memo.keep(key, value)

    def _find_regions(self, key: str) -> tuple[tuple[Area, float], ...]:
        rows, how = self.matches(key)
        keep = (self.kind[rows] != COUNTRY) & np.isfinite(self.lon[rows])
        rows, how = rows[keep], how[keep]
        regional = np.isin(self.kind[rows], REGION_KINDS)
        if not regional.any():
            return ()
        # the share is of every place so named: "Madrid" the city outweighs its region
        weight = self.weights(rows, how)
        share = np.where(regional, weight, 0.0) / weight.sum()
        order = np.argsort(-share, kind="stable")[: min(5, int(regional.sum()))]
        return tuple((self.area(int(rows[i])), float(share[i])) for i in order.tolist())

    def area(self, row: int) -> Area:
        kind = int(self.kind[row])
        level = "country" if kind == COUNTRY else "region" if kind in REGION_KINDS else "locality"
        name = self.label("name", row) or ""
        return Area(
            name=name,
            level=level,
            lon=float(self.lon[row]),
            lat=float(self.lat[row]),
            ref_id=self.label("id", row),
            population=int(self.population[row]),
            country=self.label("country", row),
            state=name if kind in (REGION, COUNTY) else self.label("state", row),
        )

    @cached_property
    def _country_rows(self) -> dict[str, int]:
        rows = np.flatnonzero(self.parts[0].kind == COUNTRY)
        return {
            code: int(row)
            for code, row in zip(self.labels("country", rows), rows.tolist(), strict=True)
            if code
        }

    def country_area(self, code: str) -> Area | None:
        row = self._country_rows.get(code)
        if row is None or not math.isfinite(self.lon[row]):
            return None
        return self.area(row)

    def country_name(self, code: str | None) -> str | None:
        row = self._country_rows.get(code or "")
        return self.label("name", row) if row is not None else code

    def country_at(self, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
        """The country of the nearest GeoNames city to each point (within about 50 km)."""
        from geobatch.engines.geocode.areas import area_index

        size = len(lon)
        if not size:
            return []
        areas = area_index(self.release).gazetteer
        if not len(areas.points):
            return [None] * size
        distance, nearest = areas.points.query(
            sphere_xyz(np.asarray(lat, np.float64), np.asarray(lon, np.float64)).reshape(size, 3),
            k=1,
            distance_upper_bound=COUNTRY_AT_M,
        )
        found = np.isfinite(distance[:, 0])
        at = np.minimum(nearest[:, 0], len(areas.points) - 1)
        countries = areas.labels.column("country").take(pa.array(at)).to_pylist()
        return [c if ok else None for c, ok in zip(countries, found.tolist(), strict=True)]


def gazetteer_index(release: Release) -> GazetteerIndex:
    """The release's gazetteer, its files mapped on first use in this process."""
    return cached(
        "gazetteer",
        release,
        lambda r: GazetteerIndex(
            GazetteerArrays.open(r.path, WORLD), GazetteerArrays.open(r.path, LOCAL), r
        ),
    )


__all__ = ["Area", "GazetteerIndex", "column_list", "float_column", "gazetteer_index"]
