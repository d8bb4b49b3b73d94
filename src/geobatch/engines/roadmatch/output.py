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
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import shapely

from geobatch.engines.roadmatch.match import RoadMatch, SegmentMatch

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


def _status(statuses: set[str]) -> Literal["full", "partial", "unmatched"]:
    if statuses == {"full"}:
        return "full"
    if statuses == {"unmatched"}:
        return "unmatched"
    return "partial"


def combine_parts(owner: np.ndarray, matches: Sequence[RoadMatch]) -> list[RoadAnswer]:
    """One answer per run of equal ``owner`` values (a record's parts, consecutive).

    Lengths add up; ratio and confidence are length-weighted; a later part's input ranges
    are shifted by the length of the parts before it, so they read along the whole road.
    """
    answers: list[RoadAnswer] = []
    if len(owner) == 0:
        return answers
    heads = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    ends = [*heads[1:].tolist(), len(owner)]
    for begin, end in zip(heads.tolist(), ends, strict=True):
        parts = list(matches[begin:end])
        if len(parts) == 1:
            answers.append(parts[0])
            continue
        total = sum(part.length_m for part in parts)
        weight = [part.length_m / total if total > 0 else 1 / len(parts) for part in parts]
        segments: list[SegmentMatch] = []
        offset = 0.0
        for part in parts:
            segments.extend(_shifted(segment, offset) for segment in part.segments)
            offset += part.length_m
        answers.append(
            RoadAnswer(
                status=_status({part.status for part in parts}),
                confidence=sum(w * p.confidence for w, p in zip(weight, parts, strict=True)),
                matched_ratio=sum(w * p.matched_ratio for w, p in zip(weight, parts, strict=True)),
                length_m=total,
                segments=tuple(segments),
            )
        )
    return answers


def _shifted(segment: SegmentMatch, offset: float) -> SegmentMatch:
    if offset == 0:
        return segment
    return replace(
        segment,
        input_from_m=segment.input_from_m + offset,
        input_to_m=segment.input_to_m + offset,
    )


def _segment_row(segment: SegmentMatch) -> dict[str, Any]:
    return {
        "segment_id": segment.segment_id,
        "source_id": segment.source_id,
        "from_fraction": round(segment.from_fraction, 6),
        "to_fraction": round(segment.to_fraction, 6),
        "input_from_m": round(segment.input_from_m, 2),
        "input_to_m": round(segment.input_to_m, 2),
        "length_m": round(segment.length_m, 2),
        "confidence": round(segment.confidence),
    }


def road_table(
    records: pa.Table,
    rows: np.ndarray,
    answers: Sequence[RoadAnswer],
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
        records.column(id_column).cast(pa.string()).take(take).to_pylist()
        if id_column is not None
        else rec_ids.cast(pa.string()).to_pylist()
    )
    if layout == "pairs":
        table = _pairs(ordinals.to_pylist(), rec_ids.to_pylist(), ids, answers)
        if geometry:
            table = _with_geometry(table, _pair_shapes(answers), "LineString")
        return table
    size = len(rows)
    columns = {
        "_ordinal": ordinals,
        "recId": rec_ids,
        "seqNumber": pa.array(np.ones(size, dtype=np.int32)),
        "seqLength": pa.array(np.ones(size, dtype=np.int32)),
        "id": pa.array(ids, pa.string()),
        "status": pa.array([a.status for a in answers], pa.string()),
        "confidence": pa.array(np.round(_floats(answers, "confidence")).astype(np.int32)),
        "matched_ratio": pa.array(np.round(_floats(answers, "matched_ratio"), 4)),
        "length_m": pa.array(np.round(_floats(answers, "length_m"), 2)),
        "segments": _segment_lists(answers),
    }
    table = pa.table(columns, schema=ROAD_COLUMNS)
    if geometry:
        table = _with_geometry(table, _road_shapes(answers), "MultiLineString")
    return table


def _floats(answers: Sequence[RoadAnswer], name: str) -> np.ndarray:
    """One float field of every answer, as an array (rounded in bulk, not value by value)."""
    return np.fromiter((getattr(a, name) for a in answers), np.float64, len(answers))


def _segment_lists(answers: Sequence[RoadAnswer]) -> pa.Array:
    """Every answer's segments as one list-of-struct column, built column by column."""
    flat = [segment for answer in answers for segment in answer.segments]
    counts = np.fromiter((len(answer.segments) for answer in answers), np.int32, len(answers))
    offsets = np.zeros(len(answers) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])

    def rounded(values: list[float], digits: int) -> pa.Array:
        return pa.array(np.round(np.asarray(values, dtype=np.float64), digits), pa.float64())

    fields = {
        "segment_id": pa.array([s.segment_id for s in flat], pa.string()),
        "source_id": pa.array([s.source_id for s in flat], pa.string()),
        "from_fraction": rounded([s.from_fraction for s in flat], 6),
        "to_fraction": rounded([s.to_fraction for s in flat], 6),
        "input_from_m": rounded([s.input_from_m for s in flat], 2),
        "input_to_m": rounded([s.input_to_m for s in flat], 2),
        "length_m": rounded([s.length_m for s in flat], 2),
        "confidence": pa.array(
            np.round(np.asarray([s.confidence for s in flat], dtype=np.float64)).astype(np.int32)
        ),
    }
    values = pa.StructArray.from_arrays(list(fields.values()), fields=SEGMENT_FIELDS)
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(SEGMENT))


def _road_shapes(answers: Sequence[RoadAnswer]) -> np.ndarray:
    shapes = np.full(len(answers), None, dtype=object)
    for k, answer in enumerate(answers):
        lines = [s.geometry for s in answer.segments if s.geometry is not None]
        if lines:
            shapes[k] = shapely.multilinestrings(lines)
    return shapes


def _pair_shapes(answers: Sequence[RoadAnswer]) -> np.ndarray:
    """In the row order of the pairs layout (one null row for a road without segments)."""
    shapes: list[shapely.LineString | None] = []
    for answer in answers:
        shapes.extend([s.geometry for s in answer.segments] if answer.segments else [None])
    out = np.full(len(shapes), None, dtype=object)
    out[:] = shapes
    return out


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
    ordinals: list[int], rec_ids: list[str], ids: list[str | None], answers: Sequence[RoadAnswer]
) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for ordinal, rec_id, road_id, answer in zip(ordinals, rec_ids, ids, answers, strict=True):
        road = {
            "_ordinal": ordinal,
            "recId": rec_id,
            "id": road_id,
            "status": answer.status,
            "road_confidence": round(answer.confidence),
            "matched_ratio": round(answer.matched_ratio, 4),
        }
        count = len(answer.segments)
        if not count:
            rows.append({**road, "seqNumber": 0, "seqLength": 0})
        for number, segment in enumerate(answer.segments, 1):
            rows.append({**road, "seqNumber": number, "seqLength": count, **_segment_row(segment)})
    return pa.Table.from_pylist(rows, schema=PAIR_COLUMNS)
