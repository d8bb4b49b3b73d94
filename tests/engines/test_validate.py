"""The validate engine: each rule of each record schema, applied record by record.

Every record gets exactly one result row saying whether it is valid and, when not, the first
rule it broke. Columns are found case-insensitively, numbers may arrive as text (CSV) or typed
(Parquet), and geometries as WKT text or WKB bytes.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pyarrow as pa
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geobatch.engines import RECORD_SCHEMAS, validate_records
from geobatch.engines.result import ERROR_COLUMNS
from geobatch.engines.schemas import ADDRESS_FIELDS, RecordSchema, missing_columns
from geobatch.engines.validate import RESULT_SCHEMA

GEOCODE = RECORD_SCHEMAS["geocode"]
REVERSE = RECORD_SCHEMAS["reverse_geocode"]
LOOKUP = RECORD_SCHEMAS["lookup"]
ROAD_MATCH = RECORD_SCHEMAS["road_match"]

ANY_ADDRESS = "one of " + ", ".join(ADDRESS_FIELDS) + " is required"
WRONG_LINE_TYPE = "geometry is a {}; expected LineString or MultiLineString"
OUTSIDE = "geometry coordinates are outside lon -180..180 / lat -90..90"


def records(**columns: Any) -> pa.Table:
    """A batch as the splitter writes it: ``_ordinal`` and ``recId`` first, then the columns."""
    size = len(next(iter(columns.values()))) if columns else 0
    arrays = {name: v if isinstance(v, pa.Array) else pa.array(v) for name, v in columns.items()}
    return pa.table(
        {
            "_ordinal": pa.array(range(1, size + 1), pa.int64()),
            "recId": pa.array([f"r{i}" for i in range(1, size + 1)], pa.string()),
            **arrays,
        }
    )


def empty_records(size: int) -> pa.Table:
    return pa.table(
        {
            "_ordinal": pa.array(range(1, size + 1), pa.int64()),
            "recId": pa.array([f"r{i}" for i in range(1, size + 1)], pa.string()),
        }
    )


def verdicts(table: pa.Table, schema: RecordSchema) -> list[str | None]:
    """Each record's reason (None when valid), after checking the result's shape."""
    result = validate_records(table, schema)
    assert result.results.schema == RESULT_SCHEMA
    assert result.errors.num_rows == 0
    assert result.errors.schema == ERROR_COLUMNS
    rows = result.results.to_pylist()
    assert [row["_ordinal"] for row in rows] == table.column("_ordinal").to_pylist()
    assert [row["recId"] for row in rows] == table.column("recId").to_pylist()
    assert all(row["seqNumber"] == 1 and row["seqLength"] == 1 for row in rows)
    for row in rows:
        assert row["valid"] == (row["reason"] is None)
    return [row["reason"] for row in rows]


def one(schema: RecordSchema, **values: Any) -> str | None:
    """The reason for a single record with the given column values (None when valid)."""
    (reason,) = verdicts(records(**{k: [v] for k, v in values.items()}), schema)
    return reason


def wkb(text: str) -> bytes:
    return shapely.to_wkb(shapely.from_wkt(text))  # type: ignore[no-any-return]


# -- every schema ---------------------------------------------------------------------------


def test_every_job_type_has_a_schema() -> None:
    assert set(RECORD_SCHEMAS) == {"geocode", "reverse_geocode", "lookup", "road_match"}
    for name, schema in RECORD_SCHEMAS.items():
        assert schema.job_type == name


@pytest.mark.parametrize("name", sorted(RECORD_SCHEMAS))
def test_no_records_give_no_results(name: str) -> None:
    assert verdicts(empty_records(0), RECORD_SCHEMAS[name]) == []


@pytest.mark.parametrize("name", sorted(RECORD_SCHEMAS))
def test_a_batch_without_any_needed_column_is_all_invalid(name: str) -> None:
    reasons = verdicts(records(unrelated=["x", "y", "z"]), RECORD_SCHEMAS[name])
    assert all(reason is not None for reason in reasons)
    assert len(set(reasons)) == 1


# -- reverse_geocode: required numbers ------------------------------------------------------


def test_reverse_geocode_valid_numbers() -> None:
    table = records(
        lat=["0", "90", "-90", " 45.5 ", "+1", ".5", "5.", "1e1", "-8.9E+1", "\t12\t"],
        lon=["0", "180", "-180", "-179.999", "7", "1", "2", "3", "4", "5"],
    )
    assert verdicts(table, REVERSE) == [None] * 10


@pytest.mark.parametrize(
    ("lat", "lon", "reason"),
    [
        (None, "1", "lat is missing"),
        ("", "1", "lat is missing"),
        ("   ", "1", "lat is missing"),
        ("1", None, "lon is missing"),
        ("1", " ", "lon is missing"),
        ("abc", "1", "lat is not a number"),
        ("1,5", "1", "lat is not a number"),
        ("1.2.3", "1", "lat is not a number"),
        ("nan", "1", "lat is not a number"),
        ("inf", "1", "lat is not a number"),
        ("0x10", "1", "lat is not a number"),
        ("1_000", "1", "lat is not a number"),
        ("1", "e5", "lon is not a number"),
        ("90.0001", "1", "lat is outside -90..90"),
        ("-91", "1", "lat is outside -90..90"),
        ("1e309", "1", "lat is outside -90..90"),
        ("1", "180.5", "lon is outside -180..180"),
        ("1", "-1e3", "lon is outside -180..180"),
        # the first broken rule is the one reported: required columns, then numbers in order
        ("", "abc", "lat is missing"),
        ("abc", "", "lon is missing"),
        ("abc", "500", "lat is not a number"),
        ("100", "abc", "lat is outside -90..90"),
    ],
)
def test_reverse_geocode_rules(lat: str | None, lon: str | None, reason: str) -> None:
    assert one(REVERSE, lat=lat, lon=lon) == reason


def test_reverse_geocode_missing_columns() -> None:
    assert verdicts(records(lon=["1", "2"]), REVERSE) == ["lat is missing"] * 2
    assert verdicts(records(lat=["1"]), REVERSE) == ["lon is missing"]


def test_column_names_are_case_insensitive() -> None:
    assert verdicts(records(LAT=["1", "95"], Lon=["2", "2"]), REVERSE) == [
        None,
        "lat is outside -90..90",
    ]
    assert one(LOOKUP, ID="x") is None
    assert one(GEOCODE, SEARCHTEXT="Main St 1") is None
    assert one(ROAD_MATCH, Id="x", GEOMETRY="LINESTRING (0 0, 1 1)") is None
    assert one(ROAD_MATCH, Id="x", WKT="LINESTRING (0 0, 1 1)") is None


def test_parquet_typed_numbers() -> None:
    table = records(
        lat=pa.array([1.5, None, 91.0, float("nan"), float("inf"), -90.0], pa.float64()),
        lon=pa.array([2, 3, 4, 5, 6, -181], pa.int32()),
    )
    assert verdicts(table, REVERSE) == [
        None,
        "lat is missing",
        "lat is outside -90..90",
        "lat is not a number",
        "lat is outside -90..90",
        "lon is outside -180..180",
    ]


def test_parquet_typed_other_numbers() -> None:
    table = records(
        lat=pa.array([10, 100], pa.int64()),
        lon=pa.array([1.25, 200.0], pa.float32()),
    )
    assert verdicts(table, REVERSE) == [None, "lat is outside -90..90"]
    decimals = records(
        lat=pa.array([1, 2], pa.int8()),
        lon=pa.array([None, 7], pa.int16()),
    )
    assert verdicts(decimals, REVERSE) == ["lon is missing", None]


def test_results_keep_record_order_and_ids() -> None:
    table = pa.table(
        {
            "_ordinal": pa.array([7, 3, 12], pa.int64()),
            "recId": pa.array(["c", "a", "b"], pa.string()),
            "lat": ["1", "x", "2"],
            "lon": ["1", "1", "1"],
        }
    )
    result = validate_records(table, REVERSE).results
    assert result.column("_ordinal").to_pylist() == [7, 3, 12]
    assert result.column("recId").to_pylist() == ["c", "a", "b"]
    assert result.column("valid").to_pylist() == [True, False, True]


# -- hypothesis: lat/lon validity equals a reference predicate -----------------------------

# A plain decimal or scientific number with optional ASCII padding: what the engine accepts.
REFERENCE_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def reference_number(value: str | float | None) -> float | None:
    """The number a value holds for the validator, or None when it holds none."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    text = value.strip(" \t")
    if not REFERENCE_NUMBER.fullmatch(text):
        return None
    return float(text)


def reference_valid(lat: str | float | None, lon: str | float | None) -> bool:
    parsed_lat, parsed_lon = reference_number(lat), reference_number(lon)
    return (
        parsed_lat is not None
        and parsed_lon is not None
        and -90 <= parsed_lat <= 90
        and -180 <= parsed_lon <= 180
    )


any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
coordinate_like = st.one_of(
    st.floats(min_value=-200, max_value=200, allow_nan=False),
    any_float,
    st.sampled_from([90.0, -90.0, 180.0, -180.0, 90.000001, -180.000001, 0.0, -0.0]),
)


@st.composite
def coordinate_text(draw: st.DrawFn) -> str:
    number = draw(coordinate_like)
    style = draw(st.sampled_from(["repr", "fixed", "exp", "int"]))
    if style == "repr" or not math.isfinite(number):
        text = repr(number)
    elif style == "fixed":
        text = f"{number:.{draw(st.integers(0, 8))}f}"
    elif style == "exp":
        text = f"{number:e}"
    else:
        text = str(int(number))
    padding = draw(st.sampled_from(["", " ", "\t", "  "]))
    return padding + text + draw(st.sampled_from(["", " ", "\t"]))


text_values = st.one_of(
    coordinate_text(),
    st.sampled_from(["", " ", "nan", "NaN", "-inf", "Infinity", "abc", "1.2.3", "--1", "1e", "."]),
    st.none(),
)


@settings(max_examples=75, deadline=None)
@given(st.lists(st.tuples(text_values, text_values), min_size=1, max_size=30))
def test_text_coordinates_valid_iff_reference(pairs: list[tuple[str | None, str | None]]) -> None:
    lats = [lat for lat, _ in pairs]
    lons = [lon for _, lon in pairs]
    result = validate_records(
        records(lat=pa.array(lats, pa.string()), lon=pa.array(lons, pa.string())), REVERSE
    )
    assert result.results.column("valid").to_pylist() == [
        reference_valid(lat, lon) for lat, lon in pairs
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.none() | coordinate_like, coordinate_like), min_size=1, max_size=30))
def test_typed_coordinates_valid_iff_reference(pairs: list[tuple[float | None, float]]) -> None:
    lats = [lat for lat, _ in pairs]
    lons = [lon for _, lon in pairs]
    result = validate_records(
        records(lat=pa.array(lats, pa.float64()), lon=pa.array(lons, pa.float64())), REVERSE
    )
    assert result.results.column("valid").to_pylist() == [
        reference_valid(lat, lon) for lat, lon in pairs
    ]


# -- geocode: any_of the address fields -----------------------------------------------------


@pytest.mark.parametrize("field", ADDRESS_FIELDS)
def test_geocode_accepts_any_single_address_field(field: str) -> None:
    assert one(GEOCODE, **{field: "something"}) is None
    assert one(GEOCODE, **{field.upper(): "something"}) is None


def test_geocode_needs_one_non_blank_address_field() -> None:
    table = records(
        searchText=["", None, "  ", "Main St 1", ""],
        city=[None, "", " ", None, "Berlin"],
        other=["x", "x", "x", "x", "x"],
    )
    assert verdicts(table, GEOCODE) == [ANY_ADDRESS, ANY_ADDRESS, ANY_ADDRESS, None, None]
    assert verdicts(records(other=["x"]), GEOCODE) == [ANY_ADDRESS]


def test_geocode_typed_address_columns() -> None:
    table = records(postalCode=pa.array([10115, None], pa.int64()))
    assert verdicts(table, GEOCODE) == [None, ANY_ADDRESS]


# -- lookup: a required id ------------------------------------------------------------------


def test_lookup_needs_an_id() -> None:
    table = records(id=["abc", "", None, " ", "0"])
    assert verdicts(table, LOOKUP) == [
        None,
        "id is missing",
        "id is missing",
        "id is missing",
        None,
    ]
    assert verdicts(records(name=["x"]), LOOKUP) == ["id is missing"]
    typed = records(id=pa.array([0, None], pa.int64()))
    assert verdicts(typed, LOOKUP) == [None, "id is missing"]


# -- road_match: id and a line geometry -----------------------------------------------------


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        ("LINESTRING (0 0, 1 1)", None),
        ("LINESTRING (13.4 52.5, 13.5 52.6, 13.6 52.5)", None),
        ("linestring (0 0, 1 1)", None),
        ("MULTILINESTRING ((0 0, 1 1), (2 2, 3 3))", None),
        ("LINESTRING Z (0 0 5, 1 1 6)", None),
        ("LINESTRING (0 0, 1 0, 1 1, 0 0)", None),  # a closed loop does not cross itself
        ("LINESTRING (-180 -90, 180 90)", None),
        (None, "geometry is missing"),
        ("", "geometry is missing"),
        ("   ", "geometry is missing"),
        ("garbage", "geometry is not valid WKT"),
        ("LINESTRING (0 0, 1 1", "geometry is not valid WKT"),
        ("LINESTRING (0 0, a b)", "geometry is not valid WKT"),
        ("LINESTRING (1 1)", "geometry is not valid WKT"),
        ("POINT (1 2)", WRONG_LINE_TYPE.format("Point")),
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", WRONG_LINE_TYPE.format("Polygon")),
        ("MULTIPOINT (0 0, 1 1)", WRONG_LINE_TYPE.format("MultiPoint")),
        (
            "GEOMETRYCOLLECTION (LINESTRING (0 0, 1 1))",
            WRONG_LINE_TYPE.format("GeometryCollection"),
        ),
        ("LINESTRING EMPTY", "geometry is empty"),
        ("MULTILINESTRING EMPTY", "geometry is empty"),
        ("LINESTRING (0 0, 181 0)", OUTSIDE),
        ("LINESTRING (0 0, -180.5 0)", OUTSIDE),
        ("LINESTRING (0 0, 0 91)", OUTSIDE),
        ("LINESTRING (0 -90.1, 0 0)", OUTSIDE),
        ("LINESTRING (0 0, inf 1)", OUTSIDE),
        ("LINESTRING (0 0, nan 1)", OUTSIDE),
        ("LINESTRING (nan nan, 1 1)", OUTSIDE),
        # a road may cross itself (a loop, jitter that doubles back), as the job accepts it
        ("LINESTRING (0 0, 2 2, 2 0, 0 2)", None),
        ("MULTILINESTRING ((0 0, 2 2), (0 2, 2 0))", None),
        # the first broken rule wins: type before range
        ("POINT (500 500)", WRONG_LINE_TYPE.format("Point")),
        ("LINESTRING (0 0, 200 2, 200 0, 0 2)", OUTSIDE),
    ],
)
def test_road_match_wkt_rules(geometry: str | None, reason: str | None) -> None:
    assert one(ROAD_MATCH, id="x", geometry=geometry) == reason


def test_road_match_takes_recid_or_id_as_the_road_id_before_the_geometry() -> None:
    assert one(ROAD_MATCH, id="", geometry="LINESTRING (0 0, 1 1)") is None
    assert one(ROAD_MATCH, geometry="LINESTRING (0 0, 1 1)") is None
    nameless = records(id=[""], geometry=["garbage"]).set_column(1, "recId", pa.array([""]))
    assert verdicts(nameless, ROAD_MATCH) == ["one of id, recId is required"]


def test_road_match_without_a_geometry_column() -> None:
    assert verdicts(records(id=["a", "b"]), ROAD_MATCH) == ["geometry is missing"] * 2


def test_road_match_wkt_column_stands_in_for_geometry() -> None:
    table = records(id=["a", "b"], wkt=["LINESTRING (0 0, 1 1)", "POINT (0 0)"])
    assert verdicts(table, ROAD_MATCH) == [None, WRONG_LINE_TYPE.format("Point")]


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        (wkb("LINESTRING (0 0, 1 1)"), None),
        (wkb("MULTILINESTRING ((0 0, 1 1), (5 5, 6 6))"), None),
        (None, "geometry is missing"),
        (b"", "geometry is not valid WKB"),
        (b"\x01\x02\x00", "geometry is not valid WKB"),
        (b"LINESTRING (0 0, 1 1)", "geometry is not valid WKB"),
        (wkb("POINT (1 2)"), WRONG_LINE_TYPE.format("Point")),
        (wkb("LINESTRING EMPTY"), "geometry is empty"),
        (wkb("LINESTRING (0 0, 0 95)"), OUTSIDE),
        (wkb("LINESTRING (0 0, 2 2, 2 0, 0 2)"), None),
    ],
)
def test_road_match_wkb_rules(geometry: bytes | None, reason: str | None) -> None:
    table = records(id=["x"], geometry=pa.array([geometry], pa.binary()))
    assert verdicts(table, ROAD_MATCH) == [reason]


def test_road_match_mixed_batch() -> None:
    geometries = [
        "LINESTRING (0 0, 1 1)",
        "POINT (0 0)",
        None,
        "LINESTRING EMPTY",
        "LINESTRING (0 0, 1 1)",
        "LINESTRING (0 0, nan 1)",
        "garbage",
        "LINESTRING Z (0 0 nan, 1 1 1)",
    ]
    table = records(id=["a", "b", "c", "d", "", "f", "g", "h"], geometry=geometries)
    assert verdicts(table, ROAD_MATCH) == [
        None,
        WRONG_LINE_TYPE.format("Point"),
        "geometry is missing",
        "geometry is empty",
        None,  # no id: the recId names the road
        OUTSIDE,
        "geometry is not valid WKT",
        None,  # heights are not checked
    ]


def test_fewer_than_two_points_rule() -> None:
    """Lines always have two points; the rule bites for a schema that admits multipoints."""
    schema = RecordSchema(job_type="custom", geometry_types=("MultiPoint", "LineString"))
    table = records(geometry=["MULTIPOINT (1 1)", "MULTIPOINT (1 1, 2 2)", "LINESTRING (0 0, 1 1)"])
    assert verdicts(table, schema) == ["geometry has fewer than 2 points", None, None]


# -- missing_columns ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "columns", "missing"),
    [
        ("reverse_geocode", ("recId", "lat", "lon"), []),
        ("reverse_geocode", ("LAT", "Lon"), []),
        ("reverse_geocode", ("lat",), ["lon"]),
        ("reverse_geocode", (), ["lat", "lon"]),
        ("lookup", ("id",), []),
        ("lookup", ("ID", "name"), []),
        ("lookup", ("name",), ["id"]),
        ("road_match", ("id", "geometry"), []),
        ("road_match", ("id", "WKT"), []),
        ("road_match", ("Id", "Geometry"), []),
        ("road_match", ("id",), ["geometry"]),
        ("road_match", ("recId", "geometry"), []),
        ("road_match", ("geometry",), ["id or recId"]),
        ("road_match", (), ["geometry", "id or recId"]),
        ("geocode", ("searchText",), []),
        ("geocode", ("CITY", "other"), []),
        ("geocode", ("other",), [" or ".join(ADDRESS_FIELDS)]),
        ("geocode", (), [" or ".join(ADDRESS_FIELDS)]),
    ],
)
def test_missing_columns(name: str, columns: tuple[str, ...], missing: list[str]) -> None:
    assert missing_columns(RECORD_SCHEMAS[name], columns) == missing


def test_header_columns() -> None:
    assert REVERSE.header_columns == ("lat", "lon")
    assert ROAD_MATCH.header_columns == ("geometry",)
    assert GEOCODE.header_columns == ()
    assert LOOKUP.header_columns == ("id",)
