"""Addresses, places, POIs and admin areas of an OSM extract, from nodes and assembled areas.

Nodes give a point directly; closed ways and multipolygon relations arrive from osmium's area
assembly and are placed at ``point_on_surface`` (always inside the polygon) under the id of
the original way or relation. Rows are parked in scratch files while the file streams by,
because two columns need every admin area first: ``places.parents`` (containing admin areas,
innermost first) and a missing ``country`` (from the containing country boundary).

When several files are read, an object already taken from an earlier file is skipped
(``SeenObjects``): overlapping extracts hold the same nodes, ways and relations.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import osmium
import pyarrow as pa
import shapely

from geobatch.reference import osm_tags
from geobatch.reference.batches import BATCH_ROWS, Bounds, ScratchFile
from geobatch.reference.progress import ImportProgress
from geobatch.reference.release import ReleaseBuilder
from geobatch.reference.schema import ADDRESSES, PLACES


@dataclass
class Locality:
    """A ``place=city|town|village|hamlet`` point, the last resort for naming a street's town."""

    name: str
    lon: float
    lat: float


@dataclass
class AdminArea:
    id: str
    name: str
    level: int
    country: str | None
    geometry: shapely.Geometry


class AdminIndex:
    """Point-in-polygon lookups against the admin areas, vectorised with an STRtree."""

    def __init__(self, areas: list[AdminArea]) -> None:
        self.ids = np.array([a.id for a in areas], dtype=object)
        self.names = np.array([a.name for a in areas], dtype=object)
        self.levels = np.array([a.level for a in areas], dtype=np.int64)
        self.countries = np.array([a.country for a in areas], dtype=object)
        geometries = np.array([a.geometry for a in areas], dtype=object)
        self.sizes = shapely.area(geometries) if len(areas) else np.zeros(0)
        self.tree = shapely.STRtree(geometries)

    def containing(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point index, area index) pairs, grouped by point, innermost area first."""
        if not len(self.ids) or not len(lon):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        point, area = self.tree.query(shapely.points(lon, lat), predicate="within")
        order = np.lexsort((self.sizes[area], -self.levels[area], point))
        return point[order], area[order]

    def first(self, point: np.ndarray, area: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
        """Per point, the index of the first kept area (or -1)."""
        result = np.full(n, -1, dtype=np.int64)
        point, area = point[keep], area[keep]
        unique, first = np.unique(point, return_index=True)
        result[unique] = area[first]
        return result


class SeenObjects:
    """Ids of the nodes, ways and relations kept from earlier files (8 bytes each, sorted)."""

    _KIND = {"node": 0, "way": 1, "relation": 2}

    def __init__(self) -> None:
        self._earlier = np.zeros(0, dtype=np.int64)
        self._current: array[int] = array("q")

    @classmethod
    def key(cls, kind: str, osm_id: int) -> int:
        return osm_id * 4 + cls._KIND[kind]

    def __contains__(self, key: int) -> bool:
        position = int(np.searchsorted(self._earlier, key))
        return position < len(self._earlier) and int(self._earlier[position]) == key

    def add(self, key: int) -> None:
        self._current.append(key)

    def next_file(self) -> None:
        """What this file kept now counts as seen for the files that follow."""
        current = np.frombuffer(self._current, dtype=np.int64)
        self._earlier = np.union1d(self._earlier, current)
        self._current = array("q")


@dataclass
class FeatureCollector:
    """Turns OSM nodes and areas into address and place rows, parked in scratch files."""

    scratch: Path
    addresses: ScratchFile = field(init=False)
    places: ScratchFile = field(init=False)
    admins: list[AdminArea] = field(default_factory=list)
    localities: list[Locality] = field(default_factory=list)
    seen: SeenObjects = field(default_factory=SeenObjects)
    files: int = 0

    def __post_init__(self) -> None:
        self.addresses = ScratchFile(self.scratch / "addresses.arrow", ADDRESSES)
        self.places = ScratchFile(self.scratch / "places.arrow", PLACES)
        self._wkb = osmium.geom.WKBFactory()

    def next_file(self) -> None:
        """The file being read has ended; objects it gave are not taken again from the next."""
        self.files += 1
        self.seen.next_file()

    def _kept_before(self, kind: str, osm_id: int) -> int | None:
        """The object's key, or None when an earlier file gave it already."""
        key = SeenObjects.key(kind, osm_id)
        return None if self.files and key in self.seen else key

    def add_node(self, node: Any, tags: dict[str, str]) -> None:
        location = node.location
        if not location.valid():
            return
        key = self._kept_before("node", node.id)
        if key is not None and self._add(
            f"osm:node/{node.id}", tags, location.lon, location.lat, None
        ):
            self.seen.add(key)

    def add_area(self, area: Any, tags: dict[str, str]) -> None:
        if not _wanted(tags):
            return
        kind = "way" if area.from_way() else "relation"
        key = self._kept_before(kind, area.orig_id())
        if key is None:
            return
        geometry = self._polygon(area)
        if geometry is None:
            return
        point = shapely.point_on_surface(geometry)
        oid = f"osm:{kind}/{area.orig_id()}"
        if self._add(oid, tags, shapely.get_x(point), shapely.get_y(point), geometry):
            self.seen.add(key)

    def _polygon(self, area: Any) -> shapely.Geometry | None:
        """The area as a valid (multi)polygon; osmium hands over empty areas it could not build."""
        if area.num_rings()[0] == 0:
            return None
        try:
            geometry = shapely.from_wkb(self._wkb.create_multipolygon(area))
        except (RuntimeError, shapely.errors.GEOSException):
            return None
        if not shapely.is_valid(geometry):
            geometry = shapely.make_valid(geometry)
            parts = shapely.get_parts(geometry)
            polygons = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
            if not len(polygons):
                return None
            geometry = shapely.multipolygons(shapely.get_parts(polygons))
        return None if shapely.is_empty(geometry) else geometry

    def _add(self, oid: str, tags: dict[str, str], lon: float, lat: float, geometry: Any) -> bool:
        """Park the object's address and place rows; whether it gave any."""
        housenumber = tags.get("addr:housenumber")
        street = tags.get("addr:street") or tags.get("addr:place")
        if housenumber and street:
            self.addresses.append(
                {
                    "id": oid,
                    "housenumber": housenumber,
                    "street": street,
                    "unit": tags.get("addr:unit"),
                    "postcode": tags.get("addr:postcode"),
                    "city": tags.get("addr:city"),
                    "state": tags.get("addr:state") or tags.get("addr:province"),
                    "country": osm_tags.country_code(
                        {"addr:country": tags.get("addr:country", "")}
                    ),
                    "lon": lon,
                    "lat": lat,
                }
            )
            added = True
        else:
            added = False
        name = tags.get("name")
        if not name:
            return added
        level = osm_tags.admin_level(tags) if geometry is not None else None
        place = tags.get("place")
        category: str | None
        if level is not None:
            kind, category = "admin", place or "administrative"
        elif place:
            kind, category = "place", place
        else:
            kind, category = "poi", osm_tags.poi_category(tags)
            if category is None:
                return added
        country = osm_tags.country_code(tags) if kind == "admin" else None
        if kind == "admin":
            assert level is not None
            self.admins.append(AdminArea(oid, name, level, country, geometry))
        if kind == "place" and place in osm_tags.LOCALITY_PLACES:
            self.localities.append(Locality(name, lon, lat))
        self.places.append(
            {
                "id": oid,
                "name": name,
                "names": osm_tags.names(tags) or None,
                "category": category,
                "kind": kind,
                "admin_level": level,
                "population": osm_tags.population(tags.get("population")),
                "country": country,
                "lon": lon,
                "lat": lat,
                "geometry": None if geometry is None else shapely.to_wkb(geometry, byte_order=1),
            }
        )
        return True

    def finish(
        self, builder: ReleaseBuilder, bounds: Bounds, progress: ImportProgress
    ) -> AdminIndex:
        """Write ``addresses`` and ``places`` with countries and parents filled in."""
        index = AdminIndex(self.admins)
        has_country = np.array([c is not None for c in index.countries], dtype=bool)
        addresses, places = self.addresses.read(), self.places.read()
        progress.phase("addresses and places", addresses.num_rows + places.num_rows)
        with builder.table_writer("addresses") as writer:
            for batch in addresses.to_batches(max_chunksize=BATCH_ROWS):
                lon, lat = batch.column("lon").to_numpy(), batch.column("lat").to_numpy()
                bounds.update(lon, lat)
                point, area = index.containing(lon, lat)
                country = _fill(batch.column("country"), index, point, area, has_country)
                writer.write(batch.set_column(7, "country", country))
                progress.advance(batch.num_rows)
        with builder.table_writer("places") as writer:
            for batch in places.to_batches(max_chunksize=BATCH_ROWS):
                lon, lat = batch.column("lon").to_numpy(), batch.column("lat").to_numpy()
                bounds.update(lon, lat)
                point, area = index.containing(lon, lat)
                country = _fill(batch.column("country"), index, point, area, has_country)
                own = batch.column("admin_level").fill_null(99).to_numpy().astype(np.int64)
                keep = index.levels[area] < own[point]  # admin areas: only lower levels
                counts = np.bincount(point[keep], minlength=batch.num_rows)
                offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
                parents = pa.ListArray.from_arrays(
                    pa.array(offsets), pa.array(index.ids[area[keep]], pa.string())
                )
                batch = batch.set_column(7, "parents", parents)
                writer.write(batch.set_column(8, "country", country))
                progress.advance(batch.num_rows)
        return index


def _fill(
    column: pa.Array,
    index: AdminIndex,
    point: np.ndarray,
    area: np.ndarray,
    has_country: np.ndarray,
) -> pa.Array:
    """A country column with its nulls taken from the innermost containing area with a code."""
    if not column.null_count or not len(index.ids):
        return column
    found = index.first(point, area, has_country[area], len(column))
    derived = np.where(found >= 0, index.countries[np.maximum(found, 0)], None)
    own = np.array(column.to_pylist(), dtype=object)
    return pa.array(np.where(own == None, derived, own), pa.string())  # noqa: E711


def _wanted(tags: dict[str, str]) -> bool:
    """Whether an area can yield an address or a place row (before building its geometry)."""
    if "addr:housenumber" in tags:
        return True
    if "name" not in tags:
        return False
    return (
        "place" in tags
        or osm_tags.admin_level(tags) is not None
        or osm_tags.poi_category(tags) is not None
    )
