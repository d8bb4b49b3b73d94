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
from typing import Final

import numpy as np
import numpy.typing as npt

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


class UploadGuard:
    """Feed it every piece of an upload in order; it raises ``InputError`` on the first breach."""

    def __init__(self, limits: InputLimits, fmt: InputFormat, delimiter: str | None = None) -> None:
        self._limits = limits
        self._check_text = fmt is InputFormat.CSV
        self._inflater: zlib._Decompress | None = None
        self._started = False
        self._compressed = 0
        self._inflated = 0
        self._line = 0  # length of the line in progress
        self._field = 0  # length of the field in progress
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
        if not self._check_text or not data:
            return
        octets = np.frombuffer(data, dtype=np.uint8)
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
