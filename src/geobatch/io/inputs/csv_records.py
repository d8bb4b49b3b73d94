"""CSV reader: delimiter sniffing, header checks and streaming rows into record batches."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from geobatch.io.inputs.common import (
    _CHUNK_ROWS,
    _MAX_INPUT_TEXT,
    InputError,
    InputSpec,
    RecordBatch,
)
from geobatch.io.inputs.decoding import _Lines, _Utf8Blocks
from geobatch.io.inputs.tables import (
    _check_columns,
    _errors_table,
    _fill_ids,
    _good_ordinals,
    _recid_index,
)

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

_DELIMITERS: Final = (",", ";", "\t", "|")

# The default 128 KiB cap rejects legitimate large fields (long WKT polygons); 16 MiB still
# bounds the memory an unterminated quote can swallow before the row is reported malformed.
csv.field_size_limit(max(csv.field_size_limit(), 16 << 20))


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


@dataclass(frozen=True)
class _SplitLines:
    """A piece of text split into lines and, for the lines with the header's width, fields."""

    present: np.ndarray  # per line: not blank, so a record, good or malformed
    good: np.ndarray  # per line: a record with as many fields as the header
    columns: list[pa.Array]  # the good lines' fields, one array per column
    malformed: list[list[str]]  # the fields of each malformed line, in order


def _lines_of(piece: str) -> pa.Array:
    """The piece's lines without their endings, split by Arrow."""
    text = pa.array([piece])
    if "\r" not in piece:  # the common cases, where a literal split is several times faster
        lines = pc.split_pattern(text, "\n")[0].values
    elif piece.count("\r") == piece.count("\n") == piece.count("\r\n"):
        lines = pc.split_pattern(text, "\r\n")[0].values
    else:
        lines = pc.split_pattern_regex(text, r"\r\n|\r|\n")[0].values
    if piece.endswith(("\n", "\r")):
        lines = lines.slice(0, len(lines) - 1)  # the empty text after the last line end
    return lines


def _field_counts(lines: pa.Array, delimiter: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    present = np.asarray(pc.binary_length(lines)) > 0  # blank lines are not records
    fields = np.asarray(pc.count_substring(lines, delimiter)) + 1
    return present, present & (fields == width)


def _split_plain(piece: str, delimiter: str, width: int) -> _SplitLines:
    """Text without quotes: every delimiter separates two fields."""
    lines = _lines_of(piece)
    present, good = _field_counts(lines, delimiter, width)
    good_lines = lines.filter(pa.array(good))
    if width == 1:
        columns = [good_lines]
    else:
        split = pc.split_pattern(good_lines, delimiter)
        columns = [pc.list_element(split, i) for i in range(width)]
    malformed = lines.filter(pa.array(present & ~good)).to_pylist()
    return _SplitLines(present, good, columns, [line.split(delimiter) for line in malformed])


@functools.cache
def _quoted_field(delimiter: str) -> re.Pattern[str]:
    """A whole field in quotes on one line: after a line start or a delimiter, before a
    delimiter or a line end, its quotes doubled inside. It starts with a literal quote, which
    makes the search several times faster than a pattern that starts with the line start."""
    d = re.escape(delimiter)
    return re.compile(rf'"(?<![^{d}\n]")[^"\r\n]*"(?:"[^"\r\n]*")*(?![^{d}\r\n])')


def _split_quoted(piece: str, delimiter: str, width: int) -> _SplitLines | None:
    """Text whose quotes all enclose whole one-line fields, split by Arrow's CSV parser.

    Such text reads exactly as csv.reader reads it. Any other use of quotes (a field over
    several lines, a quote inside an unquoted field) gives None: csv.reader must read it.
    """
    bare = _quoted_field(delimiter).sub("q", piece)  # each quoted field as one plain letter
    if '"' in bare or piece.startswith("\ufeff"):
        return None  # (Arrow would drop a leading U+FEFF as a byte-order mark)
    present, good = _field_counts(_lines_of(bare), delimiter, width)
    names = [f"c{i}" for i in range(width)]
    data = piece.encode()
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(
            column_names=names, use_threads=False, block_size=max(len(data) + 1, 1 << 20)
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, newlines_in_values=False, invalid_row_handler=lambda _: "skip"
        ),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
    )
    if table.num_rows != int(good.sum()):
        return None
    columns = [table.column(i).combine_chunks() for i in range(width)]
    bad = present & ~good
    bad_lines = _lines_of(piece).filter(pa.array(bad)).to_pylist() if bad.any() else []
    malformed = [next(csv.reader([line], delimiter=delimiter, strict=False)) for line in bad_lines]
    return _SplitLines(present, good, columns, malformed)


def _split_piece(piece: str, delimiter: str, width: int) -> _SplitLines | None:
    """The piece split by Arrow, or None where only csv.reader's grammar will do."""
    if "\x00" in piece or len(piece) > csv.field_size_limit():
        return None
    if '"' not in piece:
        return _split_plain(piece, delimiter, width)
    return _split_quoted(piece, delimiter, width)


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

    def add_good(self, good: list[list[str]]) -> None:
        """Add good rows that fit in the batch (``settle`` keeps them below its size)."""
        if good:
            self.chunks.append(self._columns(good))
            self.count += len(good)

    def add_lines(self, split: _SplitLines, lines_before: int) -> Iterator[RecordBatch]:
        """Add the records of a piece split by Arrow; yield full batches."""
        width = len(self.layout.columns)
        present, good, columns = split.present, split.good, split.columns
        bad_at = np.flatnonzero(present & ~good)
        bad: list[tuple[list[str], str]] = []
        for at, row in zip(bad_at.tolist(), split.malformed, strict=True):
            line = lines_before + at + 1
            bad.append((row, f"expected {width} fields, found {len(row)} (line {line})"))
        is_good = good[present]
        done = taken = 0
        bad_rows = iter(bad)
        while done < len(is_good):
            size = min(len(is_good) - done, self.batch_size - self.count)
            part = is_good[done : done + size]
            count = int(part.sum())
            if count:
                self.chunks.append([column.slice(taken, count) for column in columns])
            for offset in np.flatnonzero(~part).tolist():
                row, message = next(bad_rows)
                self.bad.append((self.start + self.count + offset, row, message))
            self.count += size
            done += size
            taken += count
            if self.count == self.batch_size:
                batch = self.finish()
                if batch is not None:
                    yield batch

    def finish(self) -> RecordBatch | None:
        """The batch so far as a RecordBatch, or None if it is empty."""
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


def _open_csv(lines: Iterator[str], spec: InputSpec) -> tuple[_CsvLayout, _CsvReader, list[str]]:
    """Sniff the delimiter, read (or take) the header and check it.

    Returns the row reader and the lines it has been given but not read: the first line
    when ``input_columns`` say that it is data.
    """
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
        pending = [first]
    else:
        pending = []
        try:
            columns = tuple(next(reader))
        except csv.Error as exc:
            raise InputError("bad_header", f"cannot parse the header line ({exc})") from None
    _check_columns(columns)
    return _CsvLayout(delimiter, columns, skipped), reader, pending


def _line_ends(text: str) -> int:
    """How many lines ``io.StringIO(text, newline="")`` splits the text into, less a tail."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _iter_csv(stream: BinaryIO, spec: InputSpec, batch_size: int) -> Iterator[RecordBatch]:
    """Rows in batches: text is split column-wise by Arrow where it can be, else by csv.reader.

    Most large inputs hold no quote at all (coordinates, ids, codes), or quotes only around
    whole fields on one line (addresses with commas). Their text is split into lines and
    fields by Arrow a megabyte at a time, which gives exactly what csv.reader gives for such
    text at a fraction of the cost. From the first piece that uses quotes otherwise (a field
    over several lines, a stray quote), csv.reader reads the rest: the switch happens at a
    line end, where no quoted field can be open.
    """
    lines = _Lines(_Utf8Blocks(stream))
    layout, reader, pending = _open_csv(lines, spec)
    batcher = _CsvBatcher(layout, batch_size)
    lines_read = reader.line_num + layout.skipped
    width = len(layout.columns)
    for piece in itertools.chain(pending, lines.pieces()):
        split = _split_piece(piece, layout.delimiter, width)
        if split is None:
            rest = itertools.chain(io.StringIO(piece, newline=""), lines)
            rows = csv.reader(rest, delimiter=layout.delimiter, strict=False)
            yield from _iter_rows(rows, batcher, lines_read)
            break
        yield from batcher.add_lines(split, lines_read)
        lines_read += _line_ends(piece)
    last = batcher.finish()
    if last is not None:
        yield last


def _iter_rows(
    reader: _CsvReader, batcher: _CsvBatcher, lines_before: int
) -> Iterator[RecordBatch]:
    """Feed csv.reader's rows to the batcher; ``lines_before`` turns its lines into file lines."""
    width = len(batcher.layout.columns)
    good: list[list[str]] = []
    limit = min(_CHUNK_ROWS, batcher.batch_size - batcher.count)
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
                    line = reader.line_num + lines_before
                    message = f"expected {width} fields, found {len(row)} (line {line})"
                    batcher.add_bad(len(good), row, message)
                good, limit = batcher.settle(good)
                if batcher.ready is not None:
                    yield batcher.ready
                    batcher.ready = None
        except csv.Error as exc:  # e.g. an over-long field; the reader resumes on the next line
            batcher.add_bad(len(good), None, f"{exc} (line {reader.line_num + lines_before})")
            good, limit = batcher.settle(good)
            if batcher.ready is not None:
                yield batcher.ready
                batcher.ready = None
            continue
        break
    batcher.add_good(good)
