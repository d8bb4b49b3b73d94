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
from collections.abc import Sequence
from operator import attrgetter

import pyarrow as pa

from geobatch.engines.geocode.areas import subdivisions_index
from geobatch.engines.geocode.bounds import distance_km
from geobatch.engines.geocode.forward import Candidate, ForwardGeocoder, forward_geocoder
from geobatch.engines.geocode.output import geocode_table
from geobatch.engines.geocode.within import SEARCH_WIDTH, Area, read_filters
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
    size = records.num_rows
    texts = [_text(value) for value in columns.get("searchtext", [None] * size)]
    given = [
        (argument, columns[column])
        for column, argument in FIELD_COLUMNS.items()
        if column in columns
    ]
    filters = read_filters(columns.get("limit"), columns.get("in"), size)
    answered: list[int] = []
    answers: list[list[Candidate]] = []
    failed: list[tuple[int, str, str]] = []
    memo: dict[tuple[object, ...], list[Candidate]] = {}
    limits = filters.limit.tolist()  # read as Python integers once, not one by one
    for position, text in enumerate(texts):
        fields = {argument: _text(values[position]) for argument, values in given}
        problem = filters.error[position]
        if problem is not None:
            failed.append((position, problem.code, str(problem)))
            continue
        if text is None and not any(fields.values()):
            failed.append((position, *_EMPTY))
            continue
        limit = limits[position] or truncate_at
        area = filters.area[position]
        key = (text, *fields.values(), limit, area)
        found = memo.get(key)
        if found is None:
            found = memo[key] = _geocode(geocoder, text, fields, country, at, limit, area)
        answered.append(position)
        answers.append(found)
    return EngineResult(
        results=with_subdivisions(
            geocode_table(_result_rows(records, answered, answers, at)), subdivisions_index(release)
        ),
        errors=_errors(records, failed),
    )


_EMPTY = ("empty_query", "searchText and every address field are empty")


def _geocode(
    geocoder: ForwardGeocoder,
    text: str | None,
    fields: dict[str, str | None],
    country: str | None,
    at: tuple[float, float] | None,
    limit: int,
    area: Area | None,
) -> list[Candidate]:
    """One record's candidates; with an area, a wider search whose candidates outside it are
    dropped."""
    if area is None:
        return geocoder.geocode(text, fields=fields, country=country, at=at, limit=limit)
    wide = geocoder.geocode(
        text, fields=fields, country=country, at=at, limit=max(limit, SEARCH_WIDTH)
    )
    return [c for c in wide if area.contains(c.lat, c.lon, c.country)][:limit]


def _errors(records: pa.Table, failed: list[tuple[int, str, str]]) -> pa.Table:
    """The error report of the records in ``failed`` (position, code, message)."""
    ordinals, rec_ids = _ids(records, [position for position, _, _ in failed])
    return pa.table(
        {
            "_ordinal": ordinals,
            "recId": rec_ids,
            "code": [code for _, code, _ in failed],
            "message": [message for _, _, message in failed],
            "input": [None] * len(failed),
        },
        schema=ERROR_COLUMNS,
    )


def _ids(records: pa.Table, positions: list[int]) -> tuple[list[object], list[object]]:
    """The ``_ordinal`` and ``recId`` of the records at ``positions``."""
    ordinals = records.column("_ordinal").to_pylist()
    rec_ids = records.column("recId").to_pylist()
    return [ordinals[p] for p in positions], [rec_ids[p] for p in positions]


_RESULT_COLUMNS = {
    "lat": "lat",
    "lon": "lon",
    "label": "label",
    "house_number": "houseNumber",
    "street": "street",
    "postal_code": "postalCode",
    "city": "city",
    "state": "state",
    "country": "country",
    "match_level": "match_level",
    "confidence": "confidence",
    "ref_id": "ref_id",
}
"""The result column of each ``Candidate`` field written out."""
_CANDIDATE_FIELDS = tuple(_RESULT_COLUMNS)
_RESULT_FIELDS = tuple(_RESULT_COLUMNS.values())
_NO_MATCH = (None,) * len(_CANDIDATE_FIELDS)


def _result_rows(
    records: pa.Table,
    answered: list[int],
    answers: list[list[Candidate]],
    at: tuple[float, float] | None,
) -> dict[str, Sequence[object]]:
    """Result columns: each answered record's candidates, one row each, or one empty row.

    The candidates' fields are read row by row in one pass and turned into columns at once,
    so that a chunk costs one small tuple per candidate.
    """
    owner: list[int] = []
    sequence: list[int] = []
    length: list[int] = []
    flat: list[Candidate | None] = []
    for position, found in zip(answered, answers, strict=True):
        if not found:
            owner.append(position)
            sequence.append(0)
            length.append(0)
            flat.append(None)
            continue
        count = len(found)
        owner.extend([position] * count)
        sequence.extend(range(1, count + 1))
        length.extend([count] * count)
        flat.extend(found)
    read = attrgetter(*_CANDIDATE_FIELDS)
    values = [_NO_MATCH if candidate is None else read(candidate) for candidate in flat]
    columns = list(zip(*values, strict=True)) if values else [()] * len(_RESULT_FIELDS)
    ordinals, rec_ids = _ids(records, owner)
    return {
        "_ordinal": ordinals,
        "recId": rec_ids,
        "seqNumber": sequence,
        "seqLength": length,
        **dict(zip(_RESULT_FIELDS, columns, strict=True)),
        "distance_m": _distances(flat, at),
    }


def _distances(found: list[Candidate | None], at: tuple[float, float] | None) -> list[float | None]:
    """Each candidate's distance from ``at`` in metres (all null without ``at``)."""
    if at is None:
        return [None] * len(found)
    return [None if c is None else distance_km(at[1], at[0], c.lon, c.lat) * 1000.0 for c in found]
