"""The result columns shared by forward geocoding, reverse geocoding and lookup.

One row per candidate: ``seqNumber`` 1..n of ``seqLength`` n, best first. A record without any
match gets one row with ``seqNumber`` and ``seqLength`` 0 and null match fields, so it is
answered (not an error) and still joinable by ``recId``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

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
        pa.field("lat", pa.float64()),
        pa.field("lon", pa.float64()),
        pa.field("label", pa.string()),
        pa.field("houseNumber", pa.string()),
        pa.field("street", pa.string()),
        pa.field("postalCode", pa.string()),
        pa.field("city", pa.string()),
        pa.field("state", pa.string()),
        pa.field("country", pa.string()),
        pa.field("match_level", pa.string()),
        pa.field("confidence", pa.int32()),  # 0-100, calibrated: see evals/geocode.py
        pa.field("distance_m", pa.float64()),  # reverse geocoding: from the query point
        pa.field("ref_id", pa.string()),  # the reference row's own id (osm:node/1, geonames:..)
    ]
)


def geocode_table(rows: Mapping[str, Sequence[Any]]) -> pa.Table:
    """A result table from column lists; columns not given are null."""
    size = len(next(iter(rows.values()))) if rows else 0
    arrays = [
        pa.array(rows[field.name], field.type) if field.name in rows else pa.nulls(size, field.type)
        for field in GEOCODE_COLUMNS
    ]
    return pa.Table.from_arrays(arrays, schema=GEOCODE_COLUMNS)
