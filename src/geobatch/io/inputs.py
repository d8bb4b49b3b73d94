"""Input readers: turn an uploaded CSV, GeoJSON or (Geo)Parquet file into Arrow record batches.

Uploads can hold hundreds of millions of records, so every reader streams: memory is bounded
by the batch size, never by the file size. A record that cannot be read on its own (a CSV row
with the wrong field count, a GeoJSON feature with a broken geometry) becomes a row of the
batch's ``errors`` table, so a job can report it and go on; a problem with the file as a whole
(bad encoding, truncated gzip, not a FeatureCollection) raises :class:`InputError`. Every
record, good or bad, gets a 1-based ``_ordinal`` that is stable across re-runs.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import itertools
import json
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, BinaryIO, Final, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
import shapely.errors
import shapely.geometry

from geobatch.errors import InvalidInput

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

PREVIEW_BYTES: Final = 1 << 20
_BLOCK: Final = 1 << 20
_MAX_JSON_VALUE: Final = 64 << 20
_MAX_INPUT_TEXT: Final = 1000
_CHUNK_ROWS: Final = 8192
_DELIMITERS: Final = (",", ";", "\t", "|")
_RESERVED: Final = "_ordinal"
_WS: Final = re.compile(r"[ \t\n\r]*")
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# The default 128 KiB cap rejects legitimate large fields (long WKT polygons); 16 MiB still
# bounds the memory an unterminated quote can swallow before the row is reported malformed.
csv.field_size_limit(max(csv.field_size_limit(), 16 << 20))

ERROR_SCHEMA: Final = pa.schema(
    [
        pa.field("_ordinal", pa.int64()),
        pa.field("recId", pa.string()),
        pa.field("code", pa.string()),
        pa.field("message", pa.string()),
        pa.field("input", pa.string()),
    ]
)


class InputFormat(StrEnum):
    CSV = "csv"
    GEOJSON = "geojson"
    PARQUET = "parquet"


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """How to read one input file; ``delimiter=None`` sniffs it from the first line."""

    format: InputFormat
    gzip: bool = False
    delimiter: str | None = None
    input_columns: tuple[str, ...] | None = None
    encoding: str = "utf-8"


@dataclass(frozen=True, kw_only=True)
class InputPreview:
    """What a quick look at the start of an input found, to validate an upload early."""

    columns: tuple[str, ...]
    delimiter: str | None


@dataclass(frozen=True, kw_only=True)
class RecordBatch:
    """Consecutive input records: the good ones, and the malformed ones as ERROR_SCHEMA rows."""

    records: pa.Table
    errors: pa.Table


class InputError(InvalidInput):
    """Invalid input file."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the error intact when it crosses a process boundary (worker pools).
        return (type(self), (self.code, self.message))


class _PreviewEnd(Exception):
    """The preview's window ended inside the document: stop looking, this is not an error."""


# --- media types -------------------------------------------------------------------------

_MEDIA_TYPES: Final = {
    "text/csv": InputFormat.CSV,
    "application/csv": InputFormat.CSV,
    "text/plain": InputFormat.CSV,
    "text/tab-separated-values": InputFormat.CSV,
    "application/geo+json": InputFormat.GEOJSON,
    "application/json": InputFormat.GEOJSON,
    "application/vnd.apache.parquet": InputFormat.PARQUET,
    "application/x-parquet": InputFormat.PARQUET,
    "application/parquet": InputFormat.PARQUET,
}
_GZIP_MEDIA_TYPES: Final = frozenset({"application/gzip", "application/x-gzip"})
_SUFFIXES: Final = {
    ".csv": InputFormat.CSV,
    ".tsv": InputFormat.CSV,
    ".txt": InputFormat.CSV,
    ".geojson": InputFormat.GEOJSON,
    ".json": InputFormat.GEOJSON,
    ".parquet": InputFormat.PARQUET,
}


def _format_from_filename(filename: str | None) -> tuple[InputFormat | None, bool]:
    name = (filename or "").strip().lower()
    gz = name.endswith(".gz")
    name = name.removesuffix(".gz")
    return next((fmt for suffix, fmt in _SUFFIXES.items() if name.endswith(suffix)), None), gz


def format_from_media_type(
    content_type: str | None, filename: str | None = None
) -> tuple[InputFormat, bool] | None:
    """Map an upload's Content-Type (and file name) to ``(format, gzip)``; None if unsupported."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    by_name, gz = _format_from_filename(filename)
    if media in _MEDIA_TYPES:
        return _MEDIA_TYPES[media], gz
    if media in _GZIP_MEDIA_TYPES:
        return by_name or InputFormat.CSV, True
    if media in ("", "application/octet-stream") and by_name is not None:
        return by_name, gz
    return None


# --- bytes and text ----------------------------------------------------------------------


def sniff_gzip(first_bytes: bytes) -> bool:
    """True when the bytes start with the gzip magic number, whatever the upload claimed."""
    return first_bytes[:2] == b"\x1f\x8b"


class _GzipReader(gzip.GzipFile):
    """A gzip stream whose damage surfaces as InputError, not as zlib or EOF errors."""

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except EOFError:
            raise InputError(
                "truncated_gzip",
                f"gzip input ends before its end-of-stream marker (after {self.tell()} "
                "decompressed bytes); the upload is probably truncated",
            ) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise InputError("bad_gzip", f"gzip input is corrupt ({exc})") from None

    def read(self, size: int | None = -1) -> bytes:
        with self._errors():
            return super().read(size)

    def read1(self, size: int = -1) -> bytes:
        with self._errors():
            return super().read1(size)

    def readline(self, size: int | None = -1) -> bytes:
        with self._errors():
            return super().readline(size)


def open_decompressed(source: BinaryIO, spec: InputSpec) -> BinaryIO:
    """Return a reader of the decompressed input; gzip is detected by its magic bytes too."""
    start = source.tell()
    magic = source.read(2)
    source.seek(start)
    if sniff_gzip(magic):
        return _GzipReader(fileobj=source, mode="rb")  # type: ignore[return-value]
    if spec.gzip and magic:
        raise InputError(
            "bad_gzip", "input is declared gzip-compressed but does not start with bytes 1f 8b"
        )
    return source


def _check_spec(spec: InputSpec) -> None:
    try:
        name = codecs.lookup(spec.encoding).name
    except LookupError:
        name = spec.encoding
    if name not in ("utf-8", "utf-8-sig"):
        raise InputError("bad_encoding", f"only UTF-8 input is supported, not {spec.encoding!r}")
    if spec.delimiter is not None and (len(spec.delimiter) != 1 or spec.delimiter in '"\r\n'):
        raise InputError(
            "unsupported_format", f"the CSV delimiter must be one character, not {spec.delimiter!r}"
        )


class _Utf8Blocks:
    """Strict UTF-8 decoding block by block that names the offset and line of a bad byte."""

    def __init__(self, stream: BinaryIO, *, final: bool = True) -> None:
        self._stream = stream
        self._final = final  # False: the bytes are a window, a cut character at the end is fine
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._offset = 0
        self._lines = 0
        self._started = False
        self._done = False
        self._failure: InputError | None = None

    def read(self) -> str:
        """Next block of text without a leading BOM; "" at the end.

        A bad byte raises only once the text before it has been returned, so every record
        before the bad one is read.
        """
        if self._failure is not None:
            raise self._failure
        while not self._done:
            data = self._stream.read(_BLOCK)
            self._done = not data
            pending = self._decoder.getstate()[0]
            try:
                text = self._decoder.decode(data, final=self._done and self._final)
            except UnicodeDecodeError as exc:
                self._failure = self._error(exc, len(pending))
                self._done = True
                text = exc.object[: exc.start].decode("utf-8")
            self._offset += len(data)
            self._lines += data.count(b"\n")
            if text and not self._started:
                self._started = True
                text = text.removeprefix("\ufeff")
            if text:
                return text
        if self._failure is not None:
            raise self._failure
        return ""

    def _error(self, exc: UnicodeDecodeError, pending: int) -> InputError:
        data = exc.object  # the decoder's pending bytes followed by this block
        line = self._lines + data.count(b"\n", 0, exc.start) + 1
        offset = self._offset - pending + exc.start
        if exc.reason == "unexpected end of data":
            where = f"offset {offset}, line {line}"
            return InputError("bad_encoding", f"input ends inside a UTF-8 character ({where})")
        where = f"byte 0x{data[exc.start]:02x} at offset {offset}, line {line}"
        return InputError("bad_encoding", f"input is not valid UTF-8 ({where})")


def _iter_lines(blocks: _Utf8Blocks) -> Iterator[str]:
    """Lines with their endings (\\n, \\r\\n or \\r), as csv.reader wants them."""
    tail: list[str] = []
    while text := blocks.read():
        cut = max(text.rfind("\n"), text.rfind("\r")) + 1
        if not cut:
            tail.append(text)
            continue
        tail.append(text[:cut])
        yield from io.StringIO("".join(tail), newline="")
        tail = [text[cut:]] if cut < len(text) else []
    rest = "".join(tail)
    if rest:
        yield rest


# --- columns and tables ------------------------------------------------------------------


def _check_columns(columns: tuple[str, ...]) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, 1):
        if not name.strip():
            raise InputError("bad_header", f"column {position} of the header has an empty name")
        if name in seen:
            raise InputError(
                "bad_header",
                f"duplicate column name {name!r} in the header (columns {seen[name]} "
                f"and {position})",
            )
        if name == _RESERVED:
            raise InputError("bad_header", f"column name {name!r} is reserved")
        seen[name] = position
    if sum(name.lower() == "recid" for name in columns) > 1:
        raise InputError("bad_header", "the header has more than one recId column")


def _recid_index(columns: tuple[str, ...] | list[str]) -> int | None:
    return next((i for i, name in enumerate(columns) if name.lower() == "recid"), None)


def _fill_ids(values: Any, ordinals: pa.Array) -> Any:
    """recId values as strings; a missing or empty one falls back to the ordinal."""
    values = pc.cast(values, pa.string())
    missing = pc.fill_null(pc.equal(values, ""), True)
    if not pc.any(missing).as_py():
        return values
    return pc.if_else(missing, pc.cast(ordinals, pa.string()), values)


def _errors_table(rows: list[tuple[int, str, str, str, str]]) -> pa.Table:
    if not rows:
        return ERROR_SCHEMA.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(c, type=f.type) for c, f in zip(columns, ERROR_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=ERROR_SCHEMA)


def _good_ordinals(start: int, count: int, bad: list[int]) -> pa.Array:
    ordinals = np.arange(start, start + count, dtype=np.int64)
    if bad:
        keep = np.ones(count, dtype=bool)
        keep[np.asarray(bad, dtype=np.int64) - start] = False
        ordinals = ordinals[keep]
    return pa.array(ordinals, type=pa.int64())


# --- CSV -----------------------------------------------------------------------------------


def _sniff_delimiter(line: str, expected: int | None) -> str:
    """The candidate that splits the line into the most fields (or exactly ``expected``)."""
    best, best_count = ",", 1
    for delimiter in _DELIMITERS:
        try:
            count = len(next(csv.reader([line], delimiter=delimiter)))
        except (csv.Error, StopIteration):
            continue
        if count == expected:
            return delimiter
        if count > best_count:
            best, best_count = delimiter, count
    return best


@dataclass(frozen=True)
class _CsvLayout:
    delimiter: str
    columns: tuple[str, ...]
    skipped: int  # blank lines before the first line, to turn reader lines into file lines


_BadRow = tuple[int, list[str] | None, str]  # ordinal, fields (None: unparsable), message


class _CsvBatcher:
    """Gathers CSV rows into batches of ``batch_size`` records (good and malformed).

    Good rows become Arrow arrays every _CHUNK_ROWS rows: a batch of 100k live row lists
    makes every garbage-collector pass slower and halves the parsing speed.
    """

    def __init__(self, layout: _CsvLayout, batch_size: int) -> None:
        self.layout = layout
        self.batch_size = batch_size
        self.rec = _recid_index(layout.columns)
        self.start = 1  # ordinal of the batch's first record
        self.count = 0  # records of the batch in `chunks` or `bad`
        self.chunks: list[list[pa.Array]] = []
        self.bad: list[_BadRow] = []
        self.ready: RecordBatch | None = None

    def add_bad(self, pending: int, row: list[str] | None, message: str) -> None:
        """Record a malformed row that follows ``pending`` good rows not yet settled."""
        self.bad.append((self.start + self.count + pending, row, message))
        self.count += 1

    def settle(self, good: list[list[str]]) -> tuple[list[list[str]], int]:
        """Convert and close the batch as due; returns the new good list and its size limit."""
        total = self.count + len(good)
        if total == self.batch_size or len(good) >= _CHUNK_ROWS:
            self.chunks.append(self._columns(good))
            self.count, good = total, []
        if self.count == self.batch_size:
            self.ready = self.finish()
        return good, min(_CHUNK_ROWS, self.batch_size - self.count)

    def finish(self, good: list[list[str]] | None = None) -> RecordBatch | None:
        """The batch so far (plus ``good``) as a RecordBatch, or None if it is empty."""
        if good:
            self.chunks.append(self._columns(good))
            self.count += len(good)
        if not self.count:
            return None
        ordinals = _good_ordinals(self.start, self.count, [ordinal for ordinal, _, _ in self.bad])
        names = list(self.layout.columns)
        arrays = [
            pa.chunked_array([chunk[i] for chunk in self.chunks], type=pa.string())
            for i in range(len(names))
        ]
        rec = self.rec
        if rec is None:
            recids = pc.cast(ordinals, pa.string())
        else:
            recids = _fill_ids(arrays.pop(rec), ordinals)
            del names[rec]
        records = pa.Table.from_arrays(
            [ordinals, recids, *arrays], names=["_ordinal", "recId", *names]
        )
        errors = []
        for ordinal, row, message in self.bad:
            recid = row[rec] if row is not None and rec is not None and rec < len(row) else ""
            errors.append(
                (ordinal, recid or str(ordinal), "malformed_row", message, self._text(row))
            )
        batch = RecordBatch(records=records, errors=_errors_table(errors))
        self.start += self.count
        self.count, self.chunks, self.bad = 0, [], []
        return batch

    def _columns(self, good: list[list[str]]) -> list[pa.Array]:
        fields = zip(*good, strict=True) if good else [()] * len(self.layout.columns)
        return [pa.array(values, type=pa.string()) for values in fields]

    def _text(self, row: list[str] | None) -> str:
        if row is None:
            return ""
        out = io.StringIO()
        csv.writer(out, delimiter=self.layout.delimiter, lineterminator="").writerow(row)
        return out.getvalue()[:_MAX_INPUT_TEXT]


def _open_csv(lines: Iterator[str], spec: InputSpec) -> tuple[_CsvLayout, _CsvReader]:
    """Sniff the delimiter, read (or take) the header and check it; returns the row reader."""
    skipped = 0
    for first in lines:
        if first.strip():
            break
        skipped += 1
    else:
        raise InputError("empty_input", "input is empty (no data, only whitespace)")
    expected = len(spec.input_columns) if spec.input_columns is not None else None
    delimiter = spec.delimiter or _sniff_delimiter(first, expected)
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=False)
    if spec.input_columns is not None:
        columns = tuple(spec.input_columns)
    else:
        try:
            columns = tuple(next(reader))
        except csv.Error as exc:
            raise InputError("bad_header", f"cannot parse the header line ({exc})") from None
    _check_columns(columns)
    return _CsvLayout(delimiter, columns, skipped), reader


def _iter_csv(stream: BinaryIO, spec: InputSpec, batch_size: int) -> Iterator[RecordBatch]:
    layout, reader = _open_csv(_iter_lines(_Utf8Blocks(stream)), spec)
    batcher = _CsvBatcher(layout, batch_size)
    width = len(layout.columns)
    good: list[list[str]] = []
    limit = min(_CHUNK_ROWS, batch_size)
    while True:
        try:
            for row in reader:  # the hot loop: keep it to a length check and an append
                if len(row) == width:
                    good.append(row)
                    if len(good) < limit:
                        continue
                elif not row:
                    continue  # a blank line is not a record
                else:
                    line = reader.line_num + layout.skipped
                    message = f"expected {width} fields, found {len(row)} (line {line})"
                    batcher.add_bad(len(good), row, message)
                good, limit = batcher.settle(good)
                if batcher.ready is not None:
                    yield batcher.ready
                    batcher.ready = None
        except csv.Error as exc:  # e.g. an over-long field; the reader resumes on the next line
            batcher.add_bad(len(good), None, f"{exc} (line {reader.line_num + layout.skipped})")
            good, limit = batcher.settle(good)
            if batcher.ready is not None:
                yield batcher.ready
                batcher.ready = None
            continue
        break
    last = batcher.finish(good)
    if last is not None:
        yield last


# --- GeoJSON -------------------------------------------------------------------------------


class _JsonScanner:
    """Walks a JSON document over a sliding text buffer, decoding one value at a time."""

    def __init__(self, blocks: _Utf8Blocks, *, partial: bool = False) -> None:
        self._blocks = blocks
        self._partial = partial  # the text is a preview window: running out is not an error
        self._buf = ""
        self._pos = 0
        self._dropped = 0  # characters already discarded from the front of the buffer
        self._eof = False
        self._decode = json.JSONDecoder().raw_decode

    def _fill(self) -> bool:
        if self._eof:
            return False
        text = self._blocks.read()
        if not text:
            self._eof = True
            if self._partial:
                raise _PreviewEnd
            return False
        self._dropped += self._pos
        self._buf = self._buf[self._pos :] + text
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character, not consumed; "" at the end of the input."""
        while True:
            match = _WS.match(self._buf, self._pos)
            assert match is not None  # the pattern matches the empty string
            self._pos = match.end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def take(self, char: str, where: str) -> None:
        found = self.peek()
        if found != char:
            self.fail(
                f"expected {char!r} {where}, found {found!r}"
                if found
                else f"expected {char!r} {where}, found the end of the input"
            )
        self._pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self._decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                # Text cut by the block end fails near the end (or in an open string);
                # an error well before it is a real one, whatever follows.
                cut = exc.pos > len(self._buf) - 16 or exc.msg.startswith("Unterminated")
                if len(self._buf) - self._pos > _MAX_JSON_VALUE:
                    self.fail(f"a value larger than {_MAX_JSON_VALUE >> 20} MiB or {exc.msg}")
                if cut and self._fill():
                    continue
                self.fail(exc.msg, exc.pos)
            # A number that ends the buffer may go on in the next block: decode it again then.
            if end == len(self._buf) and self._fill():
                continue
            self._pos = end
            return value

    def fail(self, what: str, pos: int | None = None) -> NoReturn:
        if self._eof and self._partial:
            raise _PreviewEnd
        at = self._dropped + (self._pos if pos is None else pos)
        raise InputError(
            "bad_geojson",
            f"input is not a valid GeoJSON FeatureCollection: {what} (character {at})",
        )


def _iter_features(scanner: _JsonScanner) -> Iterator[Any]:
    """Each element of the top-level "features" array, checking the document around it."""
    if not scanner.peek():
        raise InputError("empty_input", "input is empty (no data, only whitespace)")
    scanner.take("{", "at the start (a FeatureCollection is a JSON object)")
    has_features = False
    while scanner.peek() != "}":
        key = scanner.value()
        if not isinstance(key, str):
            scanner.fail("expected a member name")
        scanner.take(":", "after a member name")
        if key == "features":
            has_features = True
            scanner.take("[", 'to open "features"')
            if scanner.peek() == "]":
                scanner.take("]", 'to close "features"')
            else:
                while True:
                    yield scanner.value()
                    if scanner.peek() != ",":
                        scanner.take("]", 'or "," after a feature')
                        break
                    scanner.take(",", "")
        elif key == "type":
            kind = scanner.value()
            if kind != "FeatureCollection":
                scanner.fail(f"its type is {kind!r}, not 'FeatureCollection'")
        else:
            scanner.value()
        if scanner.peek() != ",":
            break
        scanner.take(",", "")
    scanner.take("}", 'or "," after a member')
    if scanner.peek():
        scanner.fail("unexpected data after the end of the FeatureCollection")
    if not has_features:
        scanner.fail('it has no "features" array')


def _property_text(value: Any) -> str | None:
    """A property as text: strings as they are, other JSON values as JSON (true, 1.5, [1])."""
    kind = type(value)
    if value is None or kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    return _JSON.encode(value)


_NUMBER: Final = (int, float)


def _check_feature(feature: Any) -> tuple[str | None, Any, dict[str, Any]]:
    """(problem or None, geometry, properties) of one features element.

    The geometry is None, a shapely geometry, or for the common plain Point its coordinate
    list, so that points are built all at once.
    """
    if type(feature) is not dict:
        return f"feature is a JSON {type(feature).__name__}, not an object", None, {}
    kind = feature.get("type", "Feature")
    if kind != "Feature":
        return f"feature has type {kind!r}, not 'Feature'", None, {}
    props = feature.get("properties")
    if props is None:
        props = {}
    elif type(props) is not dict:
        return "feature properties are not a JSON object", None, {}
    geometry = feature.get("geometry")
    if geometry is None:
        return None, None, props
    if type(geometry) is not dict:
        return f"feature geometry is a JSON {type(geometry).__name__}, not an object", None, {}
    if geometry.get("type") == "Point":
        xy = geometry.get("coordinates")
        if type(xy) is list and len(xy) == 2 and type(xy[0]) in _NUMBER and type(xy[1]) in _NUMBER:
            return None, xy, props
    try:
        return None, shapely.geometry.shape(geometry), props
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        shapely.errors.ShapelyError,
    ) as exc:
        return f"invalid geometry ({type(exc).__name__}: {str(exc).strip()})", None, props


def _bad_feature(ordinal: int, feature: Any, problem: str) -> tuple[int, str, str, str, str]:
    recid = None
    if type(feature) is dict:
        props = feature.get("properties")
        if type(props) is dict:
            recid = next((v for k, v in props.items() if k.lower() == "recid"), None)
        if recid is None:
            recid = feature.get("id")
    text = _JSON.encode(feature)[:_MAX_INPUT_TEXT]
    return (ordinal, _property_text(recid) or str(ordinal), "bad_feature", problem, text)


def _geojson_piece(items: list[tuple[int, Any]]) -> RecordBatch:
    """Features to columns: geometry as WKB, properties flattened to string columns.

    A recId property (any case) or else the feature's id becomes recId; a property named
    geometry or _ordinal is dropped, the feature's own geometry and position win.
    """
    ordinals: list[int] = []
    ids: list[Any] = []
    geometries: list[Any] = []
    points: list[int] = []
    rows: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    errors: list[tuple[int, str, str, str, str]] = []
    for ordinal, feature in items:
        problem, geometry, props = _check_feature(feature)
        if problem is not None:
            errors.append(_bad_feature(ordinal, feature, problem))
            continue
        if type(geometry) is list:
            points.append(len(geometries))
        ordinals.append(ordinal)
        ids.append(feature.get("id"))
        geometries.append(geometry)
        rows.append(props)
        names.update(dict.fromkeys(props))
    shapes = np.empty(len(geometries), dtype=object)
    shapes[:] = geometries
    if points:
        shapes[points] = shapely.points(np.array([geometries[i] for i in points], dtype=float))
    recid_names = [name for name in names if name.lower() == "recid"]
    recids = []
    for ordinal, identifier, row in zip(ordinals, ids, rows, strict=True):
        recid = next((row[n] for n in recid_names if row.get(n) is not None), identifier)
        recids.append(_property_text(recid) or str(ordinal))
    columns = {
        "_ordinal": pa.array(ordinals, type=pa.int64()),
        "recId": pa.array(recids, type=pa.string()),
        "geometry": pa.array(shapely.to_wkb(shapes), type=pa.binary()),
    }
    for name in names:
        if name not in columns and name not in recid_names:
            columns[name] = pa.array([_property_text(row.get(name)) for row in rows], pa.string())
    return RecordBatch(records=pa.table(columns), errors=_errors_table(errors))


def _iter_geojson(stream: BinaryIO, batch_size: int) -> Iterator[RecordBatch]:
    """Features in batches; each batch is built from pieces of _CHUNK_ROWS features so that
    few parsed JSON objects are alive at once (they are what makes the GC slow)."""
    items: list[tuple[int, Any]] = []
    pieces: list[RecordBatch] = []
    count = 0
    features = _iter_features(_JsonScanner(_Utf8Blocks(stream)))
    for ordinal, feature in enumerate(features, 1):
        items.append((ordinal, feature))
        count += 1
        if count == batch_size or len(items) == _CHUNK_ROWS:
            pieces.append(_geojson_piece(items))
            items = []
        if count == batch_size:
            yield _concat(pieces)
            pieces, count = [], 0
    if items:
        pieces.append(_geojson_piece(items))
    if pieces:
        yield _concat(pieces)


def _concat(pieces: list[RecordBatch]) -> RecordBatch:
    if len(pieces) == 1:
        return pieces[0]
    records = pa.concat_tables([p.records for p in pieces], promote_options="default")
    return RecordBatch(records=records, errors=pa.concat_tables([p.errors for p in pieces]))


# --- Parquet -------------------------------------------------------------------------------


def _open_parquet(source: BinaryIO, spec: InputSpec) -> Any:
    start = source.tell()
    magic = source.read(4)
    source.seek(start)
    if not magic:
        raise InputError("empty_input", "input is empty (0 bytes)")
    if spec.gzip or sniff_gzip(magic):
        raise InputError(
            "unsupported_format",
            "gzip-compressed Parquet is not supported; upload the .parquet file itself "
            "(Parquet compresses its data internally)",
        )
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError("bad_parquet", f"input is not a readable Parquet file ({exc})") from None
    _check_columns(tuple(parquet.schema_arrow.names))
    return parquet


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Tables of exactly ``size`` rows (the last may be smaller), whatever the row groups are."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows < size:
            continue
        table = pa.Table.from_batches(pending)
        offset = 0
        while rows - offset >= size:
            yield table.slice(offset, size)
            offset += size
        pending = table.slice(offset).to_batches()
        rows -= offset
    if rows:
        yield pa.Table.from_batches(pending)


def _iter_parquet(source: BinaryIO, spec: InputSpec, batch_size: int) -> Iterator[RecordBatch]:
    parquet = _open_parquet(source, spec)
    schema = parquet.schema_arrow
    rec = _recid_index(schema.names)
    start = 1
    try:
        for table in _rebatch(parquet.iter_batches(batch_size=batch_size), batch_size):
            ordinals = _good_ordinals(start, table.num_rows, [])
            if rec is None:
                recids = pc.cast(ordinals, pa.string())
            else:
                recids = _fill_ids(table.column(rec), ordinals)
                table = table.remove_column(rec)
            table = table.add_column(0, "recId", recids).add_column(0, "_ordinal", ordinals)
            yield RecordBatch(records=table, errors=ERROR_SCHEMA.empty_table())
            start += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InputError("bad_parquet", f"cannot read the Parquet input ({exc})") from None


# --- public entry points -------------------------------------------------------------------


def preview(source: BinaryIO, spec: InputSpec) -> InputPreview:
    """Check the start of an input and list its columns, so a bad upload fails at once."""
    _check_spec(spec)
    if spec.format is InputFormat.PARQUET:
        names = tuple(_open_parquet(source, spec).schema_arrow.names)
        return InputPreview(columns=names, delimiter=None)
    stream = open_decompressed(source, spec)
    try:
        head = stream.read(PREVIEW_BYTES)
        complete = not stream.read(1)
    finally:
        if stream is not source:
            stream.close()
    blocks = _Utf8Blocks(io.BytesIO(head), final=complete)
    if spec.format is InputFormat.CSV:
        lines = _iter_lines(blocks)
        layout, _ = _open_csv(lines, spec)
        for _line in lines:  # decode the rest of the window so bad bytes in it show up now
            pass
        return InputPreview(columns=layout.columns, delimiter=layout.delimiter)
    columns: dict[str, None] = {"geometry": None}
    try:
        for feature in _iter_features(_JsonScanner(blocks, partial=not complete)):
            props = feature.get("properties") if isinstance(feature, dict) else None
            if isinstance(props, dict):
                columns.update(dict.fromkeys(props))
    except _PreviewEnd:
        pass
    return InputPreview(columns=tuple(columns), delimiter=None)


def iter_batches(source: BinaryIO, spec: InputSpec, batch_size: int) -> Iterator[RecordBatch]:
    """Stream the whole input as batches of ``batch_size`` consecutive records (good + bad)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    _check_spec(spec)
    if spec.format is InputFormat.PARQUET:
        yield from _iter_parquet(source, spec, batch_size)
        return
    stream = open_decompressed(source, spec)
    try:
        if spec.format is InputFormat.CSV:
            yield from _iter_csv(stream, spec, batch_size)
        else:
            yield from _iter_geojson(stream, batch_size)
    finally:
        if stream is not source:
            stream.close()
