"""Input readers: CSV, GeoJSON and Parquet streamed into record batches."""

from __future__ import annotations

import csv
import gzip
import io
import json
import pickle
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geobatch.errors import InvalidInput
from geobatch.io.inputs import (
    ERROR_SCHEMA,
    PREVIEW_BYTES,
    InputError,
    InputFormat,
    InputSpec,
    RecordBatch,
    format_from_media_type,
    iter_batches,
    open_decompressed,
    preview,
    sniff_gzip,
)

CSV = InputSpec(format=InputFormat.CSV)
GEOJSON = InputSpec(format=InputFormat.GEOJSON)
PARQUET = InputSpec(format=InputFormat.PARQUET)


def batches(data: bytes, spec: InputSpec = CSV, batch_size: int = 1000) -> list[RecordBatch]:
    return list(iter_batches(io.BytesIO(data), spec, batch_size))


def read(
    data: bytes, spec: InputSpec = CSV, batch_size: int = 1000
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(good records, error rows) over all batches."""
    out = batches(data, spec, batch_size)
    records = [row for batch in out for row in batch.records.to_pylist()]
    errors = [row for batch in out for row in batch.errors.to_pylist()]
    return records, errors


def input_error(data: bytes, spec: InputSpec = CSV, *, use_preview: bool = False) -> InputError:
    def run() -> object:
        return preview(io.BytesIO(data), spec) if use_preview else batches(data, spec)

    with pytest.raises(InputError) as caught:
        run()
    return caught.value


def csv_bytes(rows: list[list[str]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue().encode()


# --- media types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "filename", "expected"),
    [
        ("text/csv", None, (InputFormat.CSV, False)),
        ("text/csv; charset=utf-8", "a.csv", (InputFormat.CSV, False)),
        ("application/csv", None, (InputFormat.CSV, False)),
        ("text/plain", None, (InputFormat.CSV, False)),
        ("application/geo+json", None, (InputFormat.GEOJSON, False)),
        ("application/json", "x.geojson.gz", (InputFormat.GEOJSON, True)),
        ("application/vnd.apache.parquet", None, (InputFormat.PARQUET, False)),
        ("application/x-parquet", None, (InputFormat.PARQUET, False)),
        ("application/gzip", "x.geojson.gz", (InputFormat.GEOJSON, True)),
        ("application/x-gzip", None, (InputFormat.CSV, True)),
        (None, "Data.TSV", (InputFormat.CSV, False)),
        (None, "data.txt.gz", (InputFormat.CSV, True)),
        ("application/octet-stream", "x.parquet", (InputFormat.PARQUET, False)),
        ("application/octet-stream", "x.json", (InputFormat.GEOJSON, False)),
        ("application/octet-stream", "x.bin", None),
        (None, None, None),
        ("image/png", "x.csv", None),
    ],
)
def test_format_from_media_type(
    content_type: str | None, filename: str | None, expected: tuple[InputFormat, bool] | None
) -> None:
    assert format_from_media_type(content_type, filename) == expected


# --- CSV -----------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(delimiter: str) -> None:
    data = csv_bytes([["name", "city", "zip"], ["Ann", "Oslo, N", "0150"]], delimiter)
    assert preview(io.BytesIO(data), CSV).delimiter == delimiter
    records, errors = read(data)
    assert errors == []
    assert records == [
        {"_ordinal": 1, "recId": "1", "name": "Ann", "city": "Oslo, N", "zip": "0150"}
    ]


def test_bom_is_stripped_and_crlf_handled() -> None:
    data = b"\xef\xbb\xbfid;name\r\n1;a\r\n2;b\r\n"
    assert preview(io.BytesIO(data), CSV).columns == ("id", "name")
    records, _ = read(data)
    assert [r["id"] for r in records] == ["1", "2"]


def test_quoted_fields_with_delimiters_quotes_and_newlines() -> None:
    rows = [["a", "b"], ["x,y", 'say "hi"'], ["line1\nline2", "cr\r\nlf"], ["", "end"]]
    records, errors = read(csv_bytes(rows))
    assert errors == []
    assert [[r["a"], r["b"]] for r in records] == rows[1:]
    assert [r["_ordinal"] for r in records] == [1, 2, 3]


def test_blank_lines_are_not_records() -> None:
    records, errors = read(b"\n\na,b\n1,2\n\n\n3,4\n\n")
    assert errors == []
    assert [(r["_ordinal"], r["a"]) for r in records] == [(1, "1"), (2, "3")]


def test_malformed_rows_are_reported_with_ordinal_and_recid() -> None:
    data = b"recId,a,b\nr1,1,2\nr2,1\nr3,1,2,3\n,4,5\n\nr6,6,6\n"
    records, errors = read(data)
    assert [(r["_ordinal"], r["recId"]) for r in records] == [(1, "r1"), (4, "4"), (5, "r6")]
    assert records[0] == {"_ordinal": 1, "recId": "r1", "a": "1", "b": "2"}
    assert [(e["_ordinal"], e["recId"], e["code"]) for e in errors] == [
        (2, "r2", "malformed_row"),
        (3, "r3", "malformed_row"),
    ]
    assert errors[0]["message"] == "expected 3 fields, found 2 (line 3)"
    assert errors[1]["message"] == "expected 3 fields, found 4 (line 4)"
    assert errors[1]["input"] == "r3,1,2,3"


def test_unparsable_row_is_malformed_and_reading_goes_on() -> None:
    limit = csv.field_size_limit(50)
    try:
        records, errors = read(b"a,b\n1,2\n" + b"x" * 60 + b",3\n4,5\n")
    finally:
        csv.field_size_limit(limit)
    assert [r["_ordinal"] for r in records] == [1, 3]
    assert [(e["_ordinal"], e["code"]) for e in errors] == [(2, "malformed_row")]
    assert "field larger than field limit" in errors[0]["message"]


def test_malformed_input_text_is_truncated() -> None:
    _, errors = read(b"a,b\n" + b"x" * 5000 + b"\n")
    assert len(errors[0]["input"]) == 1000


def test_recid_column_matched_case_insensitively_and_replaced() -> None:
    records, _ = read(b"name,RECID\nx,abc\ny,\n")
    assert records == [
        {"_ordinal": 1, "recId": "abc", "name": "x"},
        {"_ordinal": 2, "recId": "2", "name": "y"},
    ]


def test_input_columns_make_the_first_line_data() -> None:
    spec = InputSpec(format=InputFormat.CSV, input_columns=("recId", "street", "city"))
    data = b"a1|Main St 1|Bern\na2|Gasse 2|Basel\n"
    found = preview(io.BytesIO(data), spec)
    assert found == type(found)(columns=("recId", "street", "city"), delimiter="|")
    records, _ = read(data, spec)
    assert [(r["recId"], r["street"], r["city"]) for r in records] == [
        ("a1", "Main St 1", "Bern"),
        ("a2", "Gasse 2", "Basel"),
    ]


def test_explicit_delimiter_wins_over_sniffing() -> None:
    spec = InputSpec(format=InputFormat.CSV, delimiter=";")
    records, _ = read(b"a,b;c\n1,2;3\n", spec)
    assert records == [{"_ordinal": 1, "recId": "1", "a,b": "1,2", "c": "3"}]


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (b"a,b,a", "duplicate column name 'a'"),
        (b"a,,b", "column 2 of the header has an empty name"),
        (b"a,b,", "column 3"),
        (b"recid,RecId", "more than one recId"),
        (b"_ordinal,b", "reserved"),
    ],
)
def test_bad_header(header: bytes, fragment: str) -> None:
    for use_preview in (True, False):
        error = input_error(header + b"\n1,2,3\n", use_preview=use_preview)
        assert error.code == "bad_header"
        assert fragment in error.message


def test_header_only_csv_has_no_records() -> None:
    assert preview(io.BytesIO(b"a,b\n"), CSV).columns == ("a", "b")
    assert batches(b"a,b\n") == []


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"  \n\r\n\t\n"])
@pytest.mark.parametrize("spec", [CSV, GEOJSON])
def test_empty_input(data: bytes, spec: InputSpec) -> None:
    for use_preview in (True, False):
        assert input_error(data, spec, use_preview=use_preview).code == "empty_input"
    assert input_error(gzip.compress(data), spec).code == "empty_input"


def test_empty_parquet_input() -> None:
    assert input_error(b"", PARQUET, use_preview=True).code == "empty_input"


def test_bad_utf8_early_fails_preview() -> None:
    error = input_error(b"a,b\ncaf\xe9,1\n", use_preview=True)
    assert error.code == "bad_encoding"
    assert error.message == "input is not valid UTF-8 (byte 0xe9 at offset 7, line 2)"


def test_bad_utf8_late_fails_while_streaming() -> None:
    good = b"".join(b"%d,x\n" % i for i in range(200_000))  # > PREVIEW_BYTES
    assert len(good) > PREVIEW_BYTES
    data = b"n,v\n" + good + b"\xff,y\n"
    preview(io.BytesIO(data), CSV)  # the bad byte is past the preview window
    seen: list[int] = []

    def consume() -> None:
        for batch in iter_batches(io.BytesIO(data), CSV, 1000):
            seen.append(batch.records.num_rows)

    with pytest.raises(InputError) as caught:
        consume()
    assert caught.value.code == "bad_encoding"
    assert f"(byte 0xff at offset {len(data) - 4}, line 200002)" in caught.value.message
    assert sum(seen) == 200_000  # every batch before the bad line came out


def test_utf8_cut_at_the_end() -> None:
    assert input_error(b"a\n\xc3").code == "bad_encoding"
    assert "ends inside a UTF-8 character" in input_error(b"a\n\xc3").message


@pytest.mark.parametrize("delimiter", ["", ";;", '"', "\n"])
def test_bad_delimiter(delimiter: str) -> None:
    spec = InputSpec(format=InputFormat.CSV, delimiter=delimiter)
    assert input_error(b"a\n", spec, use_preview=True).code == "unsupported_format"


def test_only_utf8_is_accepted() -> None:
    spec = InputSpec(format=InputFormat.CSV, encoding="latin-1")
    assert input_error(b"a\n1\n", spec).code == "bad_encoding"
    assert read(b"a\n1\n", InputSpec(format=InputFormat.CSV, encoding="UTF8"))[0]


def test_lines_and_characters_across_block_boundaries() -> None:
    # A CRLF and a multi-byte character straddle the 1 MiB read boundaries.
    row = "é" * 10 + "\r\n"
    first = b"v\r\n" + b"x" * (PREVIEW_BYTES - 6) + b"\r\n"  # the CR ends block 1, LF starts 2
    data = first + (row * 100_000).encode()
    records, errors = read(data, batch_size=33_333)
    assert errors == []
    assert len(records) == 100_001
    assert records[-1] == {"_ordinal": 100_001, "recId": "100001", "v": "é" * 10}


def test_gzip_declared_and_sniffed() -> None:
    data = gzip.compress(b"a,b\n1,2\n")
    assert sniff_gzip(data)
    assert not sniff_gzip(b"a,b")
    for spec in (CSV, InputSpec(format=InputFormat.CSV, gzip=True)):
        assert preview(io.BytesIO(data), spec).columns == ("a", "b")
        assert read(data, spec)[0] == [{"_ordinal": 1, "recId": "1", "a": "1", "b": "2"}]
    with open_decompressed(io.BytesIO(data), CSV) as stream:
        assert stream.read() == b"a,b\n1,2\n"


def test_truncated_gzip() -> None:
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 1000)[:-10]
    for use_preview in (True, False):
        error = input_error(data, use_preview=use_preview)
        assert error.code == "truncated_gzip"
        assert "truncated" in error.message


def test_declared_gzip_that_is_not_gzip() -> None:
    error = input_error(b"a,b\n", InputSpec(format=InputFormat.CSV, gzip=True))
    assert error.code == "bad_gzip"


def test_corrupt_gzip() -> None:
    data = bytearray(gzip.compress(b"a,b\n" + b"1,2\n" * 1000))
    data[-6] ^= 0xFF  # the CRC
    assert input_error(bytes(data)).code == "bad_gzip"


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 100])
def test_batches_cover_every_record_once(batch_size: int) -> None:
    lines = ["id,v"]
    for i in range(1, 51):
        lines.append(f"{i},{i}" if i % 6 else f"{i}")  # every 6th record is malformed
    out = batches(("\n".join(lines) + "\n").encode(), batch_size=batch_size)
    sizes = [b.records.num_rows + b.errors.num_rows for b in out]
    assert all(size == batch_size for size in sizes[:-1])
    assert 0 < sizes[-1] <= batch_size
    ordinals = [o for b in out for o in b.records["_ordinal"].to_pylist()]
    ordinals += [o for b in out for o in b.errors["_ordinal"].to_pylist()]
    assert sorted(ordinals) == list(range(1, 51))
    for batch in out:  # each batch holds one contiguous run of ordinals
        mine = batch.records["_ordinal"].to_pylist() + batch.errors["_ordinal"].to_pylist()
        assert sorted(mine) == list(range(min(mine), min(mine) + len(mine)))
        assert batch.errors.schema == ERROR_SCHEMA
        assert batch.records.schema.names == ["_ordinal", "recId", "id", "v"]


cells = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(',;\t|"\r\n \ufeff')),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=st.integers(min_value=1, max_value=5).flatmap(
        lambda width: st.lists(st.lists(cells, min_size=width, max_size=width), max_size=25)
    ),
    width_hint=st.integers(min_value=1, max_value=5),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    sniff=st.booleans(),
    batch_size=st.integers(min_value=1, max_value=30),
)
def test_csv_roundtrip_property(
    table: list[list[str]], width_hint: int, delimiter: str, sniff: bool, batch_size: int
) -> None:
    width = len(table[0]) if table else width_hint
    header = [f"c{i}" for i in range(width)]
    data = csv_bytes([header, *table], delimiter)
    spec = InputSpec(format=InputFormat.CSV, delimiter=None if sniff and width > 1 else delimiter)
    records, errors = read(data, spec, batch_size)
    assert errors == []
    assert [[r[name] for name in header] for r in records] == table
    assert [r["_ordinal"] for r in records] == list(range(1, len(table) + 1))


def csv_reader_oracle(text: str) -> tuple[list[tuple[int, list[str]]], list[tuple[int, str]]]:
    """csv.reader on a whole file: (ordinal, fields) of records, (ordinal, message) of errors."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    width = len(next(reader))
    good: list[tuple[int, list[str]]] = []
    bad: list[tuple[int, str]] = []
    ordinal = 0
    for row in reader:
        if not row:
            continue
        ordinal += 1
        if len(row) == width:
            good.append((ordinal, row))
        else:
            message = f"expected {width} fields, found {len(row)} (line {reader.line_num})"
            bad.append((ordinal, message))
    return good, bad


def assert_read_like_csv_reader(text: str, batch_size: int) -> None:
    header = next(csv.reader([text.partition("\n")[0]]))
    spec = InputSpec(format=InputFormat.CSV, delimiter=",")
    records, errors = read(text.encode(), spec, batch_size)
    good, bad = csv_reader_oracle(text)
    assert [(r["_ordinal"], [r[name] for name in header]) for r in records] == good
    assert [(e["_ordinal"], e["message"]) for e in errors] == bad


plain_cells = st.text(
    alphabet=st.one_of(st.sampled_from(list(" ;|\t\ufeffx")), st.characters(codec="utf-8")).filter(
        lambda c: c not in '",\r\n\x00'
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(min_value=1, max_value=4),
    rows=st.lists(
        st.tuples(
            st.lists(plain_cells, min_size=0, max_size=5),
            st.sampled_from(["\n", "\r\n", "\r"]),
        ),
        max_size=30,
    ),
    batch_size=st.integers(min_value=1, max_value=12),
)
def test_text_without_quotes_reads_as_csv_reader_reads_it(
    width: int, rows: list[tuple[list[str], str]], batch_size: int
) -> None:
    """Quote-free text is split by Arrow kernels: blank lines, short and long rows included."""
    header = ",".join(f"c{i}" for i in range(width)) + "\n"
    text = header + "".join(",".join(cells) + end for cells, end in rows)
    assert_read_like_csv_reader(text, batch_size)


quoted_cells = st.text(
    alphabet=st.one_of(st.sampled_from(list(',;"x ')), st.characters(codec="utf-8")).filter(
        lambda c: c not in "\r\n\x00"
    ),
    max_size=6,
).map(lambda text: '"' + text.replace('"', '""') + '"')
stray_quote_cells = st.sampled_from(
    ['x"a,b"', '"a"b,c"d"', 'x"y', '"a"b', 'a"', '"a" ', ' "a"', '"', '"""', '"a']
)


def quoted_rows(cells: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[list[str], str]]]:
    line = st.tuples(st.lists(cells, max_size=5), st.sampled_from(["\n", "\r\n", "\r"]))
    return st.lists(line, max_size=30)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(min_value=1, max_value=4),
    rows=st.one_of(
        quoted_rows(st.one_of(plain_cells, quoted_cells)),
        quoted_rows(st.one_of(plain_cells, quoted_cells, stray_quote_cells)),
    ),
    batch_size=st.integers(min_value=1, max_value=12),
)
def test_quoted_text_reads_as_csv_reader_reads_it(
    width: int, rows: list[tuple[list[str], str]], batch_size: int
) -> None:
    """Quotes around whole one-line fields are split by Arrow; any other quote by csv.reader."""
    header = ",".join(f"c{i}" for i in range(width)) + "\r\n"
    text = header + "".join(",".join(cells) + end for cells, end in rows)
    assert_read_like_csv_reader(text, batch_size)


@pytest.mark.parametrize(
    "line", ['x"a,b"', '"a"b,c"d"', '"a,b" ,c', '"a"",b",c', '"a,b""",c', '"",""', '"a\tb",c']
)
def test_quotes_that_straddle_a_delimiter_read_as_csv_reader_reads_them(line: str) -> None:
    text = f"c0,c1\r\n{line}\r\n1,2\r\n"
    assert_read_like_csv_reader(text, batch_size=10)


def test_addresses_in_quotes_are_split_by_arrow_and_read_exactly() -> None:
    """The usual geocoding input: CRLF lines, addresses quoted for their commas, a bad row."""
    lines = ["recId,lat,lon,searchText"]
    for i in range(1, 30_001):
        lines.append(f'r{i},60.{i:06d},24.9,"Street {i}, {i % 90:05d} Helsinki"')
    lines[12_345] = 'r12345,60.1,"one, too many",24.9,"x"'
    text = "\r\n".join(lines) + "\r\n"
    assert_read_like_csv_reader(text, batch_size=5_000)
    records, errors = read(text.encode(), batch_size=5_000)
    assert records[0]["searchText"] == "Street 1, 00001 Helsinki"
    assert [e["_ordinal"] for e in errors] == [12_345]


def test_quotes_after_the_first_megabyte_switch_to_csv_reader() -> None:
    lines = ["id,name"]
    for i in range(1, 150_001):
        lines.append(f"{i},n{i}" if i % 9_999 else f"{i}")  # a few short rows
    lines.append('150001,"Quoted, with a comma"')
    lines.append('150002,"two\nlines"')
    lines.append("150003")
    lines.append("150004,plain")
    text = "\n".join(lines) + "\n"
    assert len(text) > 1.5 * (1 << 20)  # the quote is beyond the first block of text
    assert_read_like_csv_reader(text, batch_size=5_000)
    records, _ = read(text.encode(), batch_size=5_000)
    assert records[-3]["name"] == "Quoted, with a comma"
    assert records[-2]["name"] == "two\nlines"


def test_input_error_is_invalid_input_and_pickles() -> None:
    error = InputError("bad_header", "duplicate column name 'a'")
    assert isinstance(error, InvalidInput)
    assert error.status == 422
    assert str(error) == error.detail == error.message
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message) == (error.code, error.message)


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        batches(b"a\n1\n", batch_size=0)


# --- GeoJSON -------------------------------------------------------------------------------


def feature(i: int, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": f"f{i}",
        "geometry": {"type": "Point", "coordinates": [i, -i / 2]},
        "properties": {"name": f"n{i}", **props},
    }


def geojson_bytes(features: list[Any], **extra: Any) -> bytes:
    return json.dumps({"type": "FeatureCollection", **extra, "features": features}).encode()


def test_geojson_streams_features_over_batches_and_blocks() -> None:
    count = 25_000  # about 3 MiB of text: several read blocks
    features = [feature(i, pop=i, flag=i % 2 == 0, tags=["a", i]) for i in range(count)]
    features[7] = 42
    features[9]["geometry"] = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}
    features[11] = {"type": "Point", "coordinates": [1, 2]}
    data = geojson_bytes(features, name="places", bbox=[0, 0, 1, 1])
    out = batches(data, GEOJSON, batch_size=1000)
    assert len(out) == 25
    records = [r for b in out for r in b.records.to_pylist()]
    errors = [r for b in out for r in b.errors.to_pylist()]
    assert len(records) == count - 3
    assert [(e["_ordinal"], e["recId"], e["code"]) for e in errors] == [
        (8, "8", "bad_feature"),
        (10, "f9", "bad_feature"),
        (12, "12", "bad_feature"),
    ]
    assert "invalid geometry" in errors[1]["message"]
    assert errors[0]["input"] == "42"
    first = records[0]
    assert first["_ordinal"] == 1
    assert first["recId"] == "f0"
    assert shapely.from_wkb(first["geometry"]).equals(shapely.Point(0, -0.0))
    assert (first["name"], first["pop"], first["flag"], first["tags"]) == (
        "n0",
        "0",
        "true",
        '["a",0]',
    )
    assert records[-1]["_ordinal"] == count
    assert shapely.from_wkb(records[-1]["geometry"]).equals(
        shapely.Point(count - 1, -(count - 1) / 2)
    )


def test_geojson_recid_property_null_geometry_and_column_union() -> None:
    features = [
        {"type": "Feature", "geometry": None, "properties": {"recId": "r1", "a": 1}},
        {"geometry": None, "properties": {"b": None, "c": "x"}, "id": 5},
        {"type": "Feature", "geometry": None, "properties": None},
    ]
    records, errors = read(geojson_bytes(features), GEOJSON)
    assert errors == []
    assert records == [
        {"_ordinal": 1, "recId": "r1", "geometry": None, "a": "1", "b": None, "c": None},
        {"_ordinal": 2, "recId": "5", "geometry": None, "a": None, "b": None, "c": "x"},
        {"_ordinal": 3, "recId": "3", "geometry": None, "a": None, "b": None, "c": None},
    ]


def test_geojson_preview_lists_property_columns() -> None:
    data = geojson_bytes([feature(i, extra=i) for i in range(100_000)])  # > 1 MiB
    found = preview(io.BytesIO(data), GEOJSON)
    assert found.columns == ("geometry", "name", "extra")
    assert found.delimiter is None


def test_geojson_members_in_any_order_and_empty() -> None:
    data = b'{"features": [], "type": "FeatureCollection"}'
    assert batches(data, GEOJSON) == []
    assert preview(io.BytesIO(data), GEOJSON).columns == ("geometry",)
    data = b' \n{"features":[{"type":"Feature","geometry":null,"properties":{}}]}'
    assert [r["_ordinal"] for r in read(data, GEOJSON)[0]] == [1]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"type": "Feature", "geometry": null, "properties": {}}', "'Feature'"),
        (b'[{"type": "Feature"}]', "expected '{'"),
        (b'{"type": "FeatureCollection"}', 'no "features"'),
        (b'{"type": "FeatureCollection", "features": [{"a": }]}', "Expecting value"),
        (b'{"type": "FeatureCollection", "features": [{}] ', "found the end of the input"),
        (b'{"type": "FeatureCollection", "features": []} []', "after the end"),
    ],
)
def test_not_a_feature_collection(data: bytes, fragment: str) -> None:
    for use_preview in (True, False):
        error = input_error(data, GEOJSON, use_preview=use_preview)
        assert error.code == "bad_geojson"
        assert fragment in error.message


def test_geojson_bad_utf8() -> None:
    assert input_error(b'{"features": ["\xe9"]}', GEOJSON).code == "bad_encoding"


# --- Parquet -------------------------------------------------------------------------------


def test_parquet_passthrough(tmp_path: Path) -> None:
    geometry = shapely.to_wkb(shapely.points([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]))
    table = pa.table(
        {
            "RecId": pa.array([10, None, 30, 40, 50], pa.int64()),
            "score": pa.array([0.5, 1.5, None, 3.5, 4.5]),
            "geometry": pa.array(list(geometry), pa.binary()),
        }
    )
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=2)
    with path.open("rb") as handle:
        assert preview(handle, PARQUET).columns == ("RecId", "score", "geometry")
    with path.open("rb") as handle:
        out = list(iter_batches(handle, PARQUET, 3))
    assert [b.records.num_rows for b in out] == [3, 2]
    assert all(b.errors.num_rows == 0 for b in out)
    assert out[0].records.schema.names == ["_ordinal", "recId", "score", "geometry"]
    assert out[0].records.schema.field("score").type == pa.float64()
    rows = [r for b in out for r in b.records.to_pylist()]
    assert [(r["_ordinal"], r["recId"]) for r in rows] == [
        (1, "10"),
        (2, "2"),
        (3, "30"),
        (4, "40"),
        (5, "50"),
    ]
    assert [r["geometry"] for r in rows] == list(geometry)
    assert rows[2]["score"] is None


def test_parquet_without_recid_and_bad_parquet(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": ["x", "y"]}), path)
    with path.open("rb") as handle:
        rows = [r for b in iter_batches(handle, PARQUET, 10) for r in b.records.to_pylist()]
    assert rows == [
        {"_ordinal": 1, "recId": "1", "a": "x"},
        {"_ordinal": 2, "recId": "2", "a": "y"},
    ]
    assert input_error(b"not parquet at all", PARQUET, use_preview=True).code == "bad_parquet"
    assert input_error(b"not parquet at all", PARQUET).code == "bad_parquet"
    zipped = gzip.compress(path.read_bytes())
    assert input_error(zipped, PARQUET, use_preview=True).code == "unsupported_format"


@pytest.mark.parametrize("spec", [CSV, PARQUET])
def test_fsspec_file_objects(tmp_path: Path, spec: InputSpec) -> None:
    path = tmp_path / "in.bin"
    if spec.format is InputFormat.PARQUET:
        pq.write_table(pa.table({"a": ["x", "y"]}), path)
    else:
        path.write_bytes(gzip.compress(b"a\nx\ny\n"))
    with fsspec.open(f"file://{path}", "rb") as handle:
        assert preview(handle, spec).columns == ("a",)
    with fsspec.open(f"file://{path}", "rb") as handle:
        rows = [r for b in iter_batches(handle, spec, 1) for r in b.records.to_pylist()]
    assert [r["a"] for r in rows] == ["x", "y"]
