"""Limits an upload must respect, checked on the bytes as they arrive.

A compressed upload is inflated piece by piece with a bounded output size, so a gzip bomb is
refused as soon as its decompressed size or its compression ratio crosses the limit, with
memory flat whatever it would expand to. CSV line and field lengths are checked on the
decompressed bytes without parsing: a field is the text between
delimiters, so a quoted field holding delimiters counts as several (its line still counts).
Both are vectorised with NumPy: a check costs a few passes over each megabyte.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from geobatch.io.inputs.common import InputError, InputFormat
from geobatch.io.inputs.decoding import sniff_gzip

_INFLATE_PIECE: Final = 1 << 20
# Ratios are only judged once this much has been inflated: tiny files compress oddly.
_RATIO_FLOOR: Final = 16 << 20


@dataclass(frozen=True, kw_only=True)
class InputLimits:
    max_decompressed_bytes: int
    max_compression_ratio: float
    max_line_bytes: int
    max_field_bytes: int
    max_nesting_depth: int
    max_columns: int = 500


class UploadGuard:
    """Feed it every piece of an upload in order; it raises ``InputError`` on the first breach."""

    def __init__(self, limits: InputLimits, fmt: InputFormat, delimiter: str | None = None) -> None:
        self._limits = limits
        self._format = fmt
        self._inflater: zlib._Decompress | None = None
        self._started = False
        self._compressed = 0
        self._inflated = 0
        self._line = 0  # length of the line in progress
        self._field = 0  # length of the field in progress
        self._depth = 0  # JSON nesting depth at the end of the bytes seen
        self._in_string = False
        self._backslashes = 0  # backslashes that end the bytes seen
        self._separators = np.frombuffer((delimiter or ",;\t|").encode(), dtype=np.uint8)

    def feed(self, piece: bytes) -> None:
        if not self._started:
            self._started = True
            if sniff_gzip(piece):
                self._inflater = zlib.decompressobj(wbits=31)
        self._compressed += len(piece)
        if self._inflater is None:
            self._text(piece)
            return
        data = piece
        while data:
            out = self._inflater.decompress(data, _INFLATE_PIECE)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof and self._inflater.unused_data:
                # gzip allows several members back to back; inflate the next one too
                data = self._inflater.unused_data + data
                self._inflater = zlib.decompressobj(wbits=31)
            self._count(out)

    def _count(self, out: bytes) -> None:
        self._inflated += len(out)
        limits = self._limits
        if self._inflated > limits.max_decompressed_bytes:
            raise InputError(
                "decompressed_too_large",
                f"the input decompresses to more than {limits.max_decompressed_bytes} bytes",
            )
        if (
            self._inflated > _RATIO_FLOOR
            and self._inflated > limits.max_compression_ratio * self._compressed
        ):
            raise InputError(
                "compression_ratio_too_high",
                f"the input expands more than {limits.max_compression_ratio:g} times when "
                "decompressed",
            )
        self._text(out)

    def _text(self, data: bytes) -> None:
        if not data:
            return
        octets = np.frombuffer(data, dtype=np.uint8)
        if self._format is InputFormat.GEOJSON:
            self._nesting(octets)
        elif self._format is InputFormat.CSV:
            self._lengths(octets)

    def _nesting(self, octets: npt.NDArray[np.uint8]) -> None:
        """Track JSON nesting outside strings; a quote after an odd run of backslashes is
        escaped."""
        positions = np.arange(octets.size, dtype=np.int64)
        # the last position before each byte that is not a backslash (-1 - carried run: the
        # backslashes that ended the pieces before)
        plain = np.where(octets != 92, positions, -1 - self._backslashes)
        last_plain = np.maximum.accumulate(plain)
        run_before = np.empty_like(positions)
        run_before[0] = self._backslashes
        run_before[1:] = positions[:-1] - last_plain[:-1]
        quotes = (octets == 34) & (run_before % 2 == 0)
        in_string = (np.cumsum(quotes, dtype=np.int64) + self._in_string) % 2 == 1
        steps = ((octets == 91) | (octets == 123)).astype(np.int64) - (
            (octets == 93) | (octets == 125)
        ).astype(np.int64)
        steps[in_string] = 0
        depth = self._depth + np.cumsum(steps)
        deepest = int(depth.max())
        self._depth = int(depth[-1])
        self._in_string = bool(in_string[-1])
        self._backslashes = int(positions[-1] - last_plain[-1])
        if deepest > self._limits.max_nesting_depth:
            raise InputError(
                "too_deeply_nested",
                f"the JSON nests deeper than {self._limits.max_nesting_depth} levels",
            )

    def _lengths(self, octets: npt.NDArray[np.uint8]) -> None:
        line_ends = (octets == 10) | (octets == 13)
        longest, self._line = _runs(line_ends, self._line)
        if max(longest, self._line) > self._limits.max_line_bytes:
            raise InputError(
                "line_too_long", f"a line is longer than {self._limits.max_line_bytes} bytes"
            )
        field_ends = line_ends | np.isin(octets, self._separators)
        longest, self._field = _runs(field_ends, self._field)
        if max(longest, self._field) > self._limits.max_field_bytes:
            raise InputError(
                "field_too_large", f"a field is longer than {self._limits.max_field_bytes} bytes"
            )


def _runs(ends: npt.NDArray[np.bool_], carried: int) -> tuple[int, int]:
    """The longest run closed in this piece and the run still open at its end.

    ``carried`` is the length of the run left open by the pieces before.
    """
    positions = np.flatnonzero(ends)
    if positions.size == 0:
        return 0, carried + ends.size
    longest = carried + int(positions[0])
    if positions.size > 1:
        longest = max(longest, int(np.diff(positions).max()) - 1)
    return longest, ends.size - int(positions[-1]) - 1


MAX_PARQUET_FOOTER: Final = 64 << 20


def _type_depth(kind: pa.DataType) -> int:
    children = [kind.field(i).type for i in range(kind.num_fields)]
    return 1 + max((_type_depth(child) for child in children), default=0)


def check_parquet(source: BinaryIO, *, max_columns: int, max_nesting_depth: int) -> None:
    """Refuse a Parquet file whose footer or schema is unreasonable before anything reads it.

    The footer length is read from the file's last bytes first, so a file that claims a
    footer of gigabytes is refused without allocating it.
    """
    source.seek(0, 2)
    size = source.tell()
    if size < 12:
        return  # too short to be Parquet: the reader says so
    source.seek(size - 8)
    tail = source.read(8)
    source.seek(0)
    footer = int.from_bytes(tail[:4], "little")
    if tail[4:] == b"PAR1" and (footer > MAX_PARQUET_FOOTER or footer > size - 12):
        raise InputError(
            "bad_parquet",
            f"the Parquet footer claims {footer} bytes; at most {MAX_PARQUET_FOOTER} are "
            "accepted, and no more than the file holds",
        )
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError, ValueError):
        source.seek(0)
        return  # not readable Parquet: the reader reports it
    schema = parquet.schema_arrow
    source.seek(0)
    leaves = parquet.metadata.num_columns
    if max(leaves, len(schema)) > max_columns:
        raise InputError(
            "too_many_columns",
            f"the Parquet file has {leaves} columns; the limit is {max_columns}",
        )
    deepest = max((_type_depth(field.type) for field in schema), default=0)
    if deepest > max_nesting_depth:
        raise InputError(
            "too_deeply_nested",
            f"a Parquet column nests {deepest} levels deep; the limit is {max_nesting_depth}",
        )
