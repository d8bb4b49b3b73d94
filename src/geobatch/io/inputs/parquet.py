"""(Geo)Parquet reader: opening, header checks and re-batching row groups into record batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from geobatch.io.inputs.common import ERROR_SCHEMA, InputError, InputSpec, RecordBatch
from geobatch.io.inputs.decoding import sniff_gzip
from geobatch.io.inputs.tables import _check_columns, _fill_ids, _good_ordinals, _recid_index


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
