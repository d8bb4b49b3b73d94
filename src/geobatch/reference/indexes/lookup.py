"""The lookup index: every reference object of a release as a result row, filed by its id.

Every row of every table becomes a row of one mapped table (``OBJECTS``: ``lat``, ``lon``,
``label``, ...) filed under its ``id`` (``osm:node/1``, ``osm:way/2:0``, a GERS id,
``geonames:..``, ``street:..``); road segments are filed under their source way's id too, so
``osm:way/2`` finds every piece of that way. An id can name several objects (an OSM node that
is both an address and a POI): they are filed addresses first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference.indexes.files import open_table, write_table
from geobatch.reference.indexes.keys import KeyIndex
from geobatch.reference.indexes.labels import flat, house_label, join, text
from geobatch.reference.indexes.subdivisions import Subdivisions, with_subdivisions
from geobatch.reference.memory import release_memory

PREFIX = "lookup"
LINES_PER_BATCH = 100_000
"""Lines parsed at a time to find their middles."""
BYTES_PER_BATCH = 16 << 20
"""Their geometries (WKB) parsed at a time: a line takes several times its WKB in GEOS."""
OBJECT_COLUMNS = pa.schema(
    [
        pa.field("lat", pa.float64()),
        pa.field("lon", pa.float64()),
        pa.field("label", pa.string()),
        pa.field("houseNumber", pa.string()),
        pa.field("street", pa.string()),
        pa.field("postalCode", pa.string()),
        pa.field("city", pa.string()),
        pa.field("district", pa.string()),  # suburb, quarter, neighbourhood
        pa.field("county", pa.string()),
        pa.field("state", pa.string()),
        pa.field("country", pa.string()),
        pa.field("match_level", pa.string()),
        pa.field("confidence", pa.int32()),  # 0-100, calibrated: see evals/geocode.py
        pa.field("distance_m", pa.float64()),  # reverse geocoding: from the query point
        pa.field("ref_id", pa.string()),  # the reference row's own id (osm:node/1, geonames:..)
    ]
)
"""The columns of an object, as the engines' result rows name them (after the row's place
among its record's candidates)."""


def _objects(size: int, level: str | pa.Array | pa.ChunkedArray, **columns: object) -> pa.Table:
    """Result rows of one table; columns not given are null."""
    data = {"match_level": level, "confidence": pa.array(np.full(size, 100, np.int32)), **columns}
    arrays = []
    for field in OBJECT_COLUMNS:
        value = data.get(field.name)
        if value is None:
            arrays.append(pa.nulls(size, field.type))
        elif isinstance(value, str):
            arrays.append(pa.array([value] * size, field.type))
        elif isinstance(value, pa.ChunkedArray):
            arrays.append(value.combine_chunks().cast(field.type))
        elif isinstance(value, pa.Array):
            arrays.append(value.cast(field.type))
        else:
            arrays.append(pa.array(value, field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=OBJECT_COLUMNS)


def _addresses(table: pa.Table) -> pa.Table:
    street, number = text(table.column("street")), text(table.column("housenumber"))
    postcode, city = text(table.column("postcode")), text(table.column("city"))
    country = text(table.column("country"))
    place = join(postcode, city, separator=" ")
    return _objects(
        table.num_rows,
        "houseNumber",
        lat=table.column("lat"),
        lon=table.column("lon"),
        label=join(house_label(street, number, country), place),
        houseNumber=number,
        street=street,
        postalCode=postcode,
        city=city,
        state=text(table.column("state")),
        country=country,
        ref_id=table.column("id"),
    )


def _place_levels(table: pa.Table) -> pa.ChunkedArray:
    """``poi`` for POIs; ``country``, ``region`` or ``locality`` for places and admin areas."""
    level = pc.fill_null(table.column("admin_level"), 99)
    category = pc.fill_null(table.column("category"), "")
    country = pc.or_(pc.less_equal(level, 2), pc.equal(category, "country"))
    region = pc.or_(
        pc.less_equal(level, 6), pc.is_in(category, pa.array(["state", "region", "province"]))
    )
    area = pc.if_else(country, "country", pc.if_else(region, "region", "locality"))
    poi = pc.or_(
        pc.equal(table.column("kind"), "poi"),
        pc.is_in(category, pa.array(["square", "city_block"])),
    )
    return pc.if_else(poi, "poi", area)


def _places(table: pa.Table) -> pa.Table:
    level = _place_levels(table)
    is_locality = pc.equal(level, "locality")
    return _objects(
        table.num_rows,
        level,
        lat=table.column("lat"),
        lon=table.column("lon"),
        label=table.column("name"),
        city=pc.if_else(is_locality, table.column("name"), pa.scalar(None, pa.string())),
        state=pc.if_else(
            pc.equal(level, "region"), table.column("name"), pa.scalar(None, pa.string())
        ),
        country=table.column("country"),
        ref_id=table.column("id"),
    )


def _middles(wkb: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A point halfway along each line (or along the longest piece of a multi-line), for
    ``LINES_PER_BATCH`` lines or ``BYTES_PER_BATCH`` of WKB at a time, whichever is less (a
    street grouped across a country is one long multi-line)."""
    lengths = pc.fill_null(pc.binary_length(wkb), 0).to_numpy(zero_copy_only=False)
    sizes = np.cumsum(np.asarray(lengths, dtype=np.int64))
    parts, start = [], 0
    while start < len(wkb):
        below = int(np.searchsorted(sizes, sizes[start] + BYTES_PER_BATCH - 1, side="right"))
        end = min(start + LINES_PER_BATCH, max(start + 1, below))
        parts.append(_middles_of(wkb.slice(start, end - start)))
        start = end
    if not parts:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _middles_of(wkb: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    lines = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
    merged = shapely.line_merge(lines)
    parts, owner = shapely.get_parts(merged, return_index=True)
    longest = np.zeros(len(lines), dtype=np.int64)
    order = np.lexsort((-shapely.length(parts), owner))
    first = np.r_[True, owner[order][1:] != owner[order][:-1]]
    longest[owner[order][first]] = order[first]
    middle = shapely.line_interpolate_point(parts[longest], 0.5, normalized=True)
    return shapely.get_y(middle), shapely.get_x(middle)


def _streets(table: pa.Table) -> pa.Table:
    lat, lon = _middles(table.column("geometry")) if table.num_rows else (np.zeros(0),) * 2
    return _objects(
        table.num_rows,
        "street",
        lat=lat,
        lon=lon,
        label=join(table.column("name"), table.column("locality")),
        street=table.column("name"),
        city=table.column("locality"),
        ref_id=table.column("id"),
    )


def _segments(table: pa.Table) -> pa.Table:
    lat, lon = _middles(table.column("geometry")) if table.num_rows else (np.zeros(0),) * 2
    return _objects(
        table.num_rows,
        "street",
        lat=lat,
        lon=lon,
        label=pc.coalesce(table.column("name"), table.column("road_class")),
        street=table.column("name"),
        ref_id=table.column("id"),
    )


def _connectors(table: pa.Table) -> pa.Table:
    return _objects(
        table.num_rows,
        "street",
        lat=table.column("lat"),
        lon=table.column("lon"),
        ref_id=table.column("id"),
    )


def _gazetteer(table: pa.Table) -> pa.Table:
    feature = flat(table.column("feature"))
    country, names = flat(table.column("country")), flat(table.column("name"))
    is_city, is_country = pc.equal(feature, "city"), pc.equal(feature, "country")
    regions = table.filter(pc.equal(feature, "admin1"))
    region_key = pc.binary_join_element_wise(
        regions.column("country"), regions.column("admin1"), "|"
    )
    key = pc.binary_join_element_wise(country, flat(table.column("admin1")), "|")
    state = regions.column("name").take(pc.index_in(key, value_set=flat(region_key)))
    countries = table.filter(is_country)
    country_name = countries.column("name").take(
        pc.index_in(country, value_set=flat(countries.column("country")))
    )
    none = pa.scalar(None, pa.string())
    level = pc.if_else(
        is_city,
        "locality",
        pc.if_else(
            is_country,
            "country",
            pc.if_else(
                pc.is_in(feature, pa.array(["admin1", "admin2", "continent"])),
                "region",
                "locality",
            ),
        ),
    )
    return _objects(
        table.num_rows,
        level,
        lat=table.column("lat"),
        lon=table.column("lon"),
        label=join(
            names,
            pc.if_else(is_city, flat(state), none),
            pc.if_else(is_country, none, flat(country_name)),
        ),
        city=pc.if_else(is_city, names, none),
        state=state,
        country=table.column("country"),
        ref_id=table.column("id"),
    )


@dataclass(frozen=True, kw_only=True)
class LookupIndex:
    objects: pa.Table
    """Every object of the release as a result row (``OBJECT_COLUMNS``)."""
    ids: KeyIndex
    """id → the rows of ``objects`` filed under it."""

    @classmethod
    def open(cls, folder: Path) -> LookupIndex:
        return cls(
            objects=open_table(folder, f"{PREFIX}/objects"),
            ids=KeyIndex.open(folder, f"{PREFIX}/ids"),
        )


def build_lookup_index(
    folder: Path,
    addresses: pa.Table,
    places: pa.Table,
    streets: pa.Table,
    segments: pa.Table,
    connectors: pa.Table,
    gazetteer: pa.Table,
) -> None:
    """Write every object (addresses, places and streets with their district and county, from
    the release's subdivisions index, built before this one), then file them by id from the
    written (mapped) file: the objects built in memory and the id index being built are never
    held together."""
    subdivisions = Subdivisions.open(folder)
    parts = [
        with_subdivisions(_addresses(addresses), subdivisions),
        with_subdivisions(_places(places), subdivisions),
        with_subdivisions(_streets(streets), subdivisions),
    ]
    first_segment = sum(p.num_rows for p in parts)
    parts += [_segments(segments), _connectors(connectors), _gazetteer(gazetteer)]
    write_table(folder, f"{PREFIX}/objects", pa.concat_tables(parts))
    del parts
    release_memory()
    objects = open_table(folder, f"{PREFIX}/objects")
    # segment pieces filed under their way's id too: same rows, second key
    keys = pa.chunked_array(
        [*objects.column("ref_id").chunks, *segments.column("source_id").chunks], pa.string()
    )
    rows = np.r_[np.arange(objects.num_rows), first_segment + np.arange(segments.num_rows)]
    KeyIndex.build(keys, rows).save(folder, f"{PREFIX}/ids")
