"""HERE record lines to geobatch CSV and back, without a server."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geobatch.api.compat.here_v7_records import (
    RecordFormat,
    here_results,
    native_csv,
    output_columns,
)
from geobatch.errors import InvalidInput


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _translate(text: str | bytes, fmt: RecordFormat, piece: int = 7) -> list[list[str]]:
    data = text.encode() if isinstance(text, str) else text

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in native_csv(_pieces(data, piece), fmt)])

    return list(csv.reader(io.StringIO(asyncio.run(collect()).decode())))


def test_here_columns_become_geobatch_columns() -> None:
    geocode = _translate(
        "recId|q|qq|in|limit\n"
        "a|Kaivokatu 1|city=Helsinki;postalCode=00100|countryCode:FIN|1\n"
        "b|too|many|fields|here|x\n",
        RecordFormat(job_type="geocode"),
    )
    assert geocode[0] == [
        "recId", "searchText", "street", "houseNumber", "postalCode", "city", "county",
        "state", "country", "in", "limit",
    ]  # fmt: skip
    assert geocode[1] == [
        "a", "Kaivokatu 1", "", "", "00100", "Helsinki", "", "", "", "countryCode:FIN", "1",
    ]  # fmt: skip
    assert geocode[2] == ["b", "too", "many", "fields", "here", "x"]  # kept for the error report
    reverse = _translate(
        "at;limit\n60.17, 24.94;1\r\n",
        RecordFormat(job_type="reverse_geocode", input_delimiter=";"),
    )
    assert reverse == [["lat", "lon", "limit"], ["60.17", "24.94", "1"]]
    lookup = _translate("osm:node/1\n", RecordFormat(job_type="lookup", input_columns=("id",)))
    assert lookup == [["id"], ["osm:node/1"]]


@given(
    st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(blacklist_characters="|\r\n", blacklist_categories=("Cs",)),
                max_size=8,
            ),
            st.text(
                alphabet=st.characters(blacklist_characters="|\r\n", blacklist_categories=("Cs",)),
                max_size=20,
            ),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=1, max_value=9),
)
def test_any_split_of_the_body_gives_the_same_records(
    records: list[tuple[str, str]], piece: int
) -> None:
    text = "recId|searchText\n" + "".join(f"{r}|{q}\n" for r, q in records)
    rows = _translate(text, RecordFormat(job_type="geocode"), piece)
    kept = [(r, q) for r, q in records if f"{r}|{q}".strip()]
    assert [(row[0], row[1]) for row in rows[1:]] == kept


def test_bad_headers_and_columns_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown column"):
        _translate("recId|color\n1|red\n", RecordFormat(job_type="geocode"))
    with pytest.raises(InvalidInput, match="needs at"):
        _translate("recId|q\n1|x\n", RecordFormat(job_type="reverse_geocode"))
    with pytest.raises(InvalidInput, match="UTF-8"):
        _translate(b"recId|q\n1|caf\xe9\n", RecordFormat(job_type="geocode"))
    with pytest.raises(InvalidInput, match="outputColumns"):
        output_columns("recId|colour", "|")
    assert output_columns("position|title|position", "|") == (
        "positionLatitude", "positionLongitude", "title",
    )  # fmt: skip


def test_result_rows_in_here_names() -> None:
    native = (
        b"recId,seqNumber,seqLength,lat,lon,label,match_level,confidence,distance_m,ref_id\n"
        b'a,1,1,60.5,24.25,"Kaivokatu 1, Helsinki",interpolated,87,12.6,osm:node/1\n'
        b"b,0,0,,,,,,,\n"
    )
    fmt = RecordFormat(
        job_type="geocode",
        output_delimiter="|",
        output_columns=output_columns("position|title|resultType|queryScore|distance|id", "|"),
    )
    lines = b"".join(here_results([native[:30], native[30:]], fmt)).decode().splitlines()
    assert lines == [
        "recId|seqNumber|seqLength|positionLatitude|positionLongitude|title|resultType|"
        "queryScore|distance|id",
        "a|1|1|60.5|24.25|Kaivokatu 1, Helsinki|houseNumber|0.87|13|osm:node/1",
        "b|0|0|||||||",
    ]
