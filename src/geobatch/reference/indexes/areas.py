"""Which locality, city, region and country a point lies in, for whole arrays of points.

A release rarely holds administrative boundaries for every place, so a point's area is found
the way a reader of a map would: inside a locality polygon where the release has one, else
the nearest place within the reach its category suggests (a city spans kilometres, a hamlet a
few hundred metres; with a known population the reach grows with it), else the nearest
GeoNames city for the region and country. Candidates are scored by distance over reach, so a
big city wins over a hamlet that happens to be a little nearer.

Built once at import (``build_area_index``) and mapped by every worker (``AreaIndex.open``):
places as point grids per reach band, locality polygons as WKB with a grid over their boxes,
names as Arrow strings taken only for the rows answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference.indexes.files import open_array, open_table, write_array, write_table
from geobatch.reference.indexes.grid import GridIndex
from geobatch.reference.indexes.keys import single_array
from geobatch.reference.indexes.sphere import SpherePoints, sphere_xyz

PREFIX = "areas"

REACH_M = {
    "city": 8_000.0,
    "municipality": 6_000.0,
    "town": 4_000.0,
    "borough": 3_000.0,
    "village": 2_000.0,
    "suburb": 1_500.0,
    "quarter": 1_000.0,
    "hamlet": 1_000.0,
    "locality": 800.0,
    "neighbourhood": 700.0,
    "isolated_dwelling": 300.0,
}
"""How far from its point a place of each category still names where one is."""
CITY_LIKE = frozenset({"city", "municipality", "town", "village", "hamlet"})
MAX_REACH_M = 25_000.0
REGION_REACH_M = 50_000.0
"""A GeoNames city this near tells the region (admin1) a point lies in."""
COUNTRY_REACH_M = 100_000.0
"""A GeoNames city this near tells the country; farther out (open sea) there is no answer."""
GAZETTEER_CELL_M = 2_000.0
"""Grid cell over GeoNames cities: the search for the nearest grows from here to its reach."""
_NEIGHBOURS = 3
"""Candidates taken from each reach band."""
REACH_TIERS_M = (2_000.0, 8_000.0, MAX_REACH_M)
POINTS_PER_BATCH = 2_000
"""Points whose areas are resolved at a time."""
POLYGON_CELL_DEG = 0.02
"""Grid cell over locality polygons' boxes (about 2 km)."""
NULL = np.array(None, dtype=object)
"""A null for ``np.where`` over arrays of strings."""


def population_reach(population: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Reach in metres: grows with the square root of the population, capped."""
    pop = np.nan_to_num(population.astype(np.float64), nan=0.0)
    grown = 1_500.0 * np.sqrt(pop / 1_000.0)
    return np.clip(np.where(pop > 0, np.maximum(grown, default), default), 300.0, MAX_REACH_M)


@dataclass(frozen=True, kw_only=True)
class Tier:
    """Candidates without a polygon whose reach lies in one band: searched within ``reach``."""

    points: SpherePoints
    rows: np.ndarray  # candidate row of each point
    reach: float


@dataclass(frozen=True, kw_only=True)
class Places:
    """Locality candidates: the release's places and admin areas, then GeoNames cities."""

    labels: pa.Table  # name, id, country (ISO alpha-2 or null)
    lat: np.ndarray
    lon: np.ndarray
    reach: np.ndarray
    city_like: np.ndarray  # bool
    tiers: tuple[Tier, ...]
    polygons: pa.Array  # WKB of each locality polygon
    polygon_grid: GridIndex  # over the polygons' boxes
    polygon_rows: np.ndarray  # candidate row of each polygon
    polygon_area: np.ndarray

    def labels_at(self, column: str, rows: np.ndarray) -> np.ndarray:
        """``column`` (name, id, country) of candidate ``rows`` as an object array; None at -1."""
        rows = np.asarray(rows, dtype=np.int64)
        result = np.full(len(rows), None, dtype=object)
        known = rows >= 0
        result[known] = _strings(self.labels.column(column).take(pa.array(rows[known])))
        return result


@dataclass(frozen=True, kw_only=True)
class Gazetteer:
    """GeoNames cities for region and country, with the names of countries and regions."""

    points: SpherePoints
    labels: pa.Table  # country, state (the region's name where the gazetteer has it)
    countries: pa.Table  # country (code), name


@dataclass(frozen=True, kw_only=True)
class AreaHits:
    """Per point: candidate rows (-1 for none) and what they say."""

    locality: np.ndarray
    locality_distance: np.ndarray
    city: np.ndarray
    state: np.ndarray  # object
    country: np.ndarray  # object
    region_known: np.ndarray  # bool: a GeoNames city within REGION_REACH_M
    country_known: np.ndarray  # bool: one within COUNTRY_REACH_M


def _strings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An object array of str and None."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _places(places: pa.Table, gazetteer: pa.Table) -> Places:
    category = pc.fill_null(places.column("category"), "")
    is_place = pc.and_(
        pc.equal(places.column("kind"), "place"), pc.is_in(category, pa.array(list(REACH_M)))
    )
    level = pc.fill_null(places.column("admin_level"), 0)
    is_admin = pc.and_(
        pc.equal(places.column("kind"), "admin"),
        pc.and_(pc.greater_equal(level, 7), pc.is_valid(places.column("geometry"))),
    )
    local = places.filter(pc.fill_null(pc.or_(is_place, is_admin), False))
    local_category = _strings(pc.fill_null(local.column("category"), ""))
    default_reach = np.array([REACH_M.get(c, 2_000.0) for c in local_category])
    population = np.asarray(pc.fill_null(local.column("population"), 0), dtype=np.float64)
    local_level = np.asarray(pc.fill_null(local.column("admin_level"), 0))
    local_city = np.isin(local_category, list(CITY_LIKE)) | np.isin(local_level, (7, 8))

    cities = gazetteer.filter(
        pc.and_(pc.equal(gazetteer.column("feature"), "city"), pc.is_valid(gazetteer.column("lat")))
    )
    city_population = np.asarray(pc.fill_null(cities.column("population"), 0), dtype=np.float64)

    geometry = local.column("geometry").to_numpy(zero_copy_only=False)
    has_polygon = np.array([g is not None for g in geometry], dtype=bool)
    shapes = shapely.from_wkb(geometry[has_polygon]) if has_polygon.any() else np.array([])
    keep = np.zeros(len(shapes), dtype=bool)
    if len(shapes):
        keep = np.isin(shapely.get_type_id(shapes), (3, 6)) & shapely.is_valid(shapes)
    polygon_rows = np.flatnonzero(has_polygon)[keep]
    shapes = shapes[keep]
    bounds = shapely.bounds(shapes) if len(shapes) else np.zeros((0, 4))

    lat = np.concatenate([local.column("lat").to_numpy(), cities.column("lat").to_numpy()])
    lon = np.concatenate([local.column("lon").to_numpy(), cities.column("lon").to_numpy()])
    on_tree = np.concatenate(
        [~np.isin(np.arange(local.num_rows), polygon_rows), np.ones(cities.num_rows, dtype=bool)]
    )
    reach = np.concatenate(
        [
            population_reach(population, default_reach),
            population_reach(city_population, np.full(cities.num_rows, 1_500.0)),
        ]
    )
    labels = pa.table(
        {
            name: pa.concat_arrays(
                [
                    local.column(name).combine_chunks().cast(pa.string()),
                    cities.column(name).combine_chunks().cast(pa.string()),
                ]
            )
            for name in ("name", "id", "country")
        }
    )
    return Places(
        labels=labels,
        lat=lat,
        lon=lon,
        reach=reach,
        city_like=np.concatenate([local_city, np.ones(cities.num_rows, dtype=bool)]),
        tiers=_tiers(lat, lon, reach, on_tree),
        polygons=pa.array(shapely.to_wkb(shapes).tolist() if len(shapes) else [], pa.binary()),
        polygon_grid=GridIndex.build(
            POLYGON_CELL_DEG, bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3]
        ),
        polygon_rows=polygon_rows,
        polygon_area=shapely.area(shapes) if len(shapes) else np.array([]),
    )


def _tiers(
    lat: np.ndarray, lon: np.ndarray, reach: np.ndarray, on_tree: np.ndarray
) -> tuple[Tier, ...]:
    """One point grid per reach band: the many small places are searched within a small
    radius, the few big ones within a large one, so a far big city is never crowded out by
    hamlets."""
    tiers = []
    low = 0.0
    for high in REACH_TIERS_M:
        rows = np.flatnonzero(on_tree & (reach > low) & (reach <= high))
        if len(rows):
            points = SpherePoints.build(
                lat[rows], lon[rows], cell_m=high / 4, reach_m=high, neighbours=_NEIGHBOURS
            )
            tiers.append(Tier(points=points, rows=rows, reach=high))
        low = high
    return tuple(tiers)


def _gazetteer(table: pa.Table) -> Gazetteer:
    feature = table.column("feature")
    cities = table.filter(pc.and_(pc.equal(feature, "city"), pc.is_valid(table.column("lat"))))
    countries = table.filter(pc.equal(feature, "country"))
    regions = table.filter(pc.equal(feature, "admin1"))
    key = pc.binary_join_element_wise(cities.column("country"), cities.column("admin1"), "|")
    region_key = pc.binary_join_element_wise(
        regions.column("country"), regions.column("admin1"), "|"
    )
    state = regions.column("name").take(pc.index_in(key, value_set=region_key.combine_chunks()))
    return Gazetteer(
        points=SpherePoints.build(
            cities.column("lat").to_numpy(),
            cities.column("lon").to_numpy(),
            GAZETTEER_CELL_M,
            COUNTRY_REACH_M,
            neighbours=1,
        ),
        labels=pa.table(
            {
                "country": cities.column("country").combine_chunks().cast(pa.string()),
                "state": state.combine_chunks().cast(pa.string()),
            }
        ),
        countries=pa.table(
            {
                "country": countries.column("country").combine_chunks().cast(pa.string()),
                "name": countries.column("name").combine_chunks().cast(pa.string()),
            }
        ),
    )


def _single(table: pa.Table) -> pa.Table:
    """A mapped table with each column as its one chunk (takes need no concatenation)."""
    return pa.table({name: single_array(table.column(name)) for name in table.column_names})


@dataclass(frozen=True, kw_only=True)
class AreaIndex:
    places: Places
    gazetteer: Gazetteer

    @classmethod
    def build(cls, places: pa.Table, gazetteer: pa.Table) -> AreaIndex:
        return cls(places=_places(places, gazetteer), gazetteer=_gazetteer(gazetteer))

    def save(self, folder: Path) -> None:
        places, gazetteer = self.places, self.gazetteer
        write_table(folder, f"{PREFIX}/labels", places.labels)
        write_array(folder, f"{PREFIX}/lat", places.lat)
        write_array(folder, f"{PREFIX}/lon", places.lon)
        write_array(folder, f"{PREFIX}/reach", places.reach)
        write_array(folder, f"{PREFIX}/city_like", places.city_like)
        write_array(folder, f"{PREFIX}/tier_reach", np.array([t.reach for t in places.tiers]))
        for number, tier in enumerate(places.tiers):
            tier.points.save(folder, f"{PREFIX}/tier{number}")
            write_array(folder, f"{PREFIX}/tier{number}/rows", tier.rows)
        write_table(folder, f"{PREFIX}/polygons", pa.table({"wkb": places.polygons}))
        places.polygon_grid.save(folder, f"{PREFIX}/polygon_grid")
        write_array(folder, f"{PREFIX}/polygon_rows", places.polygon_rows)
        write_array(folder, f"{PREFIX}/polygon_area", places.polygon_area)
        gazetteer.points.save(folder, f"{PREFIX}/gazetteer")
        write_table(folder, f"{PREFIX}/gazetteer_labels", gazetteer.labels)
        write_table(folder, f"{PREFIX}/countries", gazetteer.countries)

    @classmethod
    def open(cls, folder: Path) -> AreaIndex:
        reach = open_array(folder, f"{PREFIX}/tier_reach")
        tiers = tuple(
            Tier(
                points=SpherePoints.open(folder, f"{PREFIX}/tier{number}"),
                rows=open_array(folder, f"{PREFIX}/tier{number}/rows"),
                reach=float(high),
            )
            for number, high in enumerate(reach.tolist())
        )
        places = Places(
            labels=_single(open_table(folder, f"{PREFIX}/labels")),
            lat=open_array(folder, f"{PREFIX}/lat"),
            lon=open_array(folder, f"{PREFIX}/lon"),
            reach=open_array(folder, f"{PREFIX}/reach"),
            city_like=open_array(folder, f"{PREFIX}/city_like"),
            tiers=tiers,
            polygons=single_array(open_table(folder, f"{PREFIX}/polygons").column("wkb")),
            polygon_grid=GridIndex.open(folder, f"{PREFIX}/polygon_grid"),
            polygon_rows=open_array(folder, f"{PREFIX}/polygon_rows"),
            polygon_area=open_array(folder, f"{PREFIX}/polygon_area"),
        )
        gazetteer = Gazetteer(
            points=SpherePoints.open(folder, f"{PREFIX}/gazetteer"),
            labels=_single(open_table(folder, f"{PREFIX}/gazetteer_labels")),
            countries=open_table(folder, f"{PREFIX}/countries"),
        )
        return cls(places=places, gazetteer=gazetteer)

    def country_names(self) -> dict[str, str]:
        """ISO code -> the country's name (a few hundred entries)."""
        countries = self.gazetteer.countries
        return dict(
            zip(
                countries.column("country").to_pylist(),
                countries.column("name").to_pylist(),
                strict=True,
            )
        )

    def _containing(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The smallest polygon holding each point, and the smallest city-like one (-1)."""
        size = len(lat)
        found = np.full(size, -1, dtype=np.int64), np.full(size, -1, dtype=np.int64)
        places = self.places
        if not len(places.polygons) or not size:
            return found
        point, polygon = self._pairs(lat, lon)
        order = np.lexsort((places.polygon_area[polygon], point))
        point, row = point[order], places.polygon_rows[polygon[order]]
        for target, keep in zip(
            found, (np.ones(len(row), bool), places.city_like[row]), strict=True
        ):
            kept_point, kept_row = point[keep], row[keep]
            first = np.r_[True, kept_point[1:] != kept_point[:-1]] if len(kept_point) else keep[:0]
            target[kept_point[first]] = kept_row[first]
        return found

    def _pairs(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point, polygon) for every polygon holding a point: the polygons filed in the
        points' grid cells are read from their WKB and tested exactly."""
        places = self.places
        valid = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
        point, polygon = places.polygon_grid.query(lon[valid], lat[valid], lon[valid], lat[valid])
        point = valid[point]
        if not len(point):
            return point, polygon
        numbers, which = np.unique(polygon, return_inverse=True)
        shapes = shapely.from_wkb(_strings(places.polygons.take(pa.array(numbers))))
        inside = shapely.contains_xy(shapes[which], lon[point], lat[point])
        return point[inside], polygon[inside]

    def _nearest(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, k)`` candidate rows (-1 for none) and distance over reach (inf beyond it)."""
        blocks_rows, blocks_score = [np.full((len(xyz), 1), -1)], [np.full((len(xyz), 1), np.inf)]
        for tier in self.places.tiers:
            tree_rows, reach = tier.rows, tier.reach
            k = min(_NEIGHBOURS, len(tree_rows))
            distance, index = tier.points.query(xyz, k=k, distance_upper_bound=reach)
            missing = index >= len(tree_rows)
            rows = np.where(missing, -1, tree_rows[np.minimum(index, len(tree_rows) - 1)])
            score = np.where(missing, np.inf, distance / self.places.reach[np.maximum(rows, 0)])
            blocks_rows.append(rows)
            blocks_score.append(np.where(score <= 1.0, score, np.inf))
        return np.hstack(blocks_rows), np.hstack(blocks_score)

    def resolve(self, lat: np.ndarray, lon: np.ndarray) -> AreaHits:
        """The area each point lies in; finest locality first, the city it belongs to.

        ``POINTS_PER_BATCH`` points at a time: the polygons a batch falls in are parsed for
        that batch only, so memory does not grow with the number of points.
        """
        if len(lat) <= POINTS_PER_BATCH:
            return self._resolve(lat, lon)
        batches = [
            self._resolve(
                lat[start : start + POINTS_PER_BATCH], lon[start : start + POINTS_PER_BATCH]
            )
            for start in range(0, len(lat), POINTS_PER_BATCH)
        ]
        return AreaHits(
            **{
                name: np.concatenate([getattr(batch, name) for batch in batches])
                for name in AreaHits.__dataclass_fields__
            }
        )

    def _resolve(self, lat: np.ndarray, lon: np.ndarray) -> AreaHits:
        size = len(lat)
        xyz = sphere_xyz(lat, lon)
        places = self.places
        if not len(places.lat):  # no place and no city: nothing to name
            nothing = np.full(size, -1, dtype=np.int64)
            state, country, region_known, country_known = self._regions(xyz, nothing)
            return AreaHits(
                locality=nothing,
                locality_distance=np.full(size, np.nan),
                city=nothing,
                state=state,
                country=country,
                region_known=region_known,
                country_known=country_known,
            )
        rows, score = self._nearest(xyz)
        every = np.arange(size)

        def best(mask: np.ndarray) -> np.ndarray:
            masked = np.where(mask, score, np.inf)
            pick = np.argmin(masked, axis=1) if size else np.zeros(0, dtype=np.int64)
            chosen = rows[every, pick]
            return np.where(np.isfinite(masked[every, pick]), chosen, -1)

        city_mask = (rows >= 0) & places.city_like[np.maximum(rows, 0)]
        fine = best((rows >= 0) & ~city_mask)
        nearest_city = best(city_mask)
        inside, inside_city = self._containing(lat, lon)
        city = np.where(inside_city >= 0, inside_city, nearest_city)
        locality = np.where(inside >= 0, inside, np.where(fine >= 0, fine, city))
        located = np.maximum(locality, 0)
        locality_distance = np.where(
            locality >= 0,
            np.linalg.norm(xyz - sphere_xyz(places.lat[located], places.lon[located]), axis=1),
            np.nan,
        )
        state, country, region_known, country_known = self._regions(xyz, city)
        return AreaHits(
            locality=locality,
            locality_distance=np.where(inside >= 0, 0.0, locality_distance),
            city=city,
            state=state,
            country=country,
            region_known=region_known,
            country_known=country_known,
        )

    def _regions(
        self, xyz: np.ndarray, city: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        size = len(xyz)
        gazetteer = self.gazetteer
        state = np.full(size, None, dtype=object)
        country = self.places.labels_at("country", city)
        if not len(gazetteer.points) or not size:
            return state, country, np.zeros(size, bool), np.zeros(size, bool)
        distance, index = gazetteer.points.query(xyz, k=1, distance_upper_bound=COUNTRY_REACH_M)
        distance, index = distance[:, 0], index[:, 0]
        known = np.isfinite(distance)
        at = pa.array(np.minimum(index, len(gazetteer.points) - 1))
        near_country = np.where(known, _strings(gazetteer.labels.column("country").take(at)), NULL)
        country = np.where(country == None, near_country, country)  # noqa: E711 (element-wise)
        region_known = distance <= REGION_REACH_M
        state = np.where(region_known, _strings(gazetteer.labels.column("state").take(at)), NULL)
        return state, country, region_known, known.astype(bool)


def build_area_index(folder: Path, places: pa.Table, gazetteer: pa.Table) -> None:
    AreaIndex.build(places, gazetteer).save(folder)
