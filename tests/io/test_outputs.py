"""Output writers: Parquet parts streamed out as CSV, GeoJSON and one Parquet file."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from geobatch.io.outputs import (
    MEDIA_TYPES,
    OutputFormat,
    read_output,
    stream_parts,
    write_output,
)

Opener = Callable[[], BinaryIO]

POINT = shapely.to_wkb(shapely.Point(8.5, 47.4))
LINE = shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)]))
ROWS: list[dict[str, Any]] = [
    {"_ordinal": 1, "recId": "a", "n": 1, "x": 0.5, "ok": True, "name": 'Zürich, "HB"'},
    {"_ordinal": 2, "recId": "b", "n": None, "x": 2.0, "ok": False, "name": "line\nbreak"},
    {"_ordinal": 3, "recId": "c", "n": 3, "x": None, "ok": None, "name": None},
]
for _row, _geometry in zip(ROWS, [POINT, None, LINE], strict=True):
    _row["geometry"] = _geometry
SCHEMA = pa.schema(
    [
        ("_ordinal", pa.int64()),
        ("recId", pa.string()),
        ("n", pa.int64()),
        ("x", pa.float64()),
        ("ok", pa.bool_()),
        ("name", pa.string()),
        ("geometry", pa.binary()),
    ]
)
PUBLIC = [name for name in SCHEMA.names if not name.startswith("_")]


class Parts:
    """Writes Parquet parts into a folder and hands out openers that record closing."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: list[Path] = []
        self.handles: list[BinaryIO] = []

    def add(self, table: pa.Table, row_group_size: int | None = None) -> None:
        path = self.folder / f"part-{len(self.paths):05d}.parquet"
        pq.write_table(table, path, row_group_size=row_group_size)
        self.paths.append(path)

    def openers(self) -> list[Opener]:
        def opener(path: Path) -> Opener:
            def open_part() -> BinaryIO:
                handle = path.open("rb")
                self.handles.append(handle)
                return handle

            return open_part

        return [opener(path) for path in self.paths]


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    return Parts(tmp_path)


def output(parts: Parts, fmt: OutputFormat, schema: pa.Schema | None = None) -> bytes:
    return b"".join(stream_parts(parts.openers(), fmt, schema=schema))


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def test_media_types() -> None:
    assert MEDIA_TYPES == {
        OutputFormat.CSV: "text/csv",
        OutputFormat.GEOJSON: "application/geo+json",
        OutputFormat.PARQUET: "application/vnd.apache.parquet",
    }


def test_same_rows_from_every_format(parts: Parts) -> None:
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    parts.add(table.slice(0, 2), row_group_size=1)
    parts.add(table.slice(0, 0))
    parts.add(table.slice(2))

    rows = read_output(output(parts, OutputFormat.PARQUET), OutputFormat.PARQUET)
    assert rows == [public(row) for row in ROWS]

    features = read_output(output(parts, OutputFormat.GEOJSON), OutputFormat.GEOJSON)
    for got, want in zip(features, ROWS, strict=True):
        geometry = want["geometry"]
        expected = shapely.geometry.mapping(shapely.from_wkb(geometry)) if geometry else None
        assert got.pop("geometry") == json.loads(json.dumps(expected))
        assert got == {k: v for k, v in public(want).items() if k != "geometry"}
    assert isinstance(features[0]["n"], int)
    assert features[0]["ok"] is True

    text = output(parts, OutputFormat.CSV)
    assert text.startswith(b'"recId","n","x","ok","name","geometry"\n')
    lines = read_output(text, OutputFormat.CSV)
    assert [list(line) for line in lines] == [PUBLIC] * 3
    assert lines[0] == {
        "recId": "a",
        "n": "1",
        "x": "0.5",
        "ok": "true",
        "name": 'Zürich, "HB"',
        "geometry": "POINT (8.5 47.4)",
    }
    assert lines[1]["name"] == "line\nbreak"
    assert lines[1]["n"] == lines[2]["ok"] == lines[1]["geometry"] == ""
    assert float(lines[1]["x"]) == 2.0
    assert lines[2]["geometry"] == "LINESTRING (0 0, 1 1)"

    assert parts.handles
    assert all(handle.closed for handle in parts.handles)


def test_parquet_output_is_one_file_streamed_in_pieces(parts: Parts) -> None:
    for start in range(0, 3000, 1000):
        parts.add(pa.table({"_ordinal": range(start, start + 1000), "v": range(1000)}))
    pieces = list(stream_parts(parts.openers(), OutputFormat.PARQUET))
    assert len(pieces) > 3
    data = b"".join(pieces)
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.num_rows == 3000
    assert parquet.num_row_groups == 3
    assert parquet.schema_arrow.names == ["v"]


def test_parts_with_different_schemas_are_unified(parts: Parts) -> None:
    parts.add(pa.table({"recId": ["1"], "a": pa.array([None], pa.null()), "b": [1]}))
    parts.add(pa.table({"recId": ["2"], "a": ["x"], "c": [True]}))
    parts.add(pa.table({"recId": ["3"], "b": pa.array([7], pa.int32())}))
    want = [
        {"recId": "1", "a": None, "b": 1, "c": None},
        {"recId": "2", "a": "x", "b": None, "c": True},
        {"recId": "3", "a": None, "b": 7, "c": None},
    ]
    data = output(parts, OutputFormat.PARQUET)
    assert pq.read_schema(io.BytesIO(data)).field("a").type == pa.string()
    assert read_output(data, OutputFormat.PARQUET) == want
    features = read_output(output(parts, OutputFormat.GEOJSON), OutputFormat.GEOJSON)
    assert features == [{**row, "geometry": None} for row in want]
    lines = read_output(output(parts, OutputFormat.CSV), OutputFormat.CSV)
    assert [line["b"] for line in lines] == ["1", "", "7"]


def test_conflicting_types_fall_back_to_text(parts: Parts) -> None:
    parts.add(pa.table({"v": [1]}))
    parts.add(pa.table({"v": ["one"]}))
    rows = read_output(output(parts, OutputFormat.PARQUET), OutputFormat.PARQUET)
    assert rows == [{"v": "1"}, {"v": "one"}]


def test_given_schema_wins(parts: Parts) -> None:
    parts.add(pa.table({"_ordinal": [1], "a": [1], "extra": ["dropped"]}))
    schema = pa.schema([("_ordinal", pa.int64()), ("a", pa.float64()), ("b", pa.string())])
    rows = read_output(output(parts, OutputFormat.PARQUET, schema), OutputFormat.PARQUET)
    assert rows == [{"a": 1.0, "b": None}]


def test_no_parts(parts: Parts) -> None:
    schema = pa.schema([("_ordinal", pa.int64()), ("recId", pa.string()), ("v", pa.int64())])
    assert output(parts, OutputFormat.CSV) == b""
    assert output(parts, OutputFormat.CSV, schema) == b'"recId","v"\n'
    assert read_output(output(parts, OutputFormat.CSV, schema), OutputFormat.CSV) == []
    assert json.loads(output(parts, OutputFormat.GEOJSON)) == {
        "type": "FeatureCollection",
        "features": [],
    }
    empty = pq.ParquetFile(io.BytesIO(output(parts, OutputFormat.PARQUET, schema)))
    assert empty.metadata.num_rows == 0
    assert empty.schema_arrow.names == ["recId", "v"]
    assert pq.read_table(io.BytesIO(output(parts, OutputFormat.PARQUET))).num_rows == 0


def test_only_empty_parts(parts: Parts) -> None:
    parts.add(pa.table({"recId": pa.array([], pa.string()), "v": pa.array([], pa.int64())}))
    assert output(parts, OutputFormat.CSV) == b'"recId","v"\n'
    assert read_output(output(parts, OutputFormat.GEOJSON), OutputFormat.GEOJSON) == []
    assert read_output(output(parts, OutputFormat.PARQUET), OutputFormat.PARQUET) == []


def test_geojson_from_lat_lon_columns(parts: Parts) -> None:
    parts.add(
        pa.table(
            {
                "lat": ["47.5", "x", None, "1"],
                "lon": ["8.25", "1", "2", "nan"],
                "score": [1.0, float("nan"), None, 2.5],
            }
        )
    )
    features = read_output(output(parts, OutputFormat.GEOJSON), OutputFormat.GEOJSON)
    assert features[0]["geometry"] == {"type": "Point", "coordinates": [8.25, 47.5]}
    assert [f["geometry"] for f in features[1:]] == [None, None, None]
    assert features[0]["lat"] == "47.5"
    assert [f["score"] for f in features] == [1.0, None, None, 2.5]


def test_geojson_numeric_lat_lon(parts: Parts) -> None:
    parts.add(pa.table({"lat": [-33.9], "lon": [151.2], "when": pa.array([0], pa.timestamp("s"))}))
    (feature,) = read_output(output(parts, OutputFormat.GEOJSON), OutputFormat.GEOJSON)
    assert feature["geometry"]["coordinates"] == [151.2, -33.9]
    assert feature["when"] == "1970-01-01T00:00:00"


def test_csv_renders_nested_and_binary_columns(parts: Parts) -> None:
    parts.add(
        pa.table(
            {
                "tags": pa.array([["a", "b"], None]),
                "blob": pa.array([b"\x01\xff", None]),
                "s": pa.array([{"k": 1}, {"k": None}]),
            }
        )
    )
    lines = read_output(output(parts, OutputFormat.CSV), OutputFormat.CSV)
    assert lines == [
        {"tags": '["a","b"]', "blob": "Af8=", "s": '{"k":1}'},
        {"tags": "", "blob": "", "s": '{"k":null}'},
    ]


def test_write_output_counts_bytes(parts: Parts) -> None:
    parts.add(pa.table({"a": [1, 2, 3], "_secret": ["x", "y", "z"]}))
    sink = io.BytesIO()
    written = write_output(parts.openers(), OutputFormat.GEOJSON, sink)
    assert written == len(sink.getvalue()) > 0
    assert b"_secret" not in sink.getvalue()
    assert read_output(io.BytesIO(sink.getvalue()), OutputFormat.GEOJSON) == [
        {"a": a, "geometry": None} for a in (1, 2, 3)
    ]


def test_geojson_is_valid_json_with_many_rows(parts: Parts) -> None:
    geometry = shapely.to_wkb(shapely.points([[i, i] for i in range(40_000)]))
    parts.add(pa.table({"i": range(40_000), "geometry": pa.array(list(geometry))}))
    parts.add(pa.table({"i": [40_000], "geometry": pa.array([None], pa.binary())}))
    pieces = list(stream_parts(parts.openers(), OutputFormat.GEOJSON))
    assert len(pieces) > 3
    document = json.loads(b"".join(pieces))
    assert len(document["features"]) == 40_001
    last = document["features"][-2]
    assert last == {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [39_999.0, 39_999.0]},
        "properties": {"i": 39_999},
    }
    assert not any(math.isnan(f["properties"]["i"]) for f in document["features"])
