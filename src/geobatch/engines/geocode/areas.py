"""Which locality, city, region and country a point lies in, for whole arrays of points.

A release rarely holds administrative boundaries for every place, so a point's area is found
the way a reader of a map would: inside a locality polygon where the release has one, else
the nearest place within the reach its category suggests (a city spans kilometres, a hamlet a
few hundred metres; with a known population the reach grows with it), else the nearest
GeoNames city for the region and country. Candidates are scored by distance over reach, so a
big city wins over a hamlet that happens to be a little nearer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from scipy.spatial import cKDTree

from geobatch.engines.geocode.spatial import sphere_xyz
from geobatch.reference import Release

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
_NEIGHBOURS = 3
"""Candidates taken from each reach band."""
REACH_TIERS_M = (2_000.0, 8_000.0, MAX_REACH_M)
FEW_POLYGONS = 64
"""Up to this many locality polygons, points are tested polygon by polygon."""
NULL = np.array(None, dtype=object)
"""A null for ``np.where`` over arrays of strings."""


def population_reach(population: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Reach in metres: grows with the square root of the population, capped."""
    pop = np.nan_to_num(population.astype(np.float64), nan=0.0)
    grown = 1_500.0 * np.sqrt(pop / 1_000.0)
    return np.clip(np.where(pop > 0, np.maximum(grown, default), default), 300.0, MAX_REACH_M)


@dataclass(frozen=True, kw_only=True)
class Places:
    """Locality candidates: the release's places and admin areas, then GeoNames cities."""

    names: np.ndarray  # object
    ids: np.ndarray  # object
    country: np.ndarray  # object, ISO alpha-2 or None
    lat: np.ndarray
    lon: np.ndarray
    reach: np.ndarray
    city_like: np.ndarray  # bool
    tiers: tuple[tuple[cKDTree, np.ndarray, float], ...]
    """Candidates without a polygon, by reach: (tree, candidate row of each point, reach)."""
    polygons: shapely.STRtree | None
    polygon_rows: np.ndarray  # candidate row of each polygon
    polygon_area: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Gazetteer:
    """GeoNames cities for region and country, with the names of countries and regions."""

    tree: cKDTree | None
    country: np.ndarray  # object
    state: np.ndarray  # object: the region's name where the gazetteer has it
    country_names: dict[str, str]


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


def _places(release: Release) -> Places:
    places = release.table("places")
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

    gazetteer = release.table("gazetteer")
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
    shapely.prepare(shapes)  # point-in-polygon tests, many per polygon

    names = np.concatenate([_strings(local.column("name")), _strings(cities.column("name"))])
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
    return Places(
        names=names,
        ids=np.concatenate([_strings(local.column("id")), _strings(cities.column("id"))]),
        country=np.concatenate(
            [_strings(local.column("country")), _strings(cities.column("country"))]
        ),
        lat=lat,
        lon=lon,
        reach=reach,
        city_like=np.concatenate([local_city, np.ones(cities.num_rows, dtype=bool)]),
        tiers=_tiers(lat, lon, reach, on_tree),
        polygons=shapely.STRtree(shapes) if len(shapes) else None,
        polygon_rows=polygon_rows,
        polygon_area=shapely.area(shapes) if len(shapes) else np.array([]),
    )


def _tiers(
    lat: np.ndarray, lon: np.ndarray, reach: np.ndarray, on_tree: np.ndarray
) -> tuple[tuple[cKDTree, np.ndarray, float], ...]:
    """One k-d tree per reach band: the many small places are searched within a small radius,
    the few big ones within a large one, so a far big city is never crowded out by hamlets."""
    tiers = []
    low = 0.0
    for high in REACH_TIERS_M:
        rows = np.flatnonzero(on_tree & (reach > low) & (reach <= high))
        if len(rows):
            tiers.append((cKDTree(sphere_xyz(lat[rows], lon[rows])), rows, high))
        low = high
    return tuple(tiers)


def _gazetteer(release: Release) -> Gazetteer:
    table = release.table("gazetteer")
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
        tree=cKDTree(sphere_xyz(cities.column("lat").to_numpy(), cities.column("lon").to_numpy()))
        if cities.num_rows
        else None,
        country=_strings(cities.column("country")),
        state=_strings(state),
        country_names=dict(
            zip(
                countries.column("country").to_pylist(),
                countries.column("name").to_pylist(),
                strict=True,
            )
        ),
    )


@dataclass(frozen=True, kw_only=True)
class AreaIndex:
    places: Places
    gazetteer: Gazetteer

    @classmethod
    def build(cls, release: Release) -> AreaIndex:
        return cls(places=_places(release), gazetteer=_gazetteer(release))

    def _containing(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The smallest polygon holding each point, and the smallest city-like one (-1)."""
        size = len(lat)
        found = np.full(size, -1, dtype=np.int64), np.full(size, -1, dtype=np.int64)
        places = self.places
        if places.polygons is None or not size:
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
        """(point, polygon) for every polygon holding a point.

        A few polygons (a city's districts) are tested one by one against the points inside
        their bounding box, which skips making a geometry per point; many go through the tree.
        """
        tree = self.places.polygons
        assert tree is not None
        shapes = tree.geometries
        if len(shapes) > FEW_POLYGONS:
            bounds = shapely.total_bounds(shapes)
            near = np.flatnonzero(
                (lon >= bounds[0]) & (lon <= bounds[2]) & (lat >= bounds[1]) & (lat <= bounds[3])
            )
            point, polygon = tree.query(shapely.points(lon[near], lat[near]), "within")
            return near[point], polygon
        points, polygons = [], []
        for number, (shape, box) in enumerate(zip(shapes, shapely.bounds(shapes), strict=True)):
            near = np.flatnonzero(
                (lon >= box[0]) & (lon <= box[2]) & (lat >= box[1]) & (lat <= box[3])
            )
            inside = near[shapely.contains_xy(shape, lon[near], lat[near])]
            points.append(inside)
            polygons.append(np.full(len(inside), number, dtype=np.int64))
        return np.concatenate(points), np.concatenate(polygons)

    def _nearest(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, k)`` candidate rows (-1 for none) and distance over reach (inf beyond it)."""
        blocks_rows, blocks_score = [np.full((len(xyz), 1), -1)], [np.full((len(xyz), 1), np.inf)]
        for tree, tree_rows, reach in self.places.tiers:
            k = min(_NEIGHBOURS, len(tree_rows))
            distance, index = tree.query(xyz, k=k, distance_upper_bound=reach)
            distance, index = distance.reshape(len(xyz), k), index.reshape(len(xyz), k)
            missing = index >= len(tree_rows)
            rows = np.where(missing, -1, tree_rows[np.minimum(index, len(tree_rows) - 1)])
            score = np.where(missing, np.inf, distance / self.places.reach[np.maximum(rows, 0)])
            blocks_rows.append(rows)
            blocks_score.append(np.where(score <= 1.0, score, np.inf))
        return np.hstack(blocks_rows), np.hstack(blocks_score)

    def resolve(self, lat: np.ndarray, lon: np.ndarray) -> AreaHits:
        """The area each point lies in; finest locality first, the city it belongs to."""
        size = len(lat)
        xyz = sphere_xyz(lat, lon)
        places = self.places
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
        country = np.where(city >= 0, self.places.country[np.maximum(city, 0)], NULL)
        if gazetteer.tree is None or not size:
            return state, country, np.zeros(size, bool), np.zeros(size, bool)
        distance, index = gazetteer.tree.query(xyz, k=1, distance_upper_bound=COUNTRY_REACH_M)
        distance, index = np.asarray(distance), np.asarray(index)
        known = np.isfinite(distance)
        at = np.minimum(index, len(gazetteer.country) - 1)
        near_country = np.where(known, gazetteer.country[at], NULL)
        country = np.where(country == None, near_country, country)  # noqa: E711 (element-wise)
        region_known = distance <= REGION_REACH_M
        state = np.where(region_known, gazetteer.state[at], NULL)
        return state, country, region_known, known.astype(bool)
