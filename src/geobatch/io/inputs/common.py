"""Input types, errors and the mapping of media types and file names to input formats."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import pyarrow as pa

from geobatch.errors import InvalidInput

PREVIEW_BYTES: Final = 1 << 20
_MAX_INPUT_TEXT: Final = 1000
_CHUNK_ROWS: Final = 8192

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
    max_geometry_coordinates: int = 0
    """A GeoJSON feature whose geometry has more coordinates is a bad record; 0 = no limit."""


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
