"""Road records to lines: decoding a chunk's geometries and rejecting unusable ones with a reason.

A chunk arrives as an Arrow table: GeoJSON and GeoParquet inputs carry WKB in ``geometry``,
CSV inputs WKT text in ``geometry`` or ``wkt``. Every record comes out either as one or more
lines to match (a MultiLineString that does not merge into one line is matched part by part)
or as an error row with a reason code, so that a bad geometry never fails the job.

GPS traces are the same kind of input: one record per trace, a LineString or a MultiPoint whose
points are in time order. Point-per-row traces (``trace_id``, ``lat``, ``lon``, ``timestamp``)
are grouped into such lines by :func:`traces_from_points` before matching; a job cannot do
that itself, because its chunks cut the input at arbitrary records and a trace could be split.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.engines.result import ERROR_COLUMNS

MAX_INPUT_TEXT: Final = 500
PROJECTED_MAGNITUDE: Final = 1000.0
"""Beyond this, coordinates are metres of a projected CRS rather than degrees off by a bit."""

WGS84_NAMES: Final = frozenset(
    {
        "4326",
        "epsg:4326",
        "crs84",
        "ogc:crs84",
        "wgs84",
        "wgs 84",
        "urn:ogc:def:crs:ogc:1.3:crs84",
        "urn:ogc:def:crs:ogc::crs84",
        "urn:ogc:def:crs:epsg::4326",
        "http://www.opengis.net/def/crs/ogc/1.3/crs84",
        "http://www.opengis.net/def/crs/epsg/0/4326",
    }
)

REASONS: Final = {
    "missing_geometry": "the record has no geometry",
    "invalid_geometry": "the geometry cannot be read",
    "not_a_line": "the geometry is not a LineString or MultiLineString",
    "empty_geometry": "the geometry is empty",
    "too_few_points": "a line needs at least two distinct points",
    "coordinates_out_of_range": "coordinates must be longitude -180..180, latitude -90..90",
    "wrong_crs": "coordinates must be WGS 84 longitude/latitude (EPSG:4326 / CRS84)",
}
"""Reason codes of the error report, with the general message for each."""

_LINE_TYPES: Final = (1, 5)  # shapely type ids: LineString, MultiLineString
_MULTIPOINT: Final = 4
_TYPE_NAMES: Final = {
    0: "Point",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    6: "MultiPolygon",
    7: "GeometryCollection",
}
_ONE_POINT_WKT: Final = re.compile(r"^\s*LINESTRING\s*[ZM]*\s*\(\s*[^,()]+\)\s*$", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class RoadLines:
    """The usable records of a chunk as lines to match, and an error row per unusable one.

    ``parts`` holds one LineString per line to match; ``owner[i]`` is the chunk row that part
    ``i`` belongs to, in row order, so a row's parts are consecutive.
    """

    parts: list[shapely.LineString]
    owner: np.ndarray
    names: list[str | None]
    """Per part: its record's name, or None."""
    oneway: list[int | None]
    """Per part: its record's ``oneway`` (1 along, -1 against, 0 both ways), or None."""
    layer: list[int | None]
    """Per part: its record's ``layer`` (OSM: -5..5, 0 at ground level), or None."""
    tunnel: list[bool | None]
    """Per part: whether its record says it runs in a tunnel, or None."""
    bridge: list[bool | None]
    """Per part: whether its record says it runs on a bridge, or None."""
    rows: np.ndarray
    """The chunk rows that have lines, ascending."""
    errors: pa.Table


def _column(records: pa.Table, *names: str) -> pa.ChunkedArray | None:
    wanted = [name.lower() for name in names]
    for name in wanted:
        for field_name in records.column_names:
            if field_name.lower() == name:
                return records.column(field_name)
    return None


def _texts(values: pa.ChunkedArray | None, size: int) -> np.ndarray:
    """Values as stripped text, None where missing or blank."""
    out = np.full(size, None, dtype=object)
    if values is None:
        return out
    text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    blank = pc.fill_null(pc.equal(text, ""), True)
    out[:] = pc.if_else(blank, pa.scalar(None, pa.string()), text).to_pylist()
    return out


def _is_text(values: pa.ChunkedArray) -> bool:
    return bool(pa.types.is_string(values.type) or pa.types.is_large_string(values.type))


def _crs_of_file(records: pa.Table) -> str | None:
    """The GeoParquet ``geo`` metadata's CRS for ``geometry`` when it is not WGS 84, else None."""
    raw = (records.schema.metadata or {}).get(b"geo")
    if raw is None:
        return None
    try:
        crs = json.loads(raw)["columns"]["geometry"].get("crs", "CRS84")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if crs is None or crs == "CRS84":  # null is "undefined": take the user at their word
        return None
    if isinstance(crs, dict):
        ident = crs.get("id") or {}
        name = f"{ident.get('authority', '')}:{ident.get('code', '')}"
    else:
        name = str(crs)
    return None if name.lower() in WGS84_NAMES else name


def _one_point_text(text: Any) -> bool:
    if isinstance(text, bytes):
        # A WKB LineString (either byte order) with a point count of one.
        order: Literal["little", "big"] = "little" if text[:1] == b"\x01" else "big"
        return (
            len(text) >= 9
            and int.from_bytes(text[1:5], order) % 1000 == 2
            and int.from_bytes(text[5:9], order) == 1
        )
    return isinstance(text, str) and bool(_ONE_POINT_WKT.match(text))


def _decode(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(geometries with None where unreadable, the raw values)."""
    raw = values.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        if _is_text(values):
            return shapely.from_wkt(raw, on_invalid="ignore"), raw
        return shapely.from_wkb(raw, on_invalid="ignore"), raw


def _flags(values: Iterable[bool]) -> np.ndarray:
    return np.fromiter(values, dtype=bool)


class _Reasons:
    """The first reason code and message per row; later checks never overwrite earlier ones."""

    def __init__(self, size: int) -> None:
        self.codes = np.full(size, None, dtype=object)
        self.messages = np.full(size, None, dtype=object)
        self._open = np.ones(size, dtype=bool)

    def open(self) -> np.ndarray:
        return self._open.copy()

    def add(self, failed: np.ndarray, code: str, message: str | np.ndarray | None = None) -> None:
        mask = failed & self._open
        self._open &= ~mask
        self.codes[mask] = code
        if isinstance(message, np.ndarray):
            self.messages[mask] = message[mask]
        else:
            self.messages[mask] = message or REASONS[code]


def _as_lines(geoms: np.ndarray, traces: bool) -> np.ndarray:
    """MultiPoint traces as the LineString through their points; other geometries unchanged."""
    if not traces:
        return geoms
    out = geoms.copy()
    for i, geom in enumerate(geoms):
        if geom is not None and shapely.get_type_id(geom) == _MULTIPOINT and not geom.is_empty:
            coords = shapely.get_coordinates(geom)
            out[i] = shapely.linestrings(coords) if len(coords) >= 2 else geom
    return out


def _range_checks(geoms: np.ndarray, candidates: np.ndarray, reasons: _Reasons) -> None:
    coords, index = shapely.get_coordinates(geoms[candidates], return_index=True)
    odd = np.zeros(int(candidates.sum()), dtype=bool)
    np.logical_or.at(odd, index, ~np.isfinite(coords).all(axis=1))
    finite = np.zeros(len(geoms), dtype=bool)
    finite[np.flatnonzero(candidates)[~odd]] = True
    bounds = np.zeros((len(geoms), 4))
    bounds[finite] = shapely.bounds(geoms[finite])
    reasons.add(
        candidates & ~finite, "coordinates_out_of_range", "coordinates are not finite numbers"
    )
    magnitude = np.abs(bounds).max(axis=1)
    lon_bad = (bounds[:, 0] < -180) | (bounds[:, 2] > 180)
    lat_bad = (bounds[:, 1] < -90) | (bounds[:, 3] > 90)
    projected = candidates & finite & (magnitude > PROJECTED_MAGNITUDE)
    reasons.add(
        projected,
        "wrong_crs",
        "coordinates look projected (values beyond ±1000); "
        "send WGS 84 longitude/latitude (EPSG:4326)",
    )
    reasons.add(
        candidates & finite & lon_bad,
        "coordinates_out_of_range",
        "longitude outside -180..180",
    )
    reasons.add(
        candidates & finite & lat_bad,
        "coordinates_out_of_range",
        "latitude outside -90..90 (are longitude and latitude swapped?)",
    )


def _declared_crs(records: pa.Table, size: int, reasons: _Reasons) -> None:
    file_crs = _crs_of_file(records)
    if file_crs is not None:
        reasons.add(
            np.ones(size, dtype=bool),
            "wrong_crs",
            f"the file declares CRS {file_crs}; send WGS 84 longitude/latitude (EPSG:4326)",
        )
    declared = _texts(_column(records, "crs"), size)
    given = np.flatnonzero(declared.astype(bool))  # None where absent; most files have none
    wrong = np.zeros(size, dtype=bool)
    wrong[given] = _flags(v.lower() not in WGS84_NAMES for v in declared[given])
    if wrong.any():
        messages = np.full(size, None, dtype=object)
        messages[wrong] = [
            f"the record declares CRS {value}; send WGS 84 longitude/latitude (EPSG:4326)"
            for value in declared[wrong]
        ]
        reasons.add(wrong, "wrong_crs", messages)


def _split(geoms: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(parts, owner row per part): multi-lines merged where they join up, else exploded.

    A LineString is its own part, taken as it is: only the rest go through ``get_parts``,
    which would copy every geometry."""
    merged = geoms[rows].copy()
    multi = shapely.get_type_id(merged) == 5
    if multi.any():
        merged[multi] = shapely.line_merge(merged[multi])
    many = np.flatnonzero(shapely.get_type_id(merged) != 1)
    if not len(many):
        return merged, rows
    parts, index = shapely.get_parts(merged[many], return_index=True)
    count = np.ones(len(merged), dtype=np.int64)
    count[many] = np.bincount(index, minlength=len(many))
    first = np.cumsum(count) - count
    out = np.empty(int(count.sum()), dtype=object)
    one = np.ones(len(merged), dtype=bool)
    one[many] = False
    out[first[one]] = merged[one]
    rank = np.arange(len(parts)) - np.searchsorted(index, index)
    out[first[many[index]] + rank] = parts
    return out, np.repeat(rows, count)


def _error_rows(
    records: pa.Table,
    raw: np.ndarray | None,
    geoms: np.ndarray,
    reasons: _Reasons,
    bad: np.ndarray,
) -> pa.Table:
    """Error rows; the input as sent for WKT, as WKT for readable WKB, else as hex."""
    where = np.flatnonzero(bad)
    inputs: list[str | None] = []
    for row in where:
        value = None if raw is None else raw[row]
        if isinstance(value, bytes):
            geom = geoms[row]
            value = value.hex() if geom is None else shapely.to_wkt(geom, rounding_precision=-1)
        inputs.append(None if value is None else str(value)[:MAX_INPUT_TEXT])
    table = pa.table(
        {
            "_ordinal": records.column("_ordinal").take(pa.array(where, pa.int64())),
            "recId": records.column("recId").take(pa.array(where, pa.int64())),
            "code": pa.array(reasons.codes[where].tolist(), pa.string()),
            "message": pa.array(reasons.messages[where].tolist(), pa.string()),
            "input": pa.array(inputs, pa.string()),
        }
    )
    return table.cast(ERROR_COLUMNS)


def decode_roads(records: pa.Table, *, traces: bool = False, use_names: bool = True) -> RoadLines:
    """The chunk's lines to match, and an error row (``ERROR_COLUMNS``) for each unusable record.

    ``traces`` also accepts MultiPoint geometries (GPS fixes in time order) as lines.
    """
    size = records.num_rows
    reasons = _Reasons(size)
    values = _column(records, "geometry", "wkt")
    raw: np.ndarray | None = None
    if values is None:
        reasons.add(np.ones(size, dtype=bool), "missing_geometry")
        geoms = np.full(size, None, dtype=object)
    else:
        geoms, raw = _decode(values)
        missing = np.asarray(pc.is_null(values))
        if _is_text(values):
            missing |= np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True))
        reasons.add(missing, "missing_geometry")
        unreadable = shapely.is_missing(geoms) & ~missing
        one_point = np.zeros(size, dtype=bool)
        one_point[unreadable] = _flags(_one_point_text(v) for v in raw[unreadable])
        reasons.add(unreadable & one_point, "too_few_points", "the line has a single point")
        kind = "WKT" if _is_text(values) else "WKB"
        reasons.add(unreadable, "invalid_geometry", f"the geometry is not valid {kind}")
    _declared_crs(records, size, reasons)
    present = reasons.open()
    srid = np.zeros(size, dtype=np.int64)
    srid[present] = shapely.get_srid(geoms[present])
    reasons.add(
        present & (srid != 0) & (srid != 4326),
        "wrong_crs",
        "the geometry declares another CRS (SRID); send WGS 84 longitude/latitude (EPSG:4326)",
    )
    geoms = _as_lines(geoms, traces)
    present = reasons.open()
    types = np.full(size, -1, dtype=np.int64)
    types[present] = shapely.get_type_id(geoms[present])
    if traces:  # what is left of the MultiPoints had fewer than two fixes
        single = (types == _MULTIPOINT) & present
        reasons.add(single, "too_few_points", "a trace needs at least two fixes")
    expected = "LineString or MultiLineString" + (" (or MultiPoint trace)" if traces else "")
    for code in np.unique(types[present & ~np.isin(types, _LINE_TYPES)]):
        name = _TYPE_NAMES.get(int(code), "geometry collection")
        reasons.add(types == code, "not_a_line", f"the geometry is a {name}, not a {expected}")
    present = reasons.open()
    empty = np.zeros(size, dtype=bool)
    empty[present] = shapely.is_empty(geoms[present])
    reasons.add(empty, "empty_geometry")
    present = reasons.open()
    _range_checks(geoms, present, reasons)
    present = reasons.open()
    # Dropping Z or M rebuilds a geometry: only those that have one (few inputs do) are.
    deep = present.copy()
    deep[present] = shapely.get_coordinate_dimension(geoms[present]) > 2
    if deep.any():
        geoms[deep] = shapely.force_2d(geoms[deep])
    length = np.zeros(size)
    length[present] = shapely.length(geoms[present])
    reasons.add(present & (length == 0), "too_few_points", "the line's points all lie at one place")
    # A line may cross itself: a loop, a ramp passing over itself, or digitising jitter that
    # doubles back by a metre; each is matched like any other line.
    parts, owner = _split(geoms, np.flatnonzero(reasons.open()))
    keep = np.zeros(0, dtype=bool)
    if len(parts):
        keep = (shapely.length(parts) > 0) & reasons.open()[owner]
    parts, owner = parts[keep], owner[keep]
    partless = reasons.open()
    partless[owner] = False
    reasons.add(partless, "too_few_points", "the line's points all lie at one place")
    good = reasons.open()
    rows = np.flatnonzero(good)
    names = _texts(_column(records, "name"), size) if use_names else np.full(size, None)
    oneway = _oneway(_column(records, "oneway"), size)
    layer = _layer(_column(records, "layer"), size)
    tunnel = _structure(_column(records, "tunnel"), size)
    bridge = _structure(_column(records, "bridge"), size)
    return RoadLines(
        parts=list(parts),
        owner=owner,
        names=[names[row] for row in owner],
        oneway=[oneway[row] for row in owner],
        layer=[layer[row] for row in owner],
        tunnel=[tunnel[row] for row in owner],
        bridge=[bridge[row] for row in owner],
        rows=rows,
        errors=_error_rows(records, raw, geoms, reasons, ~good),
    )


_ONEWAY_WORDS: Final = {
    "1": 1, "yes": 1, "true": 1, "t": 1, "ft": 1, "forward": 1,
    "-1": -1, "reverse": -1, "tf": -1, "backward": -1,
    "0": 0, "no": 0, "false": 0, "f": 0, "b": 0, "both": 0,
}  # fmt: skip
"""OSM (yes/-1/no), GIS (FT/TF/B) and boolean spellings of a road's traffic direction."""


def _oneway(values: pa.ChunkedArray | None, size: int) -> list[int | None]:
    """Each record's traffic direction relative to its digitisation; None when not known."""
    if values is None:
        return [None] * size
    words = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(values, pa.string())))
    known = pa.array(list(_ONEWAY_WORDS), pa.string())
    found = pc.index_in(words, value_set=known)
    directions = pa.array(list(_ONEWAY_WORDS.values()), pa.int8())
    return pc.take(directions, found).to_pylist()  # type: ignore[no-any-return]


_NOT_A_STRUCTURE: Final = ("no", "false", "f", "0", "n")
"""``tunnel``/``bridge`` words for neither; any other word (yes, viaduct, culvert) says it is."""


def _layer(values: pa.ChunkedArray | None, size: int) -> list[int | None]:
    """Each record's ``layer`` as an integer (-5..5); None when absent or not a number."""
    if values is None:
        return [None] * size
    text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    numbers = pc.cast(
        pc.if_else(pc.match_substring_regex(text, r"^[+-]?\d+$"), text, None), pa.int64()
    )
    low = pc.min_element_wise(numbers, 5, skip_nulls=False)
    return pc.max_element_wise(low, -5, skip_nulls=False).to_pylist()  # type: ignore[no-any-return]


def _structure(values: pa.ChunkedArray | None, size: int) -> list[bool | None]:
    """Whether each record says it runs on the structure (tunnel, bridge); None when blank."""
    if values is None:
        return [None] * size
    if pa.types.is_boolean(values.type):
        return values.to_pylist()  # type: ignore[no-any-return]
    words = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(values, pa.string())))
    blank = pc.equal(words, "")
    neither = pc.is_in(words, value_set=pa.array(_NOT_A_STRUCTURE, pa.string()))
    return pc.if_else(blank, None, pc.invert(neither)).to_pylist()  # type: ignore[no-any-return]


def _times(values: Sequence[str | None]) -> list[dt.datetime] | None:
    """ISO 8601 timestamps as UTC datetimes; None unless every value parses."""
    out = []
    for value in values:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip()) if value else None
        except ValueError:
            moment = None
        if moment is None:
            return None
        out.append(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC))
    return out


def traces_from_points(
    trace_ids: Sequence[str],
    lons: Sequence[float] | np.ndarray,
    lats: Sequence[float] | np.ndarray,
    timestamps: Sequence[str | None] | None = None,
) -> list[tuple[str, shapely.LineString | shapely.MultiPoint]]:
    """Group GPS fixes into one geometry per trace, in order of first appearance.

    Fixes are ordered by timestamp (ISO 8601 text) where every fix of the trace has one,
    else kept in input order. A trace of a single fix comes out as a MultiPoint, so that
    decoding rejects it with ``too_few_points`` instead of it vanishing.
    """
    order: dict[str, list[int]] = {}
    for index, trace in enumerate(trace_ids):
        order.setdefault(str(trace), []).append(index)
    x = np.asarray(lons, dtype=float)
    y = np.asarray(lats, dtype=float)
    out: list[tuple[str, shapely.LineString | shapely.MultiPoint]] = []
    for trace, indexes in order.items():
        times = _times([timestamps[i] for i in indexes]) if timestamps is not None else None
        if times is not None:
            indexes = [index for _, index in sorted(zip(times, indexes, strict=True))]
        coords = np.column_stack([x[indexes], y[indexes]])
        geom = shapely.linestrings(coords) if len(coords) >= 2 else shapely.multipoints(coords)
        out.append((trace, geom))
    return out
