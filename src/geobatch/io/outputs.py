"""Output writers: stream a job's Parquet result parts to the user as CSV, GeoJSON or Parquet.

Results and error reports are stored as a sequence of Parquet parts, one per chunk. A download
converts them on the fly, one row group at a time, so a result of any size is served with
bounded memory. Columns whose names start with ``_`` are internal and never leave the service.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from typing import Any, BinaryIO, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import shapely

_ROWS_PER_PIECE: Final = 16_384  # rows turned into text at once for CSV and GeoJSON

PartOpener = Callable[[], BinaryIO]


class OutputFormat(StrEnum):
    CSV = "csv"
    GEOJSON = "geojson"
    PARQUET = "parquet"


MEDIA_TYPES: Final[dict[OutputFormat, str]] = {
    OutputFormat.CSV: "text/csv",
    OutputFormat.GEOJSON: "application/geo+json",
    OutputFormat.PARQUET: "application/vnd.apache.parquet",
}


# --- schemas -------------------------------------------------------------------------------


def _public(schema: pa.Schema) -> pa.Schema:
    """The user-visible columns, all nullable (a later part may lack a column)."""
    fields = [f.with_nullable(True) for f in schema if not f.name.startswith("_")]
    return pa.schema(fields, metadata=schema.metadata)


def _part_schema(opener: PartOpener) -> pa.Schema:
    handle = opener()
    try:
        return pq.ParquetFile(handle).schema_arrow
    finally:
        handle.close()


def _unify(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for all parts: types are widened where they differ, text as a last resort.

    Parts hold different chunks, so a column can be all-null (typed null) in one part, or
    missing from a GeoJSON-sourced part whose features had no such property.
    """
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    types: dict[str, pa.DataType] = {}
    for schema in schemas:
        for field in schema:
            known = types.setdefault(field.name, field.type)
            if not known.equals(field.type):
                types[field.name] = field.type if pa.types.is_null(known) else pa.string()
    fields = [pa.field(name, type_) for name, type_ in types.items()]
    return pa.schema(fields, metadata=schemas[0].metadata)


def _cast(column: Any, type_: pa.DataType) -> Any:
    try:
        return column.cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if not pa.types.is_string(type_):
            raise
        return pa.array([_json_text(v) for v in column.to_pylist()], type=pa.string())


def _conform(table: pa.Table, schema: pa.Schema, num_rows: int) -> pa.Table:
    """The table with exactly ``schema``'s columns: cast, reordered, missing ones all null."""
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(num_rows, field.type))
            continue
        column = table.column(field.name)
        columns.append(column if column.type.equals(field.type) else _cast(column, field.type))
    if not columns:
        return table.select([])
    return pa.Table.from_arrays(columns, schema=schema)


def _tables(
    openers: list[PartOpener], schema: pa.Schema, piece_rows: int | None
) -> Iterator[pa.Table]:
    """Each part's row groups in order, conformed to ``schema``, in pieces of ``piece_rows``."""
    for opener in openers:
        handle = opener()
        try:
            parquet = pq.ParquetFile(handle)
            wanted = [name for name in parquet.schema_arrow.names if name in schema.names]
            for index in range(parquet.num_row_groups):
                rows = parquet.metadata.row_group(index).num_rows
                table = _conform(parquet.read_row_group(index, columns=wanted), schema, rows)
                if piece_rows is None:
                    yield table
                    continue
                for offset in range(0, table.num_rows, piece_rows):
                    yield table.slice(offset, piece_rows)
        finally:
            handle.close()


# --- CSV -----------------------------------------------------------------------------------


def _csv_ready(table: pa.Table) -> pa.Table:
    """Columns the CSV writer cannot render as text: WKB geometry as WKT, nested as JSON."""
    for index, field in enumerate(table.schema):
        type_ = field.type
        if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
            values = table.column(index).to_numpy(zero_copy_only=False)
            if field.name == "geometry":
                text = shapely.to_wkt(shapely.from_wkb(values, on_invalid="ignore"))
                column = pa.array(text, type=pa.string())
            else:
                texts = [None if v is None else _json_default(v) for v in values]
                column = pa.array(texts, type=pa.string())
        elif pa.types.is_nested(type_) or pa.types.is_null(type_):
            values = table.column(index).combine_chunks()
            texts = pc.if_else(values.is_null(), pa.scalar(None, _TEXT), _json_texts(values))
            column = texts.cast(pa.string())
        else:
            continue
        table = table.set_column(index, field.name, column)
    return table


def _csv(openers: list[PartOpener], schema: pa.Schema) -> Iterator[bytes]:
    header = True
    for table in _tables(openers, schema, _ROWS_PER_PIECE):
        if not table.num_rows:
            continue
        yield _write_csv(_csv_ready(table), header)
        header = False
    if header:
        yield _write_csv(_csv_ready(schema.empty_table()), True)


def _write_csv(table: pa.Table, header: bool) -> bytes:
    out = io.BytesIO()
    pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(include_header=header))
    return out.getvalue()


# --- GeoJSON -------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)
_encode_text: Final[Callable[[str], str]] = json.encoder.encode_basestring
"""How ``_JSON`` writes a text (it does not escape non-ASCII characters)."""
_TEXT: Final = pa.large_string()
"""What JSON and GeoJSON texts are built in: large, as a piece's features are joined into one."""


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, _TEXT)


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _JSON.encode(value)


def _coordinate(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _points(lat: pa.Array, lon: pa.Array) -> pa.Array:
    """GeoJSON points of float coordinates, as ``_coordinate`` and the f-string write them."""
    finite = pc.fill_null(pc.and_(pc.is_finite(lat), pc.is_finite(lon)), False)
    points = pc.binary_join_element_wise(
        _text('{"type":"Point","coordinates":['),
        _json_floats(lon),
        _text(","),
        _json_floats(lat),
        _text("]}"),
        _text(""),
    )
    return pc.if_else(finite, points, _text("null"))


def _geometries(table: pa.Table) -> tuple[pa.Array, pa.Table]:
    """Each row's GeoJSON geometry text, and the table of what is left as properties."""
    names = table.column_names
    geometry = table.schema.field("geometry").type if "geometry" in names else None
    if geometry is not None and (
        pa.types.is_binary(geometry) or pa.types.is_large_binary(geometry)
    ):
        values = table.column("geometry").to_numpy(zero_copy_only=False)
        texts = shapely.to_geojson(shapely.from_wkb(values, on_invalid="ignore"))
        geojson = pc.fill_null(pa.array(texts, _TEXT), "null")
        return geojson, table.drop_columns(["geometry"])
    if "lat" in names and "lon" in names:
        lat, lon = table.column("lat"), table.column("lon")
        if pa.types.is_floating(lat.type) and pa.types.is_floating(lon.type):
            return _points(lat.combine_chunks(), lon.combine_chunks()), table
        points = []
        for y_value, x_value in zip(lat.to_pylist(), lon.to_pylist(), strict=True):
            y, x = _coordinate(y_value), _coordinate(x_value)
            points.append(
                "null"
                if x is None or y is None
                else f'{{"type":"Point","coordinates":[{x!r},{y!r}]}}'
            )
        return pa.array(points, _TEXT), table
    return pa.array(["null"] * table.num_rows, _TEXT), table


def _without_nan(table: pa.Table) -> pa.Table:
    """NaN and infinities become null: JSON has no spelling for them."""
    for index, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            column = table.column(index)
            bad = pc.fill_null(pc.invert(pc.is_finite(column)), False)
            if pc.any(bad).as_py():
                cleaned = pc.if_else(bad, pa.scalar(None, field.type), column)
                table = table.set_column(index, field.name, cleaned)
    return table


def _float_json(value: float) -> str:
    """A float as ``_JSON`` writes it (NaN and infinities in JavaScript's spelling)."""
    if math.isfinite(value):
        return float.__repr__(value)
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def _json_floats(values: pa.Array) -> pa.Array:
    """Floats as ``_JSON`` writes them; nulls are left to the caller."""
    numbers = values.to_numpy(zero_copy_only=False)
    texts = list(map(float.__repr__, numbers.tolist()))
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    for index in np.flatnonzero(valid & ~np.isfinite(numbers)):
        texts[index] = _float_json(float(numbers[index]))
    return pa.array(texts, _TEXT)


def _python_json(values: pa.Array) -> pa.Array:
    type_ = values.type
    items = values.to_pylist()
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        out = ["null" if v is None else _encode_text(v) for v in items]
    elif pa.types.is_floating(type_):
        out = ["null" if v is None else _float_json(v) for v in items]
    elif pa.types.is_boolean(type_):
        out = ["null" if v is None else ("true" if v else "false") for v in items]
    else:
        out = [_JSON.encode(v) for v in items]
    return pa.array(out, _TEXT)


def _plain_texts(values: pa.Array) -> bool:
    """Whether these are texts that JSON writes as they are, between quotes."""
    type_ = values.type
    if not (pa.types.is_string(type_) or pa.types.is_large_string(type_)):
        return False
    return not pc.any(pc.match_substring_regex(values, r'[\x00-\x1f"\\]')).as_py()


def _json_objects(type_: pa.StructType, fields: list[pa.Array], size: int) -> pa.Array:
    if not fields:
        return pa.array(["{}"] * size, _TEXT)
    pieces: list[Any] = []
    for index, (field, values) in enumerate(zip(type_, fields, strict=True)):
        pieces += [_text(("{" if index == 0 else ",") + _encode_text(field.name) + ":")]
        pieces.append(_json_texts(values))
    return pc.binary_join_element_wise(*pieces, _text("}"), _text(""))


def _json_arrays(values: pa.Array) -> pa.Array:
    lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy()
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    elements = _json_texts(values.flatten())
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), elements)
    return pc.binary_join_element_wise(
        _text("["), pc.binary_join(lists, _text(",")), _text("]"), _text("")
    )


def _json_texts(values: pa.Array) -> pa.Array:
    """Each value as ``_JSON`` writes it, null as ``null``, a whole array at a time:
    encoding value by value is several times slower. Integers, lists and structs (of
    distinct field names) are built by Arrow; other values are written one by one."""
    type_ = values.type
    if pa.types.is_integer(type_):
        texts = pc.cast(values, _TEXT)
    elif pa.types.is_float32(type_) or pa.types.is_float64(type_):
        texts = _json_floats(values)
    elif _plain_texts(values):
        texts = pc.binary_join_element_wise(_text('"'), values.cast(_TEXT), _text('"'), _text(""))
    elif pa.types.is_struct(type_) and len({f.name for f in type_}) == type_.num_fields:
        texts = _json_objects(type_, values.flatten(), len(values))
    elif pa.types.is_list(type_) or pa.types.is_large_list(type_):
        texts = _json_arrays(values)
    else:
        return _python_json(values)
    if not values.null_count:
        return texts
    return pc.if_else(values.is_null(), _text("null"), texts)


def _properties(table: pa.Table) -> pa.Array:
    """Each row's properties object as JSON text, as ``_JSON.encode`` writes the row's dict."""
    names = table.column_names
    if len(set(names)) != len(names):  # a dict keeps the last of equal keys
        return pa.array([_JSON.encode(row) for row in table.to_pylist()], _TEXT)
    if not names:
        return pa.array(["{}"] * table.num_rows, _TEXT)
    pieces: list[Any] = []
    for index, name in enumerate(names):
        key = ("{" if index == 0 else ",") + _encode_text(name) + ":"
        pieces += [
            _text(key),
            _json_texts(table.column(index).combine_chunks()),
        ]
    pieces += [_text("}"), _text("")]
    return pc.binary_join_element_wise(*pieces)


def _geojson(openers: list[PartOpener], schema: pa.Schema | None) -> Iterator[bytes]:
    yield b'{"type":"FeatureCollection","features":['
    separator = "\n"
    for table in _tables(openers, schema, _ROWS_PER_PIECE) if schema is not None else ():
        if not table.num_rows:
            continue
        geometries, properties = _geometries(table)
        features = pc.binary_join_element_wise(
            _text('{"type":"Feature","geometry":'),
            geometries,
            _text(',"properties":'),
            _properties(_without_nan(properties)),
            _text("}"),
            _text(""),
        )
        listed = pa.LargeListArray.from_arrays(pa.array([0, len(features)], pa.int64()), features)
        joined = pc.binary_join(listed, _text(",\n"))
        yield separator.encode() + joined.cast(pa.large_binary())[0].as_py()
        separator = ",\n"
    yield b"\n]}\n"


# --- Parquet -------------------------------------------------------------------------------


class _ByteSink:
    """A write-only file that keeps what ParquetWriter wrote until the caller drains it."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        piece = bytes(data)
        self._pieces.append(piece)
        self._position += len(piece)
        return len(piece)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces.clear()
        return data


def _parquet(openers: list[PartOpener], schema: pa.Schema) -> Iterator[bytes]:
    sink = _ByteSink()
    writer = pq.ParquetWriter(sink, schema)
    try:
        for table in _tables(openers, schema, None):
            writer.write_table(table)
            if data := sink.drain():
                yield data
    finally:
        writer.close()
    yield sink.drain()


# --- public entry points -------------------------------------------------------------------


def stream_parts(
    parts: Iterable[PartOpener], fmt: OutputFormat, *, schema: pa.Schema | None = None
) -> Iterator[bytes]:
    """The document made of all parts, in order, piece by piece.

    Without ``schema`` the parts' footers are read first and their schemas unified, so a
    column that only some parts have is still in the output (null elsewhere).
    """
    openers = list(parts)
    if schema is None and openers:
        schema = _unify([_public(_part_schema(opener)) for opener in openers])
    elif schema is not None:
        schema = _public(schema)
    if fmt is OutputFormat.GEOJSON:
        yield from _geojson(openers, schema)
    elif schema is None:  # nothing to describe the columns: an empty CSV, a column-less Parquet
        if fmt is OutputFormat.PARQUET:
            yield from _parquet([], pa.schema([]))
    elif fmt is OutputFormat.CSV:
        yield from _csv(openers, schema)
    else:
        yield from _parquet(openers, schema)


def write_output(
    parts: Iterable[PartOpener],
    fmt: OutputFormat,
    sink: BinaryIO,
    *,
    schema: pa.Schema | None = None,
) -> int:
    """Write the document into ``sink``; returns the number of bytes written."""
    written = 0
    for piece in stream_parts(parts, fmt, schema=schema):
        sink.write(piece)
        written += len(piece)
    return written


def read_output(data: bytes | BinaryIO, fmt: OutputFormat) -> list[dict[str, Any]]:
    """Parse a whole output back into rows, for tests and the CLI (it loads everything).

    GeoJSON rows are the properties plus "geometry" (a GeoJSON dict or None); CSV values are
    strings, as written.
    """
    raw = data if isinstance(data, bytes) else data.read()
    if fmt is OutputFormat.CSV:
        return [dict(row) for row in csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))]
    if fmt is OutputFormat.GEOJSON:
        document = json.loads(raw)
        return [
            {**(feature.get("properties") or {}), "geometry": feature.get("geometry")}
            for feature in document["features"]
        ]
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(raw)).to_pylist()
    return rows
