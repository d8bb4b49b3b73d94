"""Lookup: the reference objects a release keeps under an id, for whole chunks of ids.

Every row of every table is turned once per process into a result row (``GEOCODE_COLUMNS``)
and filed under its ``id`` (``osm:node/1``, ``osm:way/2:0``, a GERS id, ``geonames:..``,
``street:..``); road segments are filed under their source way's id too, so ``osm:way/2``
finds every piece of that way. Answering is a dictionary probe per id and one ``take``.
An id can name several objects (an OSM node that is both an address and a POI): all are
returned, addresses first, up to ``limit``. An unknown id is answered with null match fields.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.engines.geocode.checks import split_invalid
from geobatch.engines.geocode.output import GEOCODE_COLUMNS
from geobatch.engines.geocode.reverse_index import house_label, join, text
from geobatch.engines.result import EngineResult
from geobatch.engines.schemas import RECORD_SCHEMAS
from geobatch.engines.validate import _column
from geobatch.reference import Release

DEFAULT_LIMIT = 10
OBJECT_COLUMNS = [
    f for f in GEOCODE_COLUMNS if f.name not in ("_ordinal", "recId", "seqNumber", "seqLength")
]


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
    return pa.Table.from_arrays(arrays, schema=pa.schema(OBJECT_COLUMNS))


def _addresses(release: Release) -> pa.Table:
    table = release.table("addresses")
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


def _places(release: Release) -> pa.Table:
    table = release.table("places")
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
    """A point halfway along each line (or along the longest piece of a multi-line)."""
    lines = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
    merged = shapely.line_merge(lines)
    parts, owner = shapely.get_parts(merged, return_index=True)
    longest = np.zeros(len(lines), dtype=np.int64)
    order = np.lexsort((-shapely.length(parts), owner))
    first = np.r_[True, owner[order][1:] != owner[order][:-1]]
    longest[owner[order][first]] = order[first]
    middle = shapely.line_interpolate_point(parts[longest], 0.5, normalized=True)
    return shapely.get_y(middle), shapely.get_x(middle)


def _streets(release: Release) -> pa.Table:
    table = release.table("streets")
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


def _segments(release: Release) -> pa.Table:
    table = release.table("segments")
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


def _connectors(release: Release) -> pa.Table:
    table = release.table("connectors")
    return _objects(
        table.num_rows,
        "street",
        lat=table.column("lat"),
        lon=table.column("lon"),
        ref_id=table.column("id"),
    )


def _gazetteer(release: Release) -> pa.Table:
    table = release.table("gazetteer")
    feature = table.column("feature").to_pylist()
    country = table.column("country").to_pylist()
    admin1 = table.column("admin1").to_pylist()
    names = table.column("name").to_pylist()
    regions = {
        (c, a): n
        for f, c, a, n in zip(feature, country, admin1, names, strict=True)
        if f == "admin1"
    }
    countries = {c: n for f, c, n in zip(feature, country, names, strict=True) if f == "country"}
    state = [regions.get((c, a)) for c, a in zip(country, admin1, strict=True)]
    country_name = [
        countries.get(c) if f != "country" else None for f, c in zip(feature, country, strict=True)
    ]
    levels = {"city": "locality", "admin1": "region", "country": "country"}
    is_city = [f == "city" for f in feature]
    return _objects(
        table.num_rows,
        pa.array([levels.get(f, "locality") for f in feature], pa.string()),
        lat=table.column("lat"),
        lon=table.column("lon"),
        label=join(
            table.column("name"),
            pa.array(
                [s if f == "city" else None for s, f in zip(state, feature, strict=True)],
                pa.string(),
            ),
            pa.array(country_name, pa.string()),
        ),
        city=pa.array([n if c else None for n, c in zip(names, is_city, strict=True)], pa.string()),
        state=pa.array(state, pa.string()),
        country=table.column("country"),
        ref_id=table.column("id"),
    )


@dataclass(frozen=True, kw_only=True)
class LookupIndex:
    objects: pa.Table
    """Every object of the release as a result row (``OBJECT_COLUMNS``)."""
    codes: dict[str, int]
    """id → its group: the objects filed under it are ``order[starts[g]:starts[g + 1]]``."""
    order: np.ndarray
    starts: np.ndarray

    @classmethod
    def build(cls, release: Release) -> LookupIndex:
        parts = [
            _addresses(release),
            _places(release),
            _streets(release),
            _segments(release),
            _connectors(release),
            _gazetteer(release),
        ]
        objects = pa.concat_tables(parts)
        segments = release.table("segments")
        # segment pieces filed under their way's id too: same rows, second key
        first_segment = sum(p.num_rows for p in parts[:3])
        keys = pa.chunked_array(
            [*objects.column("ref_id").chunks, *segments.column("source_id").chunks],
            pa.string(),
        )
        rows = np.r_[np.arange(objects.num_rows), first_segment + np.arange(segments.num_rows)]
        unique = pc.unique(keys)
        group = np.asarray(pc.index_in(keys, value_set=unique))
        order = np.argsort(group, kind="stable")
        starts = np.searchsorted(group[order], np.arange(len(unique) + 1))
        return cls(
            objects=objects,
            codes={key: code for code, key in enumerate(unique.to_pylist())},
            order=rows[order],
            starts=starts,
        )

    def find(self, ids: list[str | None], limit: int = DEFAULT_LIMIT) -> pa.Table:
        """Result rows (``GEOCODE_COLUMNS``) for each id, ``_ordinal`` its position in ``ids``."""
        codes = np.array(
            [self.codes.get(i.strip(), -1) if i is not None else -1 for i in ids], dtype=np.int64
        )
        known = codes >= 0
        counts = np.where(known, self.starts[codes + 1] - self.starts[np.maximum(codes, 0)], 0)
        counts = np.minimum(counts, limit)
        shown = np.maximum(counts, 1)  # an unknown id still gets its one empty row
        query = np.repeat(np.arange(len(ids)), shown)
        seq = np.arange(len(query)) - np.repeat(np.cumsum(shown) - shown, shown)
        found = np.repeat(known, shown)
        at = np.where(found, self.starts[np.maximum(codes, 0)][query] + seq, 0)
        # a null index takes a row of nulls: the unknown ids' empty rows
        indices = pa.array(self.order[at] if len(self.order) else at, mask=~found)
        rows = self.objects.take(indices)
        columns = {
            "_ordinal": pa.array(query, pa.int64()),
            "recId": pa.nulls(len(query), pa.string()),
            "seqNumber": pa.array(np.where(found, seq + 1, 0), pa.int32()),
            "seqLength": pa.array(np.repeat(counts, shown), pa.int32()),
        }
        return pa.Table.from_arrays(
            [
                columns[f.name] if f.name in columns else rows.column(f.name)
                for f in GEOCODE_COLUMNS
            ],
            schema=GEOCODE_COLUMNS,
        )


_CACHE: dict[tuple[str, str], LookupIndex] = {}
_LOCK = threading.Lock()


def lookup_index(release: Release) -> LookupIndex:
    """The release's id index, built on first use and kept for the life of the process."""
    key = (release.manifest.id, str(release.path))
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = LookupIndex.build(release)
        return found


def lookup(release: Release, ids: list[str | None], limit: int = DEFAULT_LIMIT) -> pa.Table:
    return lookup_index(release).find(ids, limit)


def lookup_records(records: pa.Table, release: Release, limit: int) -> EngineResult:
    """A chunk of ``id`` records: blank ids go to the error report, the rest are looked up."""
    valid, errors = split_invalid(records, RECORD_SCHEMAS["lookup"])
    kept = records.filter(pa.array(valid))
    column = _column(kept, "id")
    ids = pc.cast(column, pa.string()).to_pylist() if column is not None else []
    found = lookup(release, ids, limit)
    position = found.column("_ordinal").to_numpy()
    results = found.set_column(0, "_ordinal", kept.column("_ordinal").take(position))
    results = results.set_column(1, "recId", kept.column("recId").take(position).cast(pa.string()))
    return EngineResult(results=results, errors=errors)
