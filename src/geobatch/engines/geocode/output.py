"""The result columns shared by forward geocoding, reverse geocoding and lookup.

One row per candidate: ``seqNumber`` 1..n of ``seqLength`` n, best first. A record without any
match gets one row with ``seqNumber`` and ``seqLength`` 0 and null match fields, so it is
answered (not an error) and still joinable by ``recId``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from geobatch.reference.indexes.lookup import OBJECT_COLUMNS

MATCH_LEVELS = (
    "houseNumber",
    "interpolated",
    "street",
    "poi",
    "locality",
    "region",
    "country",
)
"""From most to least precise."""

GEOCODE_COLUMNS = pa.schema(
    [
        pa.field("_ordinal", pa.int64()),
        pa.field("recId", pa.string()),
        pa.field("seqNumber", pa.int32()),
        pa.field("seqLength", pa.int32()),
        *OBJECT_COLUMNS,
    ]
)
"""A candidate's position among its record's, then what it matched (``OBJECT_COLUMNS``)."""


def geocode_table(rows: Mapping[str, Sequence[Any]]) -> pa.Table:
    """A result table from column lists; columns not given are null."""
    size = len(next(iter(rows.values()))) if rows else 0
    arrays = [
        pa.array(rows[field.name], field.type) if field.name in rows else pa.nulls(size, field.type)
        for field in GEOCODE_COLUMNS
    ]
    return pa.Table.from_arrays(arrays, schema=GEOCODE_COLUMNS)
