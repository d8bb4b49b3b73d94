"""A record's own ``limit`` and search area (``in``), in forward and reverse geocoding."""

from __future__ import annotations

import pyarrow as pa
import pytest

from geobatch.engines.geocode import geocode_records
from geobatch.engines.geocode.reverse import ReverseSettings, reverse_records
from geobatch.engines.geocode.within import (
    Area,
    RecordFilterError,
    parse_area,
    parse_limit,
)
from geobatch.reference import Release

STATION = (60.1713198, 24.9414566)


def test_areas_are_read_as_here_writes_them() -> None:
    assert parse_area("countryCode:FIN,swe") == Area(countries=frozenset({"FI", "SE"}))
    assert parse_area("countryCode:FI") == Area(countries=frozenset({"FI"}))
    assert parse_area("circle:60.17,24.94;r=500") == Area(circle=(60.17, 24.94, 500.0))
    assert parse_area("bbox:24.9,60.1,25.0,60.2") == Area(bbox=(24.9, 60.1, 25.0, 60.2))
    assert parse_area("bbox:170,-10,-170,10").contains(0, 179, None)  # across the antimeridian
    assert not parse_area("bbox:170,-10,-170,10").contains(0, 0, None)
    assert parse_area("circle:60.17,24.94;r=500").contains(60.171, 24.941, None)
    assert not parse_area("circle:60.17,24.94;r=500").contains(60.2, 24.94, None)
    for bad in ("countryCode:XXX", "countryCode:", "circle:95,0;r=5", "bbox:1,2,3", "near:x"):
        with pytest.raises(RecordFilterError) as caught:
            parse_area(bad)
        assert caught.value.code == "bad_in"
    for bad in ("0", "101", "two", "1.5"):
        with pytest.raises(RecordFilterError):
            parse_limit(bad)
    assert parse_limit(" 7 ") == 7


def test_a_geocode_record_gets_its_own_limit_and_area(helsinki: Release) -> None:
    records = pa.table(
        {
            "_ordinal": pa.array(range(5), pa.int64()),
            "recId": ["plain", "three", "finland", "france", "bad"],
            "searchText": ["Helsinki"] * 4 + ["Helsinki"],
            "limit": [None, "3", "3", None, "zero"],
            "in": [None, None, "countryCode:FIN", "countryCode:FRA", None],
        }
    )
    result = geocode_records(records, helsinki, truncate_at=1)
    rows = result.results.to_pylist()

    def of(rec_id: str) -> list[dict[str, object]]:
        return [row for row in rows if row["recId"] == rec_id]

    assert len(of("plain")) == 1
    three = of("three")
    assert 1 < len(three) <= 3
    assert [r["seqNumber"] for r in three] == list(range(1, len(three) + 1))
    assert {r["seqLength"] for r in three} == {len(three)}
    assert of("finland")
    assert {r["country"] for r in of("finland")} == {"FI"}
    [france] = of("france")
    assert france["seqLength"] == 0
    assert france["lat"] is None
    [error] = result.errors.to_pylist()
    assert (error["recId"], error["code"]) == ("bad", "bad_limit")


def test_a_reverse_record_gets_its_own_limit_and_area(helsinki: Release) -> None:
    lat, lon = STATION
    records = pa.table(
        {
            "_ordinal": pa.array(range(5), pa.int64()),
            "recId": ["one", "five", "near", "box", "bad"],
            "lat": [str(lat)] * 5,
            "lon": [str(lon)] * 5,
            "limit": [None, "5", "5", None, None],
            "in": [
                None,
                None,
                f"circle:{lat},{lon};r=5",
                "bbox:0,0,1,1",
                "circle:nowhere",
            ],
        }
    )
    result = reverse_records(records, helsinki, ReverseSettings())
    rows = result.results.to_pylist()

    def of(rec_id: str) -> list[dict[str, object]]:
        return [row for row in rows if row["recId"] == rec_id]

    assert len(of("one")) == 1
    five = of("five")
    assert len(five) == 5
    assert [r["seqNumber"] for r in five] == [1, 2, 3, 4, 5]
    assert five[0]["label"] == of("one")[0]["label"] == "Kaivokatu 1, 00100 Helsinki"
    near = of("near")
    assert near[0]["label"] == "Kaivokatu 1, 00100 Helsinki"
    assert all(r["distance_m"] <= 5 for r in near)
    assert max(r["distance_m"] for r in five) > 5  # the circle left some out
    [box] = of("box")
    assert box["seqNumber"] == 0
    assert box["match_level"] is None
    [error] = result.errors.to_pylist()
    assert (error["recId"], error["code"]) == ("bad", "bad_in")
