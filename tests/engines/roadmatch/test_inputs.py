"""Decoding road records: WKT and WKB lines, reason codes for bad geometries, GPS traces."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geobatch.engines.result import ERROR_COLUMNS
from geobatch.engines.roadmatch.inputs import (
    REASONS,
    _split,
    decode_roads,
    traces_from_points,
)

GOOD = "LINESTRING (24.94 60.17, 24.95 60.171)"


def _records(geometries: list[object], **columns: list[object]) -> pa.Table:
    size = len(geometries)
    kind = pa.binary() if any(isinstance(g, bytes) for g in geometries) else pa.string()
    return pa.table(
        {
            "_ordinal": pa.array(range(1, size + 1), pa.int64()),
            "recId": [f"r{i}" for i in range(1, size + 1)],
            "id": [f"road-{i}" for i in range(1, size + 1)],
            "geometry": pa.array(geometries, kind),
            **{name: pa.array(values) for name, values in columns.items()},
        }
    )


def _codes(records: pa.Table, **kw: bool) -> dict[str, str]:
    decoded = decode_roads(records, **kw)
    return dict(
        zip(decoded.errors["recId"].to_pylist(), decoded.errors["code"].to_pylist(), strict=True)
    )


@pytest.mark.parametrize(
    ("wkt", "code"),
    [
        (None, "missing_geometry"),
        ("  ", "missing_geometry"),
        ("LINESTRING (1 2, 3", "invalid_geometry"),
        ("LINESTRING (24.9 60.1)", "too_few_points"),
        ("LINESTRING (24.9 60.1, 24.9 60.1)", "too_few_points"),
        ("POINT (24.9 60.1)", "not_a_line"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "not_a_line"),
        ("LINESTRING EMPTY", "empty_geometry"),
        ("MULTILINESTRING EMPTY", "empty_geometry"),
        ("LINESTRING (200 10, 201 10)", "coordinates_out_of_range"),
        ("LINESTRING (10 91, 10 92)", "coordinates_out_of_range"),
        ("LINESTRING (nan 10, 11 10)", "coordinates_out_of_range"),
        ("LINESTRING (2776000 8437000, 2776100 8437100)", "wrong_crs"),
    ],
)
def test_a_bad_geometry_gets_its_reason_code(wkt: str | None, code: str) -> None:
    records = _records([GOOD, wkt])
    decoded = decode_roads(records)
    assert _codes(records) == {"r2": code}
    assert decoded.rows.tolist() == [0]
    error = decoded.errors.to_pylist()[0]
    assert error["_ordinal"] == 2
    assert error["message"]
    assert code in REASONS


def test_errors_have_the_error_report_columns_and_keep_the_raw_input() -> None:
    decoded = decode_roads(_records([GOOD, "POINT (1 2)"]))
    assert decoded.errors.schema.equals(ERROR_COLUMNS)
    assert decoded.errors.column("input").to_pylist() == ["POINT (1 2)"]
    assert "Point" in decoded.errors.column("message")[0].as_py()


def test_wkb_lines_are_read_and_a_one_point_wkb_line_is_too_few_points() -> None:
    good = shapely.to_wkb(shapely.from_wkt(GOOD))
    one_point = bytes.fromhex("010200000001000000" + "00" * 16)
    records = _records([good, one_point, b"junk"])
    decoded = decode_roads(records)
    assert decoded.rows.tolist() == [0]
    assert _codes(records) == {"r2": "too_few_points", "r3": "invalid_geometry"}
    assert decoded.parts[0].equals(shapely.from_wkt(GOOD))
    assert decoded.errors.column("input").to_pylist() == [one_point.hex(), b"junk".hex()]
    point = decode_roads(_records([shapely.to_wkb(shapely.Point(1.5, 2))]))
    assert point.errors.column("input").to_pylist() == ["POINT (1.5 2)"]


def test_wkt_may_come_in_a_wkt_column_and_three_d_is_flattened() -> None:
    records = pa.table(
        {
            "_ordinal": pa.array([1], pa.int64()),
            "recId": ["1"],
            "WKT": ["LINESTRING Z (24.94 60.17 5, 24.95 60.171 6)"],
        }
    )
    decoded = decode_roads(records)
    assert decoded.rows.tolist() == [0]
    assert not decoded.parts[0].has_z


def test_only_lines_with_z_or_m_are_flattened_and_keep_their_plane_coordinates() -> None:
    wkt = [
        "LINESTRING (24.94 60.17, 24.95 60.171)",
        "LINESTRING M (24.94 60.17 1, 24.95 60.171 2)",
        "LINESTRING ZM (24.94 60.17 5 1, 24.95 60.171 6 2)",
    ]
    records = pa.table(
        {"_ordinal": pa.array([1, 2, 3], pa.int64()), "recId": ["a", "b", "c"], "WKT": wkt}
    )
    decoded = decode_roads(records)
    assert decoded.rows.tolist() == [0, 1, 2]
    assert shapely.get_coordinate_dimension(decoded.parts).tolist() == [2, 2, 2]
    plane = shapely.from_wkt(wkt[0])
    assert all(part.equals_exact(plane, 0) for part in decoded.parts)


def test_no_geometry_column_rejects_every_record() -> None:
    records = pa.table({"_ordinal": pa.array([1, 2], pa.int64()), "recId": ["a", "b"]})
    assert _codes(records) == {"a": "missing_geometry", "b": "missing_geometry"}


def test_a_declared_crs_other_than_wgs84_is_wrong_crs() -> None:
    records = _records([GOOD, GOOD, GOOD], crs=["EPSG:4326", "EPSG:3067", None])
    assert _codes(records) == {"r2": "wrong_crs"}
    assert "EPSG:3067" in decode_roads(records).errors.column("message")[0].as_py()


def test_geoparquet_metadata_with_a_projected_crs_rejects_the_chunk() -> None:
    geo = {"columns": {"geometry": {"crs": {"id": {"authority": "EPSG", "code": 3857}}}}}
    records = _records([GOOD]).replace_schema_metadata({"geo": json.dumps(geo)})
    assert _codes(records) == {"r1": "wrong_crs"}
    crs84 = {"columns": {"geometry": {"encoding": "WKB"}}}  # no crs: OGC:CRS84 by the spec
    assert _codes(_records([GOOD]).replace_schema_metadata({"geo": json.dumps(crs84)})) == {}


def test_an_ewkb_srid_other_than_4326_is_wrong_crs() -> None:
    line = shapely.set_srid(shapely.from_wkt(GOOD), 3857)
    records = _records([shapely.to_wkb(line, include_srid=True)])
    assert _codes(records) == {"r1": "wrong_crs"}


def test_a_multilinestring_that_joins_up_is_one_line_else_one_part_each() -> None:
    joined = "MULTILINESTRING ((24.94 60.17, 24.95 60.17), (24.95 60.17, 24.95 60.18))"
    apart = "MULTILINESTRING ((24.94 60.17, 24.95 60.17), (24.96 60.18, 24.97 60.18))"
    decoded = decode_roads(_records([joined, apart, GOOD], name=["A", "B", None]))
    assert decoded.owner.tolist() == [0, 1, 1, 2]
    assert decoded.rows.tolist() == [0, 1, 2]
    assert decoded.names == ["A", "B", "B", None]
    assert len(shapely.get_coordinates(decoded.parts[0])) == 3


def test_lines_and_multilines_split_as_get_parts_splits_them_in_row_order() -> None:
    apart = "MULTILINESTRING ((0 0, 1 0), (2 2, 3 2), (5 5, 6 6))"
    joined = "MULTILINESTRING ((0 0, 1 0), (1 0, 1 1))"
    kinds = [GOOD, apart, joined, "LINESTRING (0 0, 2 0)", apart, GOOD]
    geoms = shapely.from_wkt(np.array(kinds * 3, dtype=object))
    rows = np.array([0, 1, 2, 3, 4, 5, 7, 8, 10, 12, 13, 16, 17])
    parts, owner = _split(geoms, rows)
    merged = geoms[rows].copy()
    multi = shapely.get_type_id(merged) == 5
    merged[multi] = shapely.line_merge(merged[multi])
    expected, index = shapely.get_parts(merged, return_index=True)
    assert owner.tolist() == rows[index].tolist()
    assert shapely.to_wkt(parts).tolist() == shapely.to_wkt(expected).tolist()


def test_names_are_dropped_when_not_used_and_blank_names_are_none() -> None:
    records = _records([GOOD, GOOD], name=["Mannerheimintie", "  "])
    assert decode_roads(records).names == ["Mannerheimintie", None]
    assert decode_roads(records, use_names=False).names == [None, None]


def test_traces_accept_multipoints_in_their_order() -> None:
    records = _records(["MULTIPOINT (24.94 60.17, 24.95 60.17, 24.95 60.18)", "MULTIPOINT (1 1)"])
    assert _codes(records) == {"r1": "not_a_line", "r2": "not_a_line"}
    decoded = decode_roads(records, traces=True)
    assert decoded.rows.tolist() == [0]
    assert _codes(records, traces=True) == {"r2": "too_few_points"}
    assert shapely.get_coordinates(decoded.parts[0])[:, 1].tolist() == [60.17, 60.17, 60.18]


def test_roads_and_their_parts_may_cross_themselves_and_each_other() -> None:
    """A loop, a ramp passing over itself or jitter doubling back is still a road to match."""
    crossing_parts = "MULTILINESTRING ((24.94 60.17, 24.95 60.18), (24.94 60.18, 24.95 60.17))"
    looped_part = "MULTILINESTRING ((0 0, 1 1, 0 1, 1 0), (5 5, 6 6))"
    doubling_back = "LINESTRING (24.94 60.17, 24.941 60.17, 24.9409 60.17, 24.942 60.17)"
    records = _records([crossing_parts, looped_part, doubling_back])
    assert _codes(records) == {}
    decoded = decode_roads(records)
    assert decoded.rows.tolist() == [0, 1, 2]
    assert decoded.owner.tolist() == [0, 0, 1, 1, 2]
    assert decode_roads(records, traces=True).rows.tolist() == [0, 1, 2]


def test_points_group_into_traces_ordered_by_timestamp() -> None:
    traces = traces_from_points(
        ["a", "b", "a", "a", "b", "c"],
        [1.0, 5.0, 2.0, 3.0, 6.0, 9.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [
            "2024-05-01T10:00:02Z",
            None,
            "2024-05-01T10:00:01Z",
            "2024-05-01T12:00:00+02:00",  # 10:00:00 UTC: the first fix
            None,
            None,
        ],
    )
    assert [trace for trace, _ in traces] == ["a", "b", "c"]
    assert shapely.get_coordinates(traces[0][1])[:, 0].tolist() == [3.0, 2.0, 1.0]
    assert shapely.get_coordinates(traces[1][1])[:, 0].tolist() == [5.0, 6.0]  # input order
    assert traces[2][1].geom_type == "MultiPoint"  # one fix: decoding will reject it


_coordinate = st.tuples(
    st.floats(-179.0, 179.0, allow_nan=False), st.floats(-89.0, 89.0, allow_nan=False)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.lists(_coordinate, min_size=0, max_size=6), st.text(max_size=12))))
def test_every_record_is_either_lines_or_one_error(values: list[object]) -> None:
    texts = [
        v if isinstance(v, str) else shapely.to_wkt(shapely.linestrings(v)) if len(v) > 1 else None
        for v in values
    ]
    records = _records(texts)
    decoded = decode_roads(records)
    failed = decoded.errors.column("_ordinal").to_numpy() - 1
    assert sorted([*decoded.rows.tolist(), *failed.tolist()]) == list(range(len(texts)))
    assert set(np.unique(decoded.owner).tolist()) == set(decoded.rows.tolist())
    assert all(code in REASONS for code in decoded.errors.column("code").to_pylist())
    assert all(part.length > 0 for part in decoded.parts)


def test_oneway_spellings_give_each_part_its_direction() -> None:
    line = "LINESTRING (24.90 60.10, 24.91 60.10)"
    multi = "MULTILINESTRING ((24.90 60.10, 24.91 60.10), (24.95 60.12, 24.96 60.12))"
    records = _records([line, multi, line, line, line], oneway=["yes", "TF", "", "B", "maybe"])
    lines = decode_roads(records)
    assert lines.oneway == [1, -1, -1, None, 0, None]


def test_layer_tunnel_and_bridge_are_read_where_given() -> None:
    records = _records(
        [GOOD] * 5,
        layer=["-1", "2", None, "x", "9"],
        tunnel=["yes", "no", None, "culvert", ""],
        bridge=[False, True, None, False, None],
    )
    lines = decode_roads(records)
    assert lines.layer == [-1, 2, None, None, 5]
    assert lines.tunnel == [True, False, None, True, None]
    assert lines.bridge == [False, True, None, False, None]
    bare = decode_roads(_records([GOOD]))
    assert (bare.layer, bare.tunnel, bare.bridge) == ([None], [None], [None])
