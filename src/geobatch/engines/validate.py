"""The ``validate`` engine: check each record against a job type's declared schema.

A dry run for users before a long job: one result row per record saying whether it is valid
and, if not, the first reason why. Vectorised over the whole batch with Arrow and shapely.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.engines.result import EngineResult, empty_errors
from geobatch.engines.schemas import RecordSchema

NUMBER_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"

RESULT_SCHEMA = pa.schema(
    [
        pa.field("_ordinal", pa.int64()),
        pa.field("recId", pa.string()),
        pa.field("seqNumber", pa.int32()),
        pa.field("seqLength", pa.int32()),
        pa.field("valid", pa.bool_()),
        pa.field("reason", pa.string()),
    ]
)


def _column(records: pa.Table, name: str) -> pa.ChunkedArray | None:
    """A column by case-insensitive name (users write ``Lat`` as often as ``lat``)."""
    for field_name in records.column_names:
        if field_name.lower() == name.lower():
            return records.column(field_name)
    return None


def _blank(values: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        trimmed = pc.utf8_trim_whitespace(values)
        return np.asarray(pc.fill_null(pc.equal(trimmed, ""), True))
    return np.asarray(pc.is_null(values))


def _as_numbers(values: pa.ChunkedArray) -> np.ndarray:
    """Floats, NaN where a value is missing or not a number."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return np.asarray(pc.fill_null(pc.cast(values, pa.float64()), np.nan))
    text = pc.cast(values, pa.string())
    parsable = pc.fill_null(pc.match_substring_regex(text, NUMBER_PATTERN), False)
    cleaned = pc.if_else(parsable, pc.utf8_trim_whitespace(text), "nan")
    return np.asarray(pc.fill_null(pc.cast(cleaned, pa.float64()), np.nan))


def _geometries(values: pa.ChunkedArray, *, wkt: bool) -> np.ndarray:
    array = values.to_numpy(zero_copy_only=False)
    if wkt:
        return shapely.from_wkt(array, on_invalid="ignore")  # type: ignore[no-any-return]
    return shapely.from_wkb(array, on_invalid="ignore")  # type: ignore[no-any-return]


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.fromiter((value is None for value in values), dtype=bool, count=len(values))


class _Reasons:
    """The first failing rule's reason per record."""

    def __init__(self, size: int) -> None:
        self.values = np.full(size, None, dtype=object)

    def add(self, failed: np.ndarray, reason: str | np.ndarray) -> None:
        mask = failed & _is_none(self.values)
        if isinstance(reason, np.ndarray):
            self.values[mask] = reason[mask]
        else:
            self.values[mask] = reason


def _check_geometry(records: pa.Table, schema: RecordSchema, reasons: _Reasons) -> None:
    column = _column(records, "geometry")
    is_wkt = (
        column is None or pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    )
    if column is None:
        column = _column(records, "wkt")
    if column is None:
        reasons.add(np.ones(records.num_rows, dtype=bool), "geometry is missing")
        return
    blank = _blank(column)
    reasons.add(blank, "geometry is missing")
    with np.errstate(invalid="ignore"):  # NaN coordinates: caught by the range rule below
        geoms = _geometries(column, wkt=is_wkt)
    unreadable = ~blank & _is_none(geoms)
    reasons.add(unreadable, "geometry is not valid " + ("WKT" if is_wkt else "WKB"))
    present = ~_is_none(geoms)
    types = np.full(len(geoms), "", dtype=object)
    types[present] = shapely.get_type_id(geoms[present])
    names = np.array(
        [
            "Point",
            "LineString",
            "LinearRing",
            "Polygon",
            "MultiPoint",
            "MultiLineString",
            "MultiPolygon",
            "GeometryCollection",
        ],
        dtype=object,
    )
    type_names = np.full(len(geoms), "", dtype=object)
    type_names[present] = names[types[present].astype(int)]
    wrong_type = present & ~np.isin(type_names, schema.geometry_types)
    reasons.add(
        wrong_type,
        np.array(
            [
                f"geometry is a {t}; expected {' or '.join(schema.geometry_types)}"
                for t in type_names
            ],
            dtype=object,
        ),
    )
    empty = np.zeros(len(geoms), dtype=bool)
    empty[present] = shapely.is_empty(geoms[present])
    reasons.add(empty, "geometry is empty")
    counts = np.zeros(len(geoms), dtype=int)
    counts[present] = shapely.get_num_coordinates(geoms[present])
    reasons.add(present & (counts < 2), "geometry has fewer than 2 points")
    bounds = np.full((len(geoms), 4), np.nan)
    bounds[present] = shapely.bounds(geoms[present])
    # bounds skip NaN coordinates, so a NaN must be looked for in the coordinates themselves
    coordinates, owners = shapely.get_coordinates(geoms[present], return_index=True)
    not_finite = np.zeros(len(geoms), dtype=bool)
    not_finite[np.flatnonzero(present)[owners[~np.isfinite(coordinates).all(axis=1)]]] = True
    with np.errstate(invalid="ignore"):
        outside = present & (
            not_finite
            | (bounds[:, 0] < -180)
            | (bounds[:, 2] > 180)
            | (bounds[:, 1] < -90)
            | (bounds[:, 3] > 90)
        )
    reasons.add(outside, "geometry coordinates are outside lon -180..180 / lat -90..90")


def validate_records(records: pa.Table, schema: RecordSchema) -> EngineResult:
    """One result row per record: ``valid`` and, when not, the first ``reason``."""
    size = records.num_rows
    reasons = _Reasons(size)
    for name in schema.required:
        column = _column(records, name)
        failed = np.ones(size, dtype=bool) if column is None else _blank(column)
        reasons.add(failed, f"{name} is missing")
    if schema.any_of:
        present = np.zeros(size, dtype=bool)
        for name in schema.any_of:
            column = _column(records, name)
            if column is not None:
                present |= ~_blank(column)
        reasons.add(~present, f"one of {', '.join(schema.any_of)} is required")
    for rule in schema.numbers:
        column = _column(records, rule.column)
        if column is None:
            continue
        numbers = _as_numbers(column)
        reasons.add(np.isnan(numbers), f"{rule.column} is not a number")
        with np.errstate(invalid="ignore"):
            outside = (numbers < rule.minimum) | (numbers > rule.maximum)
        reasons.add(outside, f"{rule.column} is outside {rule.minimum:g}..{rule.maximum:g}")
    if schema.geometry_types:
        _check_geometry(records, schema, reasons)
    valid = _is_none(reasons.values)
    results = pa.table(
        {
            "_ordinal": records.column("_ordinal"),
            "recId": records.column("recId"),
            "seqNumber": pa.array(np.ones(size, dtype=np.int32)),
            "seqLength": pa.array(np.ones(size, dtype=np.int32)),
            "valid": pa.array(valid, type=pa.bool_()),
            "reason": pa.array(reasons.values, type=pa.string()),
        },
        schema=RESULT_SCHEMA,
    )
    return EngineResult(results=results, errors=empty_errors())
