"""What every engine returns for a batch of records."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

ERROR_COLUMNS = pa.schema(
    [
        pa.field("_ordinal", pa.int64()),
        pa.field("recId", pa.string()),
        pa.field("code", pa.string()),
        pa.field("message", pa.string()),
        pa.field("input", pa.string()),
    ]
)


@dataclass(frozen=True, kw_only=True)
class EngineResult:
    """``results`` holds one or more rows per answered record (``recId``, ``seqNumber``,
    ``seqLength`` plus the engine's columns); ``errors`` one row per record that could not be
    processed, in ``ERROR_COLUMNS``. Every input record is in exactly one of the two."""

    results: pa.Table
    errors: pa.Table


def empty_errors() -> pa.Table:
    return ERROR_COLUMNS.empty_table()
