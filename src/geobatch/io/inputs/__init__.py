"""Input readers: turn an uploaded CSV, GeoJSON or (Geo)Parquet file into Arrow record batches.

Uploads can hold hundreds of millions of records, so every reader streams: memory is bounded
by the batch size, never by the file size. A record that cannot be read on its own (a CSV row
with the wrong field count, a GeoJSON feature with a broken geometry) becomes a row of the
batch's ``errors`` table, so a job can report it and go on; a problem with the file as a whole
(bad encoding, truncated gzip, not a FeatureCollection) raises :class:`InputError`. Every
record, good or bad, gets a 1-based ``_ordinal`` that is stable across re-runs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

from geobatch.io.inputs.common import (
    ERROR_SCHEMA,
    PREVIEW_BYTES,
    InputError,
    InputFormat,
    InputPreview,
    InputSpec,
    RecordBatch,
    _check_spec,
    _PreviewEnd,
    format_from_media_type,
)
from geobatch.io.inputs.csv_records import _iter_csv, _open_csv
from geobatch.io.inputs.decoding import _Lines, _Utf8Blocks, open_decompressed, sniff_gzip
from geobatch.io.inputs.geojson import _iter_features, _iter_geojson, _JsonScanner
from geobatch.io.inputs.parquet import _iter_parquet, _open_parquet

__all__ = [
    "ERROR_SCHEMA",
    "PREVIEW_BYTES",
    "InputError",
    "InputFormat",
    "InputPreview",
    "InputSpec",
    "RecordBatch",
    "format_from_media_type",
    "iter_batches",
    "open_decompressed",
    "preview",
    "sniff_gzip",
]


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
        lines = _Lines(blocks)
        layout, _, _ = _open_csv(lines, spec)
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
            yield from _iter_geojson(stream, batch_size, spec.max_geometry_coordinates)
    finally:
        if stream is not source:
            stream.close()
