"""Forward geocoding over a chunk of records: one or more result rows per record, or an error.

Records arrive as an Arrow table with free text (``searchText``) and/or structured columns
(names compare case-insensitively). A record with every address column blank goes to the
error report as ``empty_query``; a record without any candidate is a result row with null
match fields. Identical queries in a chunk are matched once. A record may carry its own
``limit`` and search area (``in``, see :mod:`~geobatch.engines.geocode.within`). Candidates
get the district and county their point lies in, where their level is fine enough
(``subdivisions.result_subdivisions``).
"""

from __future__ import annotations

import math

import pyarrow as pa

from geobatch.engines.geocode.areas import subdivisions_index
from geobatch.engines.geocode.forward import Candidate, distance_km, forward_geocoder
from geobatch.engines.geocode.output import geocode_table
from geobatch.engines.geocode.within import SEARCH_WIDTH, read_filters
from geobatch.engines.result import ERROR_COLUMNS, EngineResult
from geobatch.reference import Release
from geobatch.reference.indexes.subdivisions import with_subdivisions

FIELD_COLUMNS = {
    "street": "street",
    "housenumber": "house_number",
    "postalcode": "postcode",
    "city": "city",
    "county": "county",
    "state": "state",
    "country": "country",
}
"""Input column (lower case) -> ``parse_fields`` argument."""


def _columns(records: pa.Table) -> dict[str, list[object]]:
    wanted = {"searchtext", "limit", "in", *FIELD_COLUMNS}
    return {
        name.lower(): records.column(name).to_pylist()
        for name in records.column_names
        if name.lower() in wanted
    }


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def geocode_records(
    records: pa.Table,
    release: Release,
    *,
    truncate_at: int = 1,
    country: str | None = None,
    at: tuple[float, float] | None = None,
) -> EngineResult:
    """Geocode every record of the chunk against ``release``."""
    geocoder = forward_geocoder(release)
    columns = _columns(records)
    ordinals = records.column("_ordinal").to_pylist()
    rec_ids = records.column("recId").to_pylist()
    texts = columns.get("searchtext", [None] * records.num_rows)
    rows: dict[str, list[object]] = {name: [] for name in _RESULT_FIELDS}
    errors: dict[str, list[object]] = {field.name: [] for field in ERROR_COLUMNS}
    memo: dict[tuple[object, ...], list[Candidate]] = {}
    filters = read_filters(columns.get("limit"), columns.get("in"), records.num_rows)
    for position, (ordinal, rec_id) in enumerate(zip(ordinals, rec_ids, strict=True)):
        text = _text(texts[position])
        fields = {
            argument: _text(columns[column][position])
            for column, argument in FIELD_COLUMNS.items()
            if column in columns
        }
        key = (text, *fields.values())
        problem = filters.error[position]
        if problem is None and all(part is None for part in key):
            problem_code, message = "empty_query", "searchText and every address field are empty"
        elif problem is not None:
            problem_code, message = problem.code, str(problem)
        else:
            problem_code = message = ""
        if problem_code:
            for name, value in zip(
                ("_ordinal", "recId", "code", "message", "input"),
                (ordinal, rec_id, problem_code, message, None),
                strict=True,
            ):
                errors[name].append(value)
            continue
        limit = int(filters.limit[position]) or truncate_at
        area = filters.area[position]
        memo_key = (*key, limit, area)
        found = memo.get(memo_key)
        if found is None:
            if area is None:
                found = geocoder.geocode(text, fields=fields, country=country, at=at, limit=limit)
            else:
                wide = geocoder.geocode(
                    text, fields=fields, country=country, at=at, limit=max(limit, SEARCH_WIDTH)
                )
                found = [c for c in wide if area.contains(c.lat, c.lon, c.country)][:limit]
            memo[memo_key] = found
        _append(rows, ordinal, rec_id, found, at)
    return EngineResult(
        results=with_subdivisions(geocode_table(rows), subdivisions_index(release)),
        errors=pa.table(errors, schema=ERROR_COLUMNS),
    )


_RESULT_FIELDS = (
    "_ordinal",
    "recId",
    "seqNumber",
    "seqLength",
    "lat",
    "lon",
    "label",
    "houseNumber",
    "street",
    "postalCode",
    "city",
    "state",
    "country",
    "match_level",
    "confidence",
    "distance_m",
    "ref_id",
)


def _append(
    rows: dict[str, list[object]],
    ordinal: object,
    rec_id: object,
    found: list[Candidate],
    at: tuple[float, float] | None,
) -> None:
    if not found:
        for name in _RESULT_FIELDS:
            rows[name].append(None)
        rows["_ordinal"][-1], rows["recId"][-1] = ordinal, rec_id
        rows["seqNumber"][-1] = rows["seqLength"][-1] = 0
        return
    for sequence, candidate in enumerate(found, start=1):
        distance = (
            distance_km(at[1], at[0], candidate.lon, candidate.lat) * 1000.0
            if at is not None
            else None
        )
        values = (
            ordinal,
            rec_id,
            sequence,
            len(found),
            candidate.lat,
            candidate.lon,
            candidate.label,
            candidate.house_number,
            candidate.street,
            candidate.postal_code,
            candidate.city,
            candidate.state,
            candidate.country,
            candidate.match_level,
            candidate.confidence,
            distance,
            candidate.ref_id,
        )
        for name, value in zip(_RESULT_FIELDS, values, strict=True):
            rows[name].append(value)
