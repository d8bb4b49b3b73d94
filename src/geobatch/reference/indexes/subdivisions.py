"""The district and county a point lies in, for whole arrays of points.

A district is a part of a town: the smallest suburb, quarter, neighbourhood, city district or
borough (or admin area of level 9-10) whose polygon holds the point, else the nearest such
place mapped as a point, within the reach its category suggests (``areas.REACH_M``). A county
is the smallest admin area of ``COUNTY_LEVEL`` holding the point; a release without such
boundaries (an extract cut from a bigger map loses most of them) names none.

Built once at import from the release's places and mapped by every worker; the lookup and
reverse-geocoding indexes name the districts and counties of their rows from it at import,
forward geocoding names those of its candidates as it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference.indexes.areas import NULL, REACH_M
from geobatch.reference.indexes.files import open_array, open_table, write_array, write_table
from geobatch.reference.indexes.grid import GridIndex
from geobatch.reference.indexes.keys import single_array
from geobatch.reference.indexes.sphere import SpherePoints, sphere_xyz

PREFIX = "subdivisions"
DISTRICT_PLACES = ("suburb", "quarter", "neighbourhood", "city_district", "borough")
DISTRICT_LEVELS = (9, 10)
COUNTY_LEVEL = 6
"""The admin level of counties in most countries (``boundary=administrative``)."""
DISTRICT_REACH_M = {place: REACH_M.get(place, 3_000.0) for place in DISTRICT_PLACES}
"""How far from its point a district mapped as a point still names where one is (a city
district, unknown to ``REACH_M``, as far as a borough)."""
MAX_DISTRICT_REACH_M = max(DISTRICT_REACH_M.values())
_NEIGHBOURS = 3
POLYGON_CELL_DEG = 0.02
"""Grid cell over the polygons' boxes (about 2 km)."""
POINTS_PER_BATCH = 2_000
"""Points resolved at a time: the polygons a batch falls in are parsed for that batch only."""


@dataclass(frozen=True, kw_only=True)
class Polygons:
    """Named areas with a polygon: WKB, a grid over their boxes and their sizes."""

    names: pa.Array
    wkb: pa.Array
    grid: GridIndex
    size: np.ndarray

    @classmethod
    def build(cls, names: pa.Array, wkb: pa.Array) -> Polygons:
        shapes = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False)) if len(wkb) else []
        shapes = np.asarray(shapes, dtype=object)
        keep = np.zeros(len(shapes), dtype=bool)
        if len(shapes):
            keep = np.isin(shapely.get_type_id(shapes), (3, 6)) & shapely.is_valid(shapes)
        shapes = shapes[keep]
        bounds = shapely.bounds(shapes) if len(shapes) else np.zeros((0, 4))
        return cls(
            names=names.filter(pa.array(keep)),
            wkb=pa.array(shapely.to_wkb(shapes).tolist() if len(shapes) else [], pa.binary()),
            grid=GridIndex.build(
                POLYGON_CELL_DEG, bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3]
            ),
            size=shapely.area(shapes) if len(shapes) else np.zeros(0),
        )

    def smallest(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The smallest polygon holding each point (-1 for none)."""
        found = np.full(len(lat), -1, dtype=np.int64)
        valid = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
        if not len(self.wkb) or not len(valid):
            return found
        point, polygon = self.grid.query(lon[valid], lat[valid], lon[valid], lat[valid])
        point = valid[point]
        if not len(point):
            return found
        numbers, which = np.unique(polygon, return_inverse=True)
        shapes = shapely.from_wkb(self.wkb.take(pa.array(numbers)).to_numpy(zero_copy_only=False))
        inside = shapely.contains_xy(shapes[which], lon[point], lat[point])
        point, polygon = point[inside], polygon[inside]
        order = np.lexsort((self.size[polygon], point))
        point, polygon = point[order], polygon[order]
        first = np.r_[True, point[1:] != point[:-1]] if len(point) else inside[:0]
        found[point[first]] = polygon[first]
        return found

    def save(self, folder: Path, prefix: str) -> None:
        write_table(folder, prefix, pa.table({"name": self.names, "wkb": self.wkb}))
        self.grid.save(folder, f"{prefix}/grid")
        write_array(folder, f"{prefix}/size", self.size)

    @classmethod
    def open(cls, folder: Path, prefix: str) -> Polygons:
        table = open_table(folder, prefix)
        return cls(
            names=single_array(table.column("name")),
            wkb=single_array(table.column("wkb")),
            grid=GridIndex.open(folder, f"{prefix}/grid"),
            size=open_array(folder, f"{prefix}/size"),
        )


def _names_at(names: pa.Array, rows: np.ndarray) -> np.ndarray:
    """Names of ``rows`` as an object array, None at -1."""
    result = np.full(len(rows), None, dtype=object)
    known = rows >= 0
    if known.any():
        taken = names.take(pa.array(rows[known]))
        result[known] = np.asarray(taken.to_numpy(zero_copy_only=False), dtype=object)
    return result


@dataclass(frozen=True, kw_only=True)
class Subdivisions:
    """Districts (polygons, and points with a reach) and counties (polygons) of a release."""

    districts: Polygons
    district_points: SpherePoints
    """Districts mapped as points only, with ``point_names`` and ``point_reach``."""
    point_names: pa.Array
    point_reach: np.ndarray
    counties: Polygons

    @classmethod
    def build(cls, places: pa.Table) -> Subdivisions:
        kind = places.column("kind")
        level = pc.fill_null(places.column("admin_level"), 0)
        category = pc.fill_null(places.column("category"), "")
        is_district = pc.or_(
            pc.and_(pc.is_in(kind, pa.array(["place", "admin"])),
                    pc.is_in(category, pa.array(DISTRICT_PLACES))),
            pc.and_(pc.equal(kind, "admin"), pc.is_in(level, pa.array(DISTRICT_LEVELS, pa.int8()))),
        )  # fmt: skip
        has_polygon = pc.is_valid(places.column("geometry"))
        districts = places.filter(pc.fill_null(pc.and_(is_district, has_polygon), False))
        points = places.filter(pc.fill_null(pc.and_(is_district, pc.invert(has_polygon)), False))
        counties = places.filter(
            pc.fill_null(pc.and_(pc.equal(kind, "admin"), pc.equal(level, COUNTY_LEVEL)), False)
        )
        point_category = points.column("category").to_pylist()
        return cls(
            districts=Polygons.build(_flat(districts, "name"), _flat(districts, "geometry")),
            district_points=SpherePoints.build(
                points.column("lat").to_numpy(),
                points.column("lon").to_numpy(),
                cell_m=MAX_DISTRICT_REACH_M / 4,
                reach_m=MAX_DISTRICT_REACH_M,
                neighbours=_NEIGHBOURS,
            ),
            point_names=_flat(points, "name"),
            point_reach=np.array(
                [DISTRICT_REACH_M.get(c or "", REACH_M["suburb"]) for c in point_category],
                dtype=np.float64,
            ),
            counties=Polygons.build(_flat(counties, "name"), _flat(counties, "geometry")),
        )

    def save(self, folder: Path) -> None:
        self.districts.save(folder, f"{PREFIX}/districts")
        self.district_points.save(folder, f"{PREFIX}/points")
        write_table(folder, f"{PREFIX}/point_names", pa.table({"name": self.point_names}))
        write_array(folder, f"{PREFIX}/point_reach", self.point_reach)
        self.counties.save(folder, f"{PREFIX}/counties")

    @classmethod
    def open(cls, folder: Path) -> Subdivisions:
        return cls(
            districts=Polygons.open(folder, f"{PREFIX}/districts"),
            district_points=SpherePoints.open(folder, f"{PREFIX}/points"),
            point_names=single_array(open_table(folder, f"{PREFIX}/point_names").column("name")),
            point_reach=open_array(folder, f"{PREFIX}/point_reach"),
            counties=Polygons.open(folder, f"{PREFIX}/counties"),
        )

    def resolve(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The district and the county of each point, as object arrays (None where unknown)."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        batches = [
            slice(start, start + POINTS_PER_BATCH) for start in range(0, len(lat), POINTS_PER_BATCH)
        ]
        parts = [self._resolve(lat[part], lon[part]) for part in batches]
        if not parts:
            return np.zeros(0, dtype=object), np.zeros(0, dtype=object)
        return (
            np.concatenate([district for district, _ in parts]),
            np.concatenate([county for _, county in parts]),
        )

    def _resolve(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        district = _names_at(self.districts.names, self.districts.smallest(lat, lon))
        outside = np.flatnonzero(district == None)  # noqa: E711 (element-wise)
        if len(outside) and len(self.district_points):
            district[outside] = self._nearest(lat[outside], lon[outside])
        return district, _names_at(self.counties.names, self.counties.smallest(lat, lon))

    def _nearest(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The district point nearest each point relative to its reach, where within it."""
        points = self.district_points
        k = min(_NEIGHBOURS, len(points))
        distance, found = points.query(
            sphere_xyz(lat, lon), k=k, distance_upper_bound=MAX_DISTRICT_REACH_M
        )
        known = found < len(points)
        rows = np.minimum(found, len(points) - 1)
        score = np.where(known, distance / self.point_reach[rows], np.inf)
        pick = np.argmin(score, axis=1)
        every = np.arange(len(lat))
        best = np.where(score[every, pick] <= 1.0, rows[every, pick], -1)
        return _names_at(self.point_names, best)


def _flat(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def build_subdivisions_index(folder: Path, places: pa.Table) -> None:
    Subdivisions.build(places).save(folder)


DISTRICT_LEVELS_NAMED = frozenset({"houseNumber", "interpolated", "street", "poi"})
"""Match levels finer than a district: a result at one of these lies in its district (a town
or region found by name does not, whatever district its centre point falls in)."""
COUNTY_LEVELS_NAMED = DISTRICT_LEVELS_NAMED | {"locality"}


def result_subdivisions(
    subdivisions: Subdivisions,
    lat: np.ndarray,
    lon: np.ndarray,
    level: np.ndarray,
    label: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """District and county of result rows at ``level`` (object arrays, None where a row's
    level is too coarse to lie in one); a place that is itself the district (its label starts
    with the district's name) keeps it."""
    district, county = subdivisions.resolve(lat, lon)
    level = np.asarray(level, dtype=object)
    fine = np.isin(level, list(DISTRICT_LEVELS_NAMED))
    named = np.flatnonzero(~fine & (district != None))  # noqa: E711 (element-wise)
    itself = np.zeros(len(district), dtype=bool)
    itself[named] = [
        label[row] is not None and str(label[row]).partition(",")[0] == district[row]
        for row in named
    ]
    district = np.where(fine | itself, district, NULL)
    county = np.where(np.isin(level, list(COUNTY_LEVELS_NAMED)), county, NULL)
    return district, county


def with_subdivisions(results: pa.Table, subdivisions: Subdivisions) -> pa.Table:
    """Result rows (``lat``, ``lon``, ``match_level``, ``label``, ``district``, ``county``) with
    the district and county each lies in, where its level allows (``result_subdivisions``)."""
    if not results.num_rows:
        return results
    district, county = result_subdivisions(
        subdivisions,
        pc.fill_null(results.column("lat"), np.nan).to_numpy(),
        pc.fill_null(results.column("lon"), np.nan).to_numpy(),
        results.column("match_level").to_numpy(zero_copy_only=False),
        results.column("label").to_numpy(zero_copy_only=False),
    )
    names = results.schema.names
    results = results.set_column(
        names.index("district"), "district", pa.array(district, pa.string())
    )
    return results.set_column(names.index("county"), "county", pa.array(county, pa.string()))
