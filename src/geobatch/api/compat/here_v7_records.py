"""HERE Batch v7 record lines to and from geobatch's own columns, streamed.

Input: one record a line, fields split on the job's input delimiter (no quoting), header from
``inputColumns`` or the first line. Each line becomes a CSV row with geobatch's column names
(``q`` is ``searchText``, ``at`` splits into ``lat`` and ``lon``, ``qq`` into address fields).
Output: result rows become lines of the requested ``outputColumns`` in HERE's names.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from geobatch.errors import InvalidInput

ADDRESS_COLUMNS = ("street", "houseNumber", "postalCode", "city", "county", "state", "country")
NATIVE_INPUT: dict[str, tuple[str, ...]] = {
    "geocode": ("searchText", *ADDRESS_COLUMNS),
    "reverse_geocode": ("lat", "lon"),
    "lookup": ("id",),
}
"""The geobatch columns a job of each type gets, after ``recId`` when the input has one."""

PER_RECORD = ("in", "limit", "lang")
"""HERE per-record parameters that records pass on as they are: the engines read a record's
own area, number of candidates and language from columns of these names (lookup: ``lang``)."""
LOOKUP_PER_RECORD = ("lang",)
IGNORED_INPUT = frozenset({"types", "politicalView", "show", "with"})
"""HERE per-record parameters that are accepted but have no geobatch counterpart."""

_RESULT_TYPES = {
    "houseNumber": "houseNumber",
    "interpolated": "houseNumber",
    "street": "street",
    "poi": "place",
    "locality": "locality",
    "region": "administrativeArea",
    "country": "administrativeArea",
}
"""geobatch ``match_level`` -> HERE ``resultType``."""

Row = dict[str, str]


def _score(row: Row) -> str:
    confidence = row.get("confidence") or ""
    return f"{int(confidence) / 100:.2f}" if confidence else ""


def _distance(row: Row) -> str:
    value = row.get("distance_m") or ""
    return str(round(float(value))) if value else ""


def _column(name: str) -> Callable[[Row], str]:
    return lambda row: row.get(name) or ""


OUTPUT_COLUMNS: dict[str, Callable[[Row], str]] = {
    "positionLatitude": _column("lat"),
    "positionLongitude": _column("lon"),
    "accessLatitude": _column("lat"),
    "accessLongitude": _column("lon"),
    "title": _column("label"),
    "label": _column("label"),
    "id": _column("ref_id"),
    "queryScore": _score,
    "resultType": lambda row: _RESULT_TYPES.get(row.get("match_level") or "", ""),
    "houseNumber": _column("houseNumber"),
    "street": _column("street"),
    "postalCode": _column("postalCode"),
    "postcode": _column("postalCode"),
    "district": _column("district"),
    "city": _column("city"),
    "county": _column("county"),
    "state": _column("state"),
    "country": _column("country"),
    "countryName": _column("country"),
    "distance": _distance,
}
"""HERE output column -> its value from a geobatch result row. There are no separate access
points: an address point is its own access point."""

GROUPS = {
    "position": ("positionLatitude", "positionLongitude"),
    "access": ("accessLatitude", "accessLongitude"),
    "address": (
        "label",
        "houseNumber",
        "street",
        "postalCode",
        "district",
        "city",
        "county",
        "state",
        "country",
    ),
}
DEFAULT_OUTPUT = "recId|seqNumber|seqLength|position|title|resultType|queryScore|id"
LEADING = ("recId", "seqNumber", "seqLength")


@dataclass(frozen=True, kw_only=True)
class RecordFormat:
    """How one job's records are written: delimiters, columns and output type."""

    job_type: str
    input_delimiter: str = "|"
    input_columns: tuple[str, ...] | None = None
    output_delimiter: str = "|"
    output_columns: tuple[str, ...] = ()
    output_type: str = "csv"


def output_columns(raw: str | None, delimiter: str) -> tuple[str, ...]:
    """The requested output columns with groups expanded; unknown names are refused."""
    names: list[str] = []
    for name in (raw or DEFAULT_OUTPUT).split(delimiter):
        name = name.strip()
        if name in LEADING or not name:
            continue
        expanded = GROUPS.get(name, (name,))
        for column in expanded:
            if column not in OUTPUT_COLUMNS:
                known = ", ".join([*LEADING, *GROUPS, *OUTPUT_COLUMNS])
                raise InvalidInput(
                    f"outputColumns: unknown column {name!r}; known: {known}", field="outputColumns"
                )
            if column not in names:
                names.append(column)
    return tuple(names)


def _qualified(query: str) -> dict[str, str]:
    """``qq=city=Berlin;street=Invalidenstr`` -> address fields."""
    fields = {}
    for part in query.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() in ADDRESS_COLUMNS:
            fields[key.strip()] = value.strip()
        elif sep and key.strip() == "postalCode":
            fields["postalCode"] = value.strip()
    return fields


def _native_row(header: Sequence[str], values: Sequence[str], columns: Sequence[str]) -> list[str]:
    """One HERE record as geobatch's columns; a wrong field count is kept for the error report."""
    if len(values) != len(header):
        return list(values)
    record = dict(zip(header, values, strict=True))
    native: dict[str, str] = {}
    for name, value in record.items():
        if name in ("q", "searchText"):
            native["searchText"] = value
        elif name == "qq":
            native.update(_qualified(value))
        elif name == "at":
            lat, _, lon = value.partition(",")
            native.update(lat=lat.strip(), lon=lon.strip())
        else:
            native[name] = value
    return [native.get(column, "") for column in columns]


def check_header(header: Sequence[str], job_type: str) -> None:
    usable = {
        "recId", "q", "qq", "searchText", "at", "id", *ADDRESS_COLUMNS, *PER_RECORD, *IGNORED_INPUT
    }  # fmt: skip
    unknown = [name for name in header if name not in usable]
    if unknown:
        raise InvalidInput(
            f"inputColumns: unknown column(s) {', '.join(unknown)}", field="inputColumns"
        )
    needs = {"geocode": "q, qq, searchText or an address field", "reverse_geocode": "at"}
    present = set(header)
    if job_type == "geocode" and not present & {"q", "qq", "searchText", *ADDRESS_COLUMNS}:
        raise InvalidInput(f"inputColumns: a geocode job needs {needs['geocode']}")
    if job_type == "reverse_geocode" and "at" not in present:
        raise InvalidInput("inputColumns: a revgeocode job needs at (lat,lon)")
    if job_type == "lookup" and "id" not in present:
        raise InvalidInput("inputColumns: a lookup job needs id")


async def _lines(body: AsyncIterator[bytes]) -> AsyncIterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    async for piece in body:
        try:
            pending += decoder.decode(piece)
        except UnicodeDecodeError:
            raise InvalidInput("The records are not UTF-8 text.", code="bad_encoding") from None
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line.rstrip("\r")
    pending += decoder.decode(b"", final=True)
    if pending.strip():
        yield pending.rstrip("\r")


async def native_csv(body: AsyncIterator[bytes], fmt: RecordFormat) -> AsyncIterator[bytes]:
    """The HERE records of ``body`` as geobatch CSV, a batch of lines at a time."""
    header = list(fmt.input_columns) if fmt.input_columns else None
    columns: list[str] = []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    async for line in _lines(body):
        if not line.strip():
            continue
        values = line.split(fmt.input_delimiter)
        if header is None:
            header = [v.strip() for v in values]
            continue
        if not columns:
            check_header(header, fmt.job_type)
            columns = [*(["recId"] if "recId" in header else []), *NATIVE_INPUT[fmt.job_type]]
            passed = LOOKUP_PER_RECORD if fmt.job_type == "lookup" else PER_RECORD
            columns += [name for name in passed if name in header]
            writer.writerow(columns)
        writer.writerow(_native_row(header, values, columns))
        if out.tell() >= 256 * 1024:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    if not columns and header is not None:
        check_header(header, fmt.job_type)
    if out.tell():
        yield out.getvalue().encode()


def csv_rows(chunks: Iterable[bytes]) -> Iterator[Row]:
    """Rows of a streamed CSV with a header line, as dicts."""

    def lines() -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        pending = ""
        for chunk in chunks:
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
        if pending:
            yield pending

    yield from csv.DictReader(lines())


def _render(rows: Iterator[list[str]], header: list[str], fmt: RecordFormat) -> Iterator[bytes]:
    out = io.StringIO()
    if fmt.output_type == "jsonl":
        for values in rows:
            record = {k: (v if v != "" else None) for k, v in zip(header, values, strict=True)}
            out.write(json.dumps(record) + "\n")
            if out.tell() >= 256 * 1024:
                yield out.getvalue().encode()
                out.seek(0)
                out.truncate()
    else:
        writer = csv.writer(out, delimiter=fmt.output_delimiter, lineterminator="\n")
        writer.writerow(header)
        for values in rows:
            writer.writerow(values)
            if out.tell() >= 256 * 1024:
                yield out.getvalue().encode()
                out.seek(0)
                out.truncate()
    yield out.getvalue().encode()


def here_results(chunks: Iterable[bytes], fmt: RecordFormat) -> Iterator[bytes]:
    """geobatch result rows (CSV) as HERE result lines."""
    header = [*LEADING, *fmt.output_columns]
    getters = [OUTPUT_COLUMNS[name] for name in fmt.output_columns]
    rows = (
        [*(row.get(name) or "" for name in LEADING), *(get(row) for get in getters)]
        for row in csv_rows(chunks)
    )
    return _render(rows, header, fmt)


ERROR_HEADER = ["recId", "errorCode", "errorMessage", "input"]


def here_errors(chunks: Iterable[bytes], fmt: RecordFormat) -> Iterator[bytes]:
    """The error report as HERE error lines: the record, what was wrong, and its input."""
    rows = (
        [row.get("recId") or "", row.get("code") or "", row.get("message") or "", row["input"]]
        for row in csv_rows(chunks)
    )
    return _render(rows, ERROR_HEADER, fmt)
