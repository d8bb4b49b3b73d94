"""Road match results as Arrow tables, in two layouts.

``roads``: one row per input road (``seqNumber`` = ``seqLength`` = 1) with its status,
confidence, matched ratio and the matched reference segments as a list of structs; the list
survives every output format (Parquet keeps it nested, GeoJSON writes it as a JSON array, CSV
as JSON text). ``pairs``: the flat form, one row per (input road, reference segment), the n-th
of n for that road; a road without any match gets one row with ``seqNumber`` and ``seqLength``
0 and null segment fields, so it is still answered and joinable by ``recId``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Final, Literal

import numpy as np
import pyarrow as pa
import shapely

from geobatch.engines.roadmatch.match import RoadMatch
from geobatch.engines.roadmatch.matches import FULL, PARTIAL, UNMATCHED, Matches

Layout = Literal["roads", "pairs"]

SEGMENT_FIELDS: Final = [
    pa.field("segment_id", pa.string()),
    pa.field("source_id", pa.string()),
    pa.field("from_fraction", pa.float64()),  # along the reference segment, 0..1
    pa.field("to_fraction", pa.float64()),
    pa.field("input_from_m", pa.float64()),  # the same stretch along the input road, metres
    pa.field("input_to_m", pa.float64()),
    pa.field("length_m", pa.float64()),
    pa.field("confidence", pa.int32()),
]
SEGMENT: Final = pa.struct(SEGMENT_FIELDS)

_KEYS: Final = [
    pa.field("_ordinal", pa.int64()),
    pa.field("recId", pa.string()),
    pa.field("seqNumber", pa.int32()),
    pa.field("seqLength", pa.int32()),
    pa.field("id", pa.string()),
    pa.field("status", pa.string()),  # full | partial | unmatched
]

ROAD_COLUMNS: Final = pa.schema(
    [
        *_KEYS,
        pa.field("confidence", pa.int32()),  # 0-100
        pa.field("matched_ratio", pa.float64()),  # of the input road's length
        pa.field("length_m", pa.float64()),  # the input road's length
        pa.field("segments", pa.list_(SEGMENT)),
    ]
)

PAIR_COLUMNS: Final = pa.schema(
    [
        *_KEYS,
        pa.field("road_confidence", pa.int32()),
        pa.field("matched_ratio", pa.float64()),
        *SEGMENT_FIELDS,
    ]
)


# One input road's match, its parts (of a MultiLineString) combined: the same fields as one
# line's match, so a road of one part (most roads) is answered by its match as it is.
RoadAnswer = RoadMatch


def _status(statuses: set[int]) -> int:
    if statuses == {FULL}:
        return FULL
    if statuses == {UNMATCHED}:
        return UNMATCHED
    return PARTIAL


def combine_parts(owner: np.ndarray, matches: Matches) -> Matches:
    """One answer per run of equal ``owner`` values (a record's parts, consecutive).

    Lengths add up; ratio and confidence are length-weighted; a later part's input ranges
    are shifted by the length of the parts before it, so they read along the whole road.
    """
    if len(owner) == 0:
        return matches
    heads = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    if len(heads) == len(owner):  # every road of one part: answered by its match as it is
        return matches
    ends = np.r_[heads[1:], len(owner)]
    status = matches.status[heads].copy()
    confidence = matches.confidence[heads].copy()
    ratio = matches.matched_ratio[heads].copy()
    length = matches.length_m[heads].copy()
    shift = np.zeros(len(matches.segment_id))
    # Few records have several parts: those are combined one by one, in plain floats, so a
    # road's figures do not depend on the other roads of the chunk.
    for k in np.flatnonzero(ends - heads > 1).tolist():
        begin, end = int(heads[k]), int(ends[k])
        lengths = matches.length_m[begin:end].tolist()
        total = sum(lengths)
        weight = [part / total if total > 0 else 1 / len(lengths) for part in lengths]
        confs = matches.confidence[begin:end].tolist()
        ratios = matches.matched_ratio[begin:end].tolist()
        status[k] = _status(set(matches.status[begin:end].tolist()))
        confidence[k] = sum(w * c for w, c in zip(weight, confs, strict=True))
        ratio[k] = sum(w * r for w, r in zip(weight, ratios, strict=True))
        length[k] = total
        offset = 0.0
        for part, part_length in enumerate(lengths):
            shift[matches.offsets[begin + part] : matches.offsets[begin + part + 1]] = offset
            offset += part_length
    moved = shift != 0
    return replace(
        matches,
        status=status,
        confidence=confidence,
        matched_ratio=ratio,
        length_m=length,
        offsets=matches.offsets[np.r_[heads, len(owner)]],
        input_from_m=np.where(moved, matches.input_from_m + shift, matches.input_from_m),
        input_to_m=np.where(moved, matches.input_to_m + shift, matches.input_to_m),
    )


def road_table(
    records: pa.Table,
    rows: np.ndarray,
    answers: Matches,
    layout: Layout = "roads",
    *,
    geometry: bool = False,
) -> pa.Table:
    """The result table of the matched ``rows`` of ``records`` (one answer per row).

    With ``geometry``, a WKB ``geometry`` column (GeoParquet metadata included) holds what was
    matched: per road a MultiLineString of its stretches, per pair the stretch's LineString.
    The road id is the input's ``id`` (or ``trace_id``) column, else its ``recId``.
    """
    take = pa.array(np.asarray(rows, dtype=np.int64), pa.int64())
    ordinals = records.column("_ordinal").take(take)
    rec_ids = records.column("recId").take(take)
    id_column = next((n for n in records.column_names if n.lower() in ("id", "trace_id")), None)
    ids = (
        records.column(id_column).cast(pa.string()).take(take)
        if id_column is not None
        else rec_ids.cast(pa.string())
    )
    if layout == "pairs":
        table = _pairs(ordinals, rec_ids, ids, answers)
        if geometry:
            table = _with_geometry(table, _pair_shapes(answers), "LineString")
        return table
    size = len(rows)
    columns = {
        "_ordinal": ordinals,
        "recId": rec_ids,
        "seqNumber": pa.array(np.ones(size, dtype=np.int32)),
        "seqLength": pa.array(np.ones(size, dtype=np.int32)),
        "id": ids,
        "status": pa.array(answers.status_names(), pa.string()),
        "confidence": pa.array(np.round(answers.confidence).astype(np.int32)),
        "matched_ratio": pa.array(np.round(answers.matched_ratio, 4)),
        "length_m": pa.array(np.round(answers.length_m, 2)),
        "segments": _segment_lists(answers),
    }
    table = pa.table(columns, schema=ROAD_COLUMNS)
    if geometry:
        table = _with_geometry(table, _road_shapes(answers), "MultiLineString")
    return table


def _segment_lists(answers: Matches) -> pa.Array:
    """Every answer's segments as one list-of-struct column, built column by column."""

    def rounded(values: np.ndarray, digits: int) -> pa.Array:
        return pa.array(np.round(values, digits), pa.float64())

    fields = [
        pa.array(answers.segment_id, pa.string()),
        pa.array(answers.source_id, pa.string()),
        rounded(answers.from_fraction, 6),
        rounded(answers.to_fraction, 6),
        rounded(answers.input_from_m, 2),
        rounded(answers.input_to_m, 2),
        rounded(answers.segment_length_m, 2),
        pa.array(np.round(answers.segment_confidence).astype(np.int32)),
    ]
    values = pa.StructArray.from_arrays(fields, fields=SEGMENT_FIELDS)
    offsets = pa.array(answers.offsets.astype(np.int32))
    return pa.ListArray.from_arrays(offsets, values, type=pa.list_(SEGMENT))


def _road_shapes(answers: Matches) -> np.ndarray:
    shapes = np.full(len(answers), None, dtype=object)
    present = shapely.is_geometry(answers.geometry)
    if present.any():
        road, dense = np.unique(answers.road_of_stretch[present], return_inverse=True)
        shapes[road] = shapely.multilinestrings(answers.geometry[present], indices=dense)
    return shapes


def _pair_rows(answers: Matches) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the pairs layout: its road, and its stretch (-1 on a road without any)."""
    counts = answers.counts
    per_road = np.maximum(counts, 1)
    road = np.repeat(np.arange(len(answers)), per_road)
    rank = np.arange(len(road)) - np.repeat(np.cumsum(per_road) - per_road, per_road)
    stretch = np.where(counts[road] > 0, answers.offsets[road] + rank, -1)
    return road, stretch


def _pair_shapes(answers: Matches) -> np.ndarray:
    """In the row order of the pairs layout (one null row for a road without segments)."""
    _, stretch = _pair_rows(answers)
    shapes = np.full(len(stretch), None, dtype=object)
    has = stretch >= 0
    shapes[has] = answers.geometry[stretch[has]]
    return shapes


def _with_geometry(table: pa.Table, shapes: np.ndarray, kind: str) -> pa.Table:
    # No "crs" key: GeoParquet reads its absence as OGC:CRS84, which this is.
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": [kind]}},
    }
    table = table.append_column("geometry", pa.array(shapely.to_wkb(shapes), pa.binary()))
    metadata = {**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()}
    return table.replace_schema_metadata(metadata)


def _pairs(
    ordinals: pa.ChunkedArray, rec_ids: pa.ChunkedArray, ids: pa.ChunkedArray, answers: Matches
) -> pa.Table:
    road, stretch = _pair_rows(answers)
    has = stretch >= 0
    at = pa.array(road)
    mask = ~has
    # Rows without a stretch read a filler appended past the last one, then masked as null.
    pick = np.where(has, stretch, len(answers.segment_id))

    def per_stretch(values: np.ndarray, filler: object, kind: pa.DataType) -> pa.Array:
        padded = np.concatenate([values, np.array([filler], dtype=values.dtype)])
        return pa.array(padded[pick], kind, mask=mask)

    def rounded(values: np.ndarray, digits: int) -> pa.Array:
        # Rounded as Python rounds, value by value: the figures this layout has always given.
        picked = np.concatenate([values, [0.0]])[pick].tolist()
        values = np.asarray([round(v, digits) for v in picked], dtype=np.float64)
        return pa.array(values, pa.float64(), mask=mask)

    columns = {
        "_ordinal": ordinals.take(at),
        "recId": rec_ids.take(at),
        "seqNumber": pa.array(np.where(has, stretch - answers.offsets[road] + 1, 0), pa.int32()),
        "seqLength": pa.array(answers.counts[road], pa.int32()),
        "id": ids.take(at),
        "status": pa.array(answers.status_names()[road], pa.string()),
        "road_confidence": pa.array(np.round(answers.confidence[road]).astype(np.int32)),
        "matched_ratio": pa.array([round(v, 4) for v in answers.matched_ratio[road].tolist()]),
        "segment_id": per_stretch(answers.segment_id, "", pa.string()),
        "source_id": per_stretch(answers.source_id, "", pa.string()),
        "from_fraction": rounded(answers.from_fraction, 6),
        "to_fraction": rounded(answers.to_fraction, 6),
        "input_from_m": rounded(answers.input_from_m, 2),
        "input_to_m": rounded(answers.input_to_m, 2),
        "length_m": rounded(answers.segment_length_m, 2),
        "confidence": per_stretch(
            np.round(answers.segment_confidence).astype(np.int32), 0, pa.int32()
        ),
    }
    return pa.table(columns, schema=PAIR_COLUMNS)
