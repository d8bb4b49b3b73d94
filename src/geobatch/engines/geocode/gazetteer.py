"""The worldwide gazetteer of a release (GeoNames cities, regions, countries) for geocoding.

Built once per process from the release's ``gazetteer`` table and cached: folded names and
ISO codes map to rows and ``Area`` records, and a k-d tree over the cities answers which
country a point lies in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.spatial import cKDTree

from geobatch.engines.geocode.cache import cached
from geobatch.engines.geocode.normalize import fold, fold_array
from geobatch.reference import Release

GAZETTEER_ALIAS_POPULATION = 50_000
"""Alternate names are indexed for cities at least this large (the rest by their own name)."""


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


@dataclass(frozen=True, kw_only=True)
class GazetteerIndex:
    cities: dict[str, list[int]]
    names: list[str]
    ids: list[str]
    country: list[str | None]
    admin1: list[str | None]
    population: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    countries: dict[str, Area]
    """Folded country name or ISO code -> the country, placed at its population centre."""
    country_names: dict[str, str]
    regions: dict[str, list[Area]]
    """Folded US state name or code -> the state."""
    region_names: dict[tuple[str, str], str]
    tree: _RowTree | None

    def country_at(self, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
        """The country of the nearest gazetteer city to each point (within about 50 km)."""
        if self.tree is None or not len(lon):
            return [None] * len(lon)
        distance, nearest = self.tree.query(np.column_stack([lon, lat * 1.0]), k=1)
        return [
            self.country[i] if d < 0.5 else None
            for d, i in zip(distance.tolist(), nearest.tolist(), strict=True)
        ]


COUNTRY_ENDONYMS = {
    "FI": ("Suomi", "Finland"),
    "SE": ("Sverige",),
    "DE": ("Deutschland",),
    "AT": ("Österreich",),
    "CH": ("Schweiz", "Suisse", "Svizzera"),
    "FR": ("France",),
    "ES": ("España",),
    "IT": ("Italia",),
    "NL": ("Nederland",),
    "BE": ("Belgique", "België"),
    "PT": ("Portugal",),
    "BR": ("Brasil",),
    "MC": ("Monaco", "Principauté de Monaco"),
    "AD": ("Andorra", "Principat d'Andorra"),
    "DK": ("Danmark",),
    "NO": ("Norge",),
    "US": ("USA", "United States of America", "U.S.A."),
    "GB": ("UK", "United Kingdom", "Great Britain"),
}
"""Native and common names of countries the gazetteer lists only in English."""


def column_list(table: pa.Table, name: str) -> list[object]:
    values: list[object] = table.column(name).to_pylist()
    return values


def float_column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(pc.fill_null(table.column(name), np.nan).to_numpy(), dtype=np.float64)


def _is(column: pa.ChunkedArray, value: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.equal(column, value), False).to_numpy(), dtype=bool)


def _weighted_centres(
    groups: np.ndarray, lon: np.ndarray, lat: np.ndarray, weights: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Population-weighted mean position of each group of cities (NaN for an empty group)."""
    total = np.bincount(groups, weights=weights, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            np.bincount(groups, weights=weights * lon, minlength=size) / total,
            np.bincount(groups, weights=weights * lat, minlength=size) / total,
        )


def _gazetteer(release: Release) -> GazetteerIndex:
    table = release.table("gazetteer")
    names = [str(v) for v in column_list(table, "name")]
    ids = [str(v) for v in column_list(table, "id")]
    feature = table.column("feature")
    country = [v if isinstance(v, str) else None for v in column_list(table, "country")]
    admin1 = [v if isinstance(v, str) else None for v in column_list(table, "admin1")]
    population = np.asarray(pc.fill_null(table.column("population"), 0).to_numpy(), np.int64)
    lon = float_column(table, "lon")
    lat = float_column(table, "lat")
    is_city = _is(feature, "city") & np.isfinite(lon) & np.isfinite(lat)
    city_rows = np.flatnonzero(is_city)
    cities: dict[str, list[int]] = defaultdict(list)
    city_keys = fold_array(table.column("name").take(pa.array(city_rows))).to_pylist()
    for row, key in zip(city_rows.tolist(), city_keys, strict=True):
        cities[key].append(row)
    large = np.flatnonzero(is_city & (population >= GAZETTEER_ALIAS_POPULATION))
    aliases = table.column("alternate_names").take(pa.array(large))
    owners = np.repeat(large, pc.fill_null(pc.list_value_length(aliases), 0).to_numpy())
    alias_keys = fold_array(pc.list_flatten(aliases)).to_pylist()
    for row, key in zip(owners.tolist(), alias_keys, strict=True):
        if key and key.isascii() and row not in cities[key]:
            cities[key].append(row)
    pairs = [f"{c or ''}/{a or ''}" for c, a in zip(country, admin1, strict=True)]
    country_codes, country_group = np.unique(
        np.array([c or "" for c in country]), return_inverse=True
    )
    region_codes, region_group = np.unique(np.array(pairs), return_inverse=True)
    weights = np.where(is_city, population.astype(np.float64) + 1.0, 0.0)
    safe_lon, safe_lat = np.nan_to_num(lon), np.nan_to_num(lat)
    c_lon, c_lat = _weighted_centres(country_group, safe_lon, safe_lat, weights, len(country_codes))
    r_lon, r_lat = _weighted_centres(region_group, safe_lon, safe_lat, weights, len(region_codes))
    r_pop = np.bincount(
        region_group, weights=np.where(is_city, population, 0), minlength=len(region_codes)
    )
    countries: dict[str, Area] = {}
    country_names: dict[str, str] = {}
    for row in np.flatnonzero(_is(feature, "country")).tolist():
        code = country[row]
        if code is None:
            continue
        group = country_group[row]
        area = Area(
            name=names[row],
            level="country",
            lon=float(c_lon[group]),
            lat=float(c_lat[group]),
            ref_id=ids[row],
            population=int(population[row]),
            country=code,
        )
        country_names[code] = names[row]
        for alias in (names[row], code, *COUNTRY_ENDONYMS.get(code, ())):
            countries[fold(alias)] = area
    regions: dict[str, list[Area]] = defaultdict(list)
    region_names: dict[tuple[str, str], str] = {}
    for row in np.flatnonzero(_is(feature, "admin1")).tolist():
        code, state = country[row], admin1[row]
        group = region_group[row]
        if code is None or state is None or not np.isfinite(r_lon[group]):
            continue
        area = Area(
            name=names[row],
            level="region",
            lon=float(r_lon[group]),
            lat=float(r_lat[group]),
            ref_id=ids[row],
            population=int(r_pop[group]),
            country=code,
            state=names[row],
        )
        region_names[(code, state)] = names[row]
        for alias in {fold(names[row]), fold(state)}:
            regions[alias].append(area)
    tree = (
        _RowTree(cKDTree(np.column_stack([lon[city_rows], lat[city_rows]])), city_rows)
        if len(city_rows)
        else None
    )
    return GazetteerIndex(
        cities=dict(cities),
        names=names,
        ids=ids,
        country=country,
        admin1=admin1,
        population=population,
        lon=lon,
        lat=lat,
        countries=countries,
        country_names=country_names,
        regions=dict(regions),
        region_names=region_names,
        tree=tree,
    )


class _RowTree:
    """A k-d tree over the gazetteer's cities that answers gazetteer row numbers."""

    def __init__(self, tree: cKDTree, rows: np.ndarray) -> None:
        self.tree = tree
        self.rows = rows

    def query(self, points: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        distance, nearest = self.tree.query(points, k=k)
        return distance, self.rows[nearest]


def gazetteer_index(release: Release) -> GazetteerIndex:
    """The release's gazetteer index (built on first use, a second or two, then cached)."""
    return cached("gazetteer", release, _gazetteer)
