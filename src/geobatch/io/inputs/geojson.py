"""GeoJSON reader: streaming a FeatureCollection's features into record batches."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any, BinaryIO, Final, NoReturn

import numpy as np
import pyarrow as pa
import shapely
import shapely.errors
import shapely.geometry

from geobatch.io.inputs.common import (
    _CHUNK_ROWS,
    _MAX_INPUT_TEXT,
    InputError,
    RecordBatch,
    _PreviewEnd,
)
from geobatch.io.inputs.decoding import _Utf8Blocks
from geobatch.io.inputs.tables import _errors_table

_MAX_JSON_VALUE: Final = 64 << 20
_WS: Final = re.compile(r"[ \t\n\r]*")
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class _JsonScanner:
    """Walks a JSON document over a sliding text buffer, decoding one value at a time."""

    def __init__(self, blocks: _Utf8Blocks, *, partial: bool = False) -> None:
        self._blocks = blocks
        self._partial = partial  # the text is a preview window: running out is not an error
        self._buf = ""
        self._pos = 0
        self._dropped = 0  # characters already discarded from the front of the buffer
        self._eof = False
        self._decode = json.JSONDecoder().raw_decode

    def _fill(self) -> bool:
        if self._eof:
            return False
        text = self._blocks.read()
        if not text:
            self._eof = True
            if self._partial:
                raise _PreviewEnd
            return False
        self._dropped += self._pos
        self._buf = self._buf[self._pos :] + text
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character, not consumed; "" at the end of the input."""
        while True:
            match = _WS.match(self._buf, self._pos)
            assert match is not None  # the pattern matches the empty string
            self._pos = match.end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def take(self, char: str, where: str) -> None:
        found = self.peek()
        if found != char:
            self.fail(
                f"expected {char!r} {where}, found {found!r}"
                if found
                else f"expected {char!r} {where}, found the end of the input"
            )
        self._pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self._decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                # Text cut by the block end fails near the end (or in an open string);
                # an error well before it is a real one, whatever follows.
                cut = exc.pos > len(self._buf) - 16 or exc.msg.startswith("Unterminated")
                if len(self._buf) - self._pos > _MAX_JSON_VALUE:
                    self.fail(f"a value larger than {_MAX_JSON_VALUE >> 20} MiB or {exc.msg}")
                if cut and self._fill():
                    continue
                self.fail(exc.msg, exc.pos)
            # A number that ends the buffer may go on in the next block: decode it again then.
            if end == len(self._buf) and self._fill():
                continue
            self._pos = end
            return value

    def fail(self, what: str, pos: int | None = None) -> NoReturn:
        if self._eof and self._partial:
            raise _PreviewEnd
        at = self._dropped + (self._pos if pos is None else pos)
        raise InputError(
            "bad_geojson",
            f"input is not a valid GeoJSON FeatureCollection: {what} (character {at})",
        )


def _iter_features(scanner: _JsonScanner) -> Iterator[Any]:
    """Each element of the top-level "features" array, checking the document around it."""
    if not scanner.peek():
        raise InputError("empty_input", "input is empty (no data, only whitespace)")
    scanner.take("{", "at the start (a FeatureCollection is a JSON object)")
    has_features = False
    while scanner.peek() != "}":
        key = scanner.value()
        if not isinstance(key, str):
            scanner.fail("expected a member name")
        scanner.take(":", "after a member name")
        if key == "features":
            has_features = True
            scanner.take("[", 'to open "features"')
            if scanner.peek() == "]":
                scanner.take("]", 'to close "features"')
            else:
                while True:
                    yield scanner.value()
                    if scanner.peek() != ",":
                        scanner.take("]", 'or "," after a feature')
                        break
                    scanner.take(",", "")
        elif key == "type":
            kind = scanner.value()
            if kind != "FeatureCollection":
                scanner.fail(f"its type is {kind!r}, not 'FeatureCollection'")
        else:
            scanner.value()
        if scanner.peek() != ",":
            break
        scanner.take(",", "")
    scanner.take("}", 'or "," after a member')
    if scanner.peek():
        scanner.fail("unexpected data after the end of the FeatureCollection")
    if not has_features:
        scanner.fail('it has no "features" array')


def _property_text(value: Any) -> str | None:
    """A property as text: strings as they are, other JSON values as JSON (true, 1.5, [1])."""
    kind = type(value)
    if value is None or kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    return _JSON.encode(value)


_NUMBER: Final = (int, float)


def _check_feature(
    feature: Any, max_coordinates: int = 0
) -> tuple[str | None, Any, dict[str, Any]]:
    """(problem or None, geometry, properties) of one features element.

    The geometry is None, a shapely geometry, or for the common plain Point its coordinate
    list, so that points are built all at once.
    """
    if type(feature) is not dict:
        return f"feature is a JSON {type(feature).__name__}, not an object", None, {}
    kind = feature.get("type", "Feature")
    if kind != "Feature":
        return f"feature has type {kind!r}, not 'Feature'", None, {}
    props = feature.get("properties")
    if props is None:
        props = {}
    elif type(props) is not dict:
        return "feature properties are not a JSON object", None, {}
    geometry = feature.get("geometry")
    if geometry is None:
        return None, None, props
    if type(geometry) is not dict:
        return f"feature geometry is a JSON {type(geometry).__name__}, not an object", None, {}
    if geometry.get("type") == "Point":
        xy = geometry.get("coordinates")
        if type(xy) is list and len(xy) == 2 and type(xy[0]) in _NUMBER and type(xy[1]) in _NUMBER:
            return None, xy, props
    try:
        shape = shapely.geometry.shape(geometry)
        if max_coordinates and (count := shapely.get_num_coordinates(shape)) > max_coordinates:
            return (
                f"geometry has {count} coordinates; the limit is {max_coordinates}",
                None,
                props,
            )
        return None, shape, props
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        shapely.errors.ShapelyError,
    ) as exc:
        return f"invalid geometry ({type(exc).__name__}: {str(exc).strip()})", None, props


def _bad_feature(ordinal: int, feature: Any, problem: str) -> tuple[int, str, str, str, str]:
    recid = None
    if type(feature) is dict:
        props = feature.get("properties")
        if type(props) is dict:
            recid = next((v for k, v in props.items() if k.lower() == "recid"), None)
        if recid is None:
            recid = feature.get("id")
    text = _JSON.encode(feature)[:_MAX_INPUT_TEXT]
    return (ordinal, _property_text(recid) or str(ordinal), "bad_feature", problem, text)


def _geojson_piece(items: list[tuple[int, Any]], max_coordinates: int = 0) -> RecordBatch:
    """Features to columns: geometry as WKB, properties flattened to string columns.

    A recId property (any case) or else the feature's id becomes recId; a property named
    geometry or _ordinal is dropped, the feature's own geometry and position win.
    """
    ordinals: list[int] = []
    ids: list[Any] = []
    geometries: list[Any] = []
    points: list[int] = []
    rows: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    errors: list[tuple[int, str, str, str, str]] = []
    for ordinal, feature in items:
        problem, geometry, props = _check_feature(feature, max_coordinates)
        if problem is not None:
            errors.append(_bad_feature(ordinal, feature, problem))
            continue
        if type(geometry) is list:
            points.append(len(geometries))
        ordinals.append(ordinal)
        ids.append(feature.get("id"))
        geometries.append(geometry)
        rows.append(props)
        names.update(dict.fromkeys(props))
    shapes = np.empty(len(geometries), dtype=object)
    shapes[:] = geometries
    if points:
        shapes[points] = shapely.points(np.array([geometries[i] for i in points], dtype=float))
    recid_names = [name for name in names if name.lower() == "recid"]
    recids = []
    for ordinal, identifier, row in zip(ordinals, ids, rows, strict=True):
        recid = next((row[n] for n in recid_names if row.get(n) is not None), identifier)
        recids.append(_property_text(recid) or str(ordinal))
    columns = {
        "_ordinal": pa.array(ordinals, type=pa.int64()),
        "recId": pa.array(recids, type=pa.string()),
        "geometry": pa.array(shapely.to_wkb(shapes), type=pa.binary()),
    }
    for name in names:
        if name not in columns and name not in recid_names:
            columns[name] = pa.array([_property_text(row.get(name)) for row in rows], pa.string())
    return RecordBatch(records=pa.table(columns), errors=_errors_table(errors))


def _iter_geojson(
    stream: BinaryIO, batch_size: int, max_coordinates: int = 0
) -> Iterator[RecordBatch]:
    """Features in batches; each batch is built from pieces of _CHUNK_ROWS features so that
    few parsed JSON objects are alive at once (they are what makes the GC slow)."""
    items: list[tuple[int, Any]] = []
    pieces: list[RecordBatch] = []
    count = 0
    features = _iter_features(_JsonScanner(_Utf8Blocks(stream)))
    for ordinal, feature in enumerate(features, 1):
        items.append((ordinal, feature))
        count += 1
        if count == batch_size or len(items) == _CHUNK_ROWS:
            pieces.append(_geojson_piece(items, max_coordinates))
            items = []
        if count == batch_size:
            yield _concat(pieces)
            pieces, count = [], 0
    if items:
        pieces.append(_geojson_piece(items, max_coordinates))
    if pieces:
        yield _concat(pieces)


def _concat(pieces: list[RecordBatch]) -> RecordBatch:
    if len(pieces) == 1:
        return pieces[0]
    records = pa.concat_tables([p.records for p in pieces], promote_options="default")
    return RecordBatch(records=records, errors=pa.concat_tables([p.errors for p in pieces]))
