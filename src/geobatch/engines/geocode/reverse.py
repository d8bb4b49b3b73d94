"""Reverse geocoding: what is at (or nearest to) each point of a chunk, all points at once.

Levels, most precise first: the nearest address point within ``radius_m``
(``houseNumber``); else the nearest named street within ``street_radius_m``, projected onto
it, with a house number interpolated between the numbered neighbours on the same side of the
same block where there are some (``interpolated``) or without one (``street``); else the
locality the point lies in or near, the region, the country. A point with none of them (open
sea) is answered with one row of null match fields, never an error. With ``limit`` above 1 a
point gets the nearest addresses in order, then its street, then its area.

Confidence falls with distance from each level's best case: it is high for an address a few
metres away with no other address nearly as near, and low for a country guessed from the
nearest town. The address level's constants were fitted so that a band of confidence is right
about that often (``evals/reverse.py`` prints the table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from geobatch.engines.geocode.areas import NULL
from geobatch.engines.geocode.checks import split_invalid
from geobatch.engines.geocode.output import GEOCODE_COLUMNS
from geobatch.engines.geocode.reverse_index import (
    ReverseIndex,
    house_label,
    interpolate,
    join,
    nearest_edges,
    reverse_index,
)
from geobatch.engines.geocode.spatial import sphere_latlon, sphere_xyz
from geobatch.engines.geocode.within import SEARCH_WIDTH, RecordFilters, read_filters
from geobatch.engines.result import ERROR_COLUMNS, EngineResult, empty_errors
from geobatch.engines.schemas import RECORD_SCHEMAS
from geobatch.engines.validate import _as_numbers, _column
from geobatch.reference import Release

DEFAULT_RADIUS_M = 50.0
DEFAULT_STREET_RADIUS_M = 250.0
CONFIDENCE = {
    # level: (confidence at distance 0, metres over which it falls by a factor e)
    "houseNumber": (98.0, 40.0),
    "interpolated": (80.0, 80.0),
    "street": (65.0, 150.0),
    "locality": (40.0, 5_000.0),
    "region": (20.0, 1e9),
    "country": (10.0, 1e9),
}
ADDRESS_NEIGHBOURS = 3
"""Addresses looked at per point: the nearest and whether another is nearly as near."""
AMBIGUITY = 0.7
AMBIGUITY_SCALE_M = 5.0
"""An address whose nearest rival is this much farther is taken as clearly the one."""
_RANK_STREET = 1_000
_RANK_AREA = 2_000


@dataclass(frozen=True, kw_only=True)
class ReverseSettings:
    radius_m: float = DEFAULT_RADIUS_M
    street_radius_m: float = DEFAULT_STREET_RADIUS_M
    limit: int = 1


def confidence(level: str, distance: np.ndarray) -> np.ndarray:
    base, scale = CONFIDENCE[level]
    value = base * np.exp(-np.nan_to_num(distance, nan=0.0) / scale)
    return np.asarray(np.clip(np.round(value), 0, 100), dtype=np.int32)


def _candidates(
    query: np.ndarray,
    rank: int,
    level: str | np.ndarray | None,
    distance: np.ndarray,
    scores: np.ndarray | None = None,
    **columns: object,
) -> pa.Table:
    """Rows for the points ``query``: at one level (or one per row, or none: no match), with
    ``scores`` as confidence (by default the level's from distance); missing columns null."""
    size = len(query)
    if isinstance(level, str):
        scores = confidence(level, distance) if scores is None else scores
        level = np.full(size, level, dtype=object)
    data: dict[str, object] = {
        "_ordinal": query.astype(np.int64),
        "_rank": np.full(size, rank, dtype=np.int64),
        "match_level": level,
        "confidence": scores,
        "distance_m": distance,
        **columns,
    }
    fields = [pa.field("_rank", pa.int64()), *GEOCODE_COLUMNS]
    return pa.Table.from_arrays(
        [_array(data.get(f.name), f.type, size) for f in fields], schema=pa.schema(fields)
    )


def _array(value: object, kind: pa.DataType, size: int) -> pa.Array:
    """One column as an Arrow array of ``kind``; NaN distances become nulls."""
    if value is None:
        return pa.nulls(size, kind)
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks().cast(kind)
    if isinstance(value, pa.Array):
        return value.cast(kind)
    return pa.array(value, type=kind, from_pandas=True)


def _address_rows(
    index: ReverseIndex, xyz: np.ndarray, settings: ReverseSettings
) -> list[pa.Table]:
    points = index.addresses
    if not len(points.key):
        return []
    k = max(settings.limit, ADDRESS_NEIGHBOURS)
    distance, found = points.points.query(xyz, k=k, distance_upper_bound=settings.radius_m)
    found = np.minimum(found, len(points.key) - 1)
    tables = []
    for rank in range(settings.limit):
        query = np.flatnonzero(np.isfinite(distance[:, rank]))
        row = found[query, rank]
        first = rank == 0
        tables.append(
            _candidates(
                query,
                rank,
                "houseNumber",
                distance[query, rank],
                _address_confidence(points.key, distance[query], found[query]) if first else None,
                lat=points.lat[row],
                lon=points.lon[row],
                **dict(zip(points.rows.column_names, points.rows.take(row).columns, strict=True)),
            )
        )
    return tables


def _address_confidence(key: np.ndarray, distance: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The nearest address's confidence: lower when it is farther, and lower when another
    address is nearly as near (the point could as well belong to that one)."""
    other = np.where(key[found] != key[found[:, :1]], distance, np.inf)
    margin = np.min(other, axis=1) - distance[:, 0]
    doubt = AMBIGUITY * np.exp(-np.nan_to_num(margin, posinf=1e9) / AMBIGUITY_SCALE_M)
    return np.asarray(
        np.round(confidence("houseNumber", distance[:, 0]) * (1 - doubt)), dtype=np.int32
    )


def _street_rows(
    index: ReverseIndex, xyz: np.ndarray, query: np.ndarray, settings: ReverseSettings
) -> tuple[pa.Table | None, np.ndarray]:
    """Street candidates for the points ``query``, and which of them found one."""
    edges = index.streets
    edge, distance, projected = nearest_edges(edges, xyz[query], settings.street_radius_m)
    hit = edge >= 0
    if not hit.any():
        return None, hit
    edge, distance, projected = edge[hit], distance[hit], projected[hit]
    number = interpolate(edges, xyz[query][hit], edge, projected)
    rows = edges.rows.take(edges.segment[edge])
    lat, lon = sphere_latlon(projected)
    numbered = number >= 0
    house = pa.array(number, mask=~numbered).cast(pa.string())
    street = rows.column("street")
    label = join(house_label(street, house, rows.column("country")), rows.column("city"))
    table = _candidates(
        query[hit],
        _RANK_STREET,
        np.where(numbered, "interpolated", "street"),
        distance,
        np.where(numbered, confidence("interpolated", distance), confidence("street", distance)),
        lat=lat,
        lon=lon,
        label=label,
        houseNumber=house,
        **{
            name: rows.column(name)
            for name in ("street", "city", "district", "county", "state", "country", "ref_id")
        },
    )
    return table, hit


def _area_rows(
    index: ReverseIndex, lat: np.ndarray, lon: np.ndarray, query: np.ndarray
) -> list[pa.Table]:
    areas = index.areas
    places = areas.places
    hits = areas.resolve(lat[query], lon[query])
    district, county = index.subdivisions.resolve(lat[query], lon[query])
    country_name = index.country_name(hits.country)
    city = places.labels_at("name", hits.city)
    tables = []
    local = np.flatnonzero(hits.locality >= 0)
    if len(local):
        place = hits.locality[local]
        name = places.labels_at("name", place)
        city_here = city[local]
        other_city = np.where(city_here == name, NULL, city_here)
        tables.append(
            _candidates(
                query[local],
                _RANK_AREA,
                "locality",
                hits.locality_distance[local],
                lat=places.lat[place],
                lon=places.lon[place],
                label=join(
                    pa.array(name, pa.string()),
                    pa.array(other_city, pa.string()),
                    pa.array(hits.state[local], pa.string()),
                    pa.array(country_name[local], pa.string()),
                ),
                city=np.where(city_here == None, name, city_here),  # noqa: E711
                district=district[local],
                county=county[local],
                state=hits.state[local],
                country=hits.country[local],
                ref_id=places.labels_at("id", place),
            )
        )
    no_locality = hits.locality < 0
    is_region = no_locality & hits.region_known & (hits.state != None)  # noqa: E711
    region = np.flatnonzero(is_region)
    if len(region):
        tables.append(
            _candidates(
                query[region],
                _RANK_AREA,
                "region",
                np.full(len(region), np.nan),
                label=join(
                    pa.array(hits.state[region], pa.string()),
                    pa.array(country_name[region], pa.string()),
                ),
                county=county[region],
                state=hits.state[region],
                country=hits.country[region],
            )
        )
    country = np.flatnonzero(no_locality & ~is_region & (hits.country != None))  # noqa: E711
    if len(country):
        tables.append(
            _candidates(
                query[country],
                _RANK_AREA,
                "country",
                np.full(len(country), np.nan),
                label=country_name[country],
                country=hits.country[country],
            )
        )
    return tables


def _ranked(tables: list[pa.Table], size: int, limit: int) -> pa.Table:
    """Candidates best first per point, cut to ``limit``; one empty row for unanswered points."""
    found = pa.concat_tables(tables) if tables else None
    if found is not None and found.num_rows:
        found = found.sort_by([("_ordinal", "ascending"), ("_rank", "ascending")])
        ordinal = found.column("_ordinal").to_numpy()
        starts = np.flatnonzero(np.r_[True, ordinal[1:] != ordinal[:-1]])
        counts = np.diff(np.r_[starts, len(ordinal)])
        seq = np.arange(len(ordinal)) - np.repeat(starts, counts) + 1
        length = np.minimum(np.repeat(counts, counts), limit)
        keep = seq <= limit
        found = found.filter(pa.array(keep))
        found = found.set_column(
            found.schema.get_field_index("seqNumber"), "seqNumber", pa.array(seq[keep], pa.int32())
        )
        found = found.set_column(
            found.schema.get_field_index("seqLength"),
            "seqLength",
            pa.array(length[keep], pa.int32()),
        )
        answered = np.zeros(size, dtype=bool)
        answered[ordinal] = True
    else:
        found = None
        answered = np.zeros(size, dtype=bool)
    missing = np.flatnonzero(~answered)
    zeros = np.zeros(len(missing), dtype=np.int32)
    empty = _candidates(
        missing, 0, None, np.full(len(missing), np.nan), seqNumber=zeros, seqLength=zeros
    )
    result = pa.concat_tables([t for t in (found, empty) if t is not None])
    return result.sort_by([("_ordinal", "ascending"), ("seqNumber", "ascending")]).drop_columns(
        "_rank"
    )


def reverse_geocode(
    release: Release,
    lat: np.ndarray,
    lon: np.ndarray,
    settings: ReverseSettings | None = None,
) -> pa.Table:
    """Result rows in ``GEOCODE_COLUMNS`` for valid coordinates; ``_ordinal`` is the point's
    position in ``lat``/``lon`` and ``recId`` is left null for the caller to fill."""
    settings = settings or ReverseSettings()
    index = reverse_index(release)
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    size = len(lat)
    xyz = sphere_xyz(lat, lon)
    tables = _address_rows(index, xyz, settings)
    answered = np.zeros(size, dtype=bool)
    if tables:
        answered[tables[0].column("_ordinal").to_numpy()] = True
    single = settings.limit == 1
    query = np.flatnonzero(~answered) if single else np.arange(size)
    streets, hit = _street_rows(index, xyz, query, settings)
    if streets is not None:
        tables.append(streets)
        answered[query[hit]] = True
    area_query = np.flatnonzero(~answered) if single else np.arange(size)
    tables.extend(_area_rows(index, lat, lon, area_query))
    return _ranked(tables, size, settings.limit)


def _coordinates(records: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    def numbers(name: str) -> np.ndarray:
        column = _column(records, name)
        return np.full(records.num_rows, np.nan) if column is None else _as_numbers(column)

    return numbers("lat"), numbers("lon")


def _narrowed(found: pa.Table, filters: RecordFilters, default_limit: int) -> pa.Table:
    """Each point's candidates cut to its own ``limit`` and area, renumbered; a point left
    without any gets the one empty row."""
    ordinal = found.column("_ordinal").to_numpy()
    keep = found.column("seqNumber").to_numpy() > 0
    if any(area is not None for area in filters.area):
        lat = found.column("lat").to_pylist()
        lon = found.column("lon").to_pylist()
        country = found.column("country").to_pylist()
        for row in np.flatnonzero(keep):
            area = filters.area[ordinal[row]]
            if area is not None and not area.contains(lat[row], lon[row], country[row]):
                keep[row] = False
    limit = np.where(filters.limit > 0, filters.limit, default_limit)
    kept = np.flatnonzero(keep)
    starts = (
        np.flatnonzero(np.r_[True, ordinal[kept][1:] != ordinal[kept][:-1]]) if len(kept) else kept
    )
    counts = np.diff(np.r_[starts, len(kept)])
    rank = np.arange(len(kept)) - np.repeat(starts, counts) + 1
    within = rank <= limit[ordinal[kept]]
    kept, rank = kept[within], rank[within]
    length = np.bincount(ordinal[kept], minlength=len(limit))
    answered = found.take(pa.array(kept, pa.int64()))
    answered = answered.set_column(
        answered.schema.get_field_index("seqNumber"), "seqNumber", pa.array(rank, pa.int32())
    )
    answered = answered.set_column(
        answered.schema.get_field_index("seqLength"),
        "seqLength",
        pa.array(length[ordinal[kept]], pa.int32()),
    )
    missing = np.flatnonzero(length == 0)
    zeros = np.zeros(len(missing), dtype=np.int32)
    empty = _candidates(
        missing, 0, None, np.full(len(missing), np.nan), seqNumber=zeros, seqLength=zeros
    ).drop_columns("_rank")
    result = pa.concat_tables([answered, empty.cast(answered.schema)])
    return result.sort_by([("_ordinal", "ascending"), ("seqNumber", "ascending")])


def reverse_records(records: pa.Table, release: Release, settings: ReverseSettings) -> EngineResult:
    """A chunk of ``lat``/``lon`` records: bad coordinates go to the error report.

    Only records whose coordinates are not plainly in range are checked by the ``validate``
    rules, which word the reason; a chunk of good records skips that per-record pass. A
    record may carry its own ``limit`` and area (``in``): one that cannot be read is an error.
    """
    lat, lon = _coordinates(records)
    with np.errstate(invalid="ignore"):
        fine = (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    errors = empty_errors()
    if not fine.all():
        doubtful = np.flatnonzero(~fine)
        valid, errors = split_invalid(records.take(doubtful), RECORD_SCHEMAS["reverse_geocode"])
        fine[doubtful[valid]] = True
    filters = _filters(records)
    if filters is not None:
        bad = np.flatnonzero(fine & np.array([e is not None for e in filters.error]))
        if len(bad):
            errors = pa.concat_tables([errors, _filter_errors(records, filters, bad)])
            fine[bad] = False
    keep = np.flatnonzero(fine)
    if filters is not None and filters.any:
        kept = RecordFilters(
            limit=filters.limit[keep],
            area=[filters.area[i] for i in keep],
            error=[None] * len(keep),
        )
        wide = max(settings.limit, int(kept.limit.max(initial=0)))
        if any(area is not None for area in kept.area):
            wide = max(wide, SEARCH_WIDTH)
        searched = ReverseSettings(
            radius_m=settings.radius_m, street_radius_m=settings.street_radius_m, limit=wide
        )
        found = _narrowed(
            reverse_geocode(release, lat[keep], lon[keep], searched), kept, settings.limit
        )
    else:
        found = reverse_geocode(release, lat[keep], lon[keep], settings)
    position = keep[found.column("_ordinal").to_numpy()]
    results = found.set_column(0, "_ordinal", records.column("_ordinal").take(position))
    results = results.set_column(
        1, "recId", records.column("recId").take(position).cast(pa.string())
    )
    return EngineResult(results=results, errors=errors)


def _filters(records: pa.Table) -> RecordFilters | None:
    limits, areas = _column(records, "limit"), _column(records, "in")
    if limits is None and areas is None:
        return None
    return read_filters(
        limits.to_pylist() if limits is not None else None,
        areas.to_pylist() if areas is not None else None,
        records.num_rows,
    )


def _filter_errors(records: pa.Table, filters: RecordFilters, rows: np.ndarray) -> pa.Table:
    problems = [filters.error[row] for row in rows]
    taken = pa.array(rows, pa.int64())
    return pa.table(
        {
            "_ordinal": records.column("_ordinal").take(taken),
            "recId": records.column("recId").take(taken).cast(pa.string()),
            "code": [p.code if p else None for p in problems],
            "message": [str(p) if p else None for p in problems],
            "input": pa.nulls(len(rows), pa.string()),
        },
        schema=ERROR_COLUMNS,
    )
