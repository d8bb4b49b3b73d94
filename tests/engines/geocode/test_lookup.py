"""Lookup by reference id on the default (Helsinki) release: every kind of id it keeps."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from geobatch.engines.geocode import GEOCODE_COLUMNS
from geobatch.engines.geocode.lookup import lookup, lookup_records
from geobatch.reference import Release


def _rows(release: Release, ids: list[str | None], limit: int = 10) -> list[dict[str, object]]:
    table = lookup(release, ids, limit)
    assert table.schema == GEOCODE_COLUMNS
    rows: list[dict[str, object]] = table.to_pylist()
    return rows


def _first(release: Release, table: str, where: pc.Expression | None = None) -> dict[str, object]:
    data = release.table(table)
    if where is not None:
        data = data.filter(where)
    row: dict[str, object] = data.slice(0, 1).to_pylist()[0]
    return row


def test_an_address_id_gives_the_address(helsinki: Release) -> None:
    address = _first(helsinki, "addresses", pc.field("street") == "Mannerheimintie")
    [row] = [r for r in _rows(helsinki, [str(address["id"])]) if r["match_level"] == "houseNumber"]
    assert row["ref_id"] == address["id"]
    assert (row["lat"], row["lon"]) == (address["lat"], address["lon"])
    assert (row["street"], row["houseNumber"]) == ("Mannerheimintie", address["housenumber"])
    assert row["confidence"] == 100
    assert str(row["label"]).startswith(f"Mannerheimintie {address['housenumber']}")


def test_segment_way_and_street_ids(helsinki: Release) -> None:
    segments = helsinki.table("segments")
    pieces = pc.value_counts(segments.column("source_id")).to_pylist()
    way = next(p["values"] for p in pieces if p["counts"] >= 3)
    of_way = segments.filter(pc.field("source_id") == way)
    piece = of_way.column("id")[1].as_py()
    [one] = _rows(helsinki, [piece])
    assert (one["ref_id"], one["match_level"]) == (piece, "street")
    assert 60.16 < one["lat"] < 60.18  # type: ignore[operator]
    whole = _rows(helsinki, [way])
    assert [r["ref_id"] for r in whole] == of_way.column("id").to_pylist()
    assert [r["seqNumber"] for r in whole] == list(range(1, of_way.num_rows + 1))
    assert {r["seqLength"] for r in whole} == {of_way.num_rows}
    assert len(_rows(helsinki, [way], limit=2)) == 2
    street = _first(helsinki, "streets")
    [found] = _rows(helsinki, [str(street["id"])])
    assert (found["street"], found["city"], found["match_level"]) == (
        street["name"],
        street["locality"],
        "street",
    )
    assert found["lat"] is not None


def test_place_poi_connector_and_gazetteer_ids(helsinki: Release) -> None:
    poi = _first(helsinki, "places", pc.field("kind") == "poi")
    suburb = _first(helsinki, "places", pc.field("category") == "suburb")
    connector = _first(helsinki, "connectors")
    ids = [poi["id"], suburb["id"], connector["id"], "geonames:658225", "geonames:5879092"]
    found = {r["ref_id"]: r for r in _rows(helsinki, [str(i) for i in ids])}
    assert found[poi["id"]]["match_level"] == "poi"
    assert found[poi["id"]]["label"] == poi["name"]
    assert found[suburb["id"]]["match_level"] == "locality"
    assert found[connector["id"]]["lat"] == connector["lat"]
    helsinki_city = found["geonames:658225"]
    assert (helsinki_city["match_level"], helsinki_city["country"]) == ("locality", "FI")
    assert helsinki_city["label"] == "Helsinki, Uusimaa, Finland"
    alaska = found["geonames:5879092"]
    assert (alaska["match_level"], alaska["state"], alaska["label"]) == (
        "region",
        "Alaska",
        "Alaska, United States",
    )


def test_a_country_id_and_an_unknown_id(helsinki: Release) -> None:
    rows = _rows(helsinki, ["geonames:660013", "osm:node/0", "  geonames:660013  "])
    assert [r["_ordinal"] for r in rows] == [0, 1, 2]
    finland, unknown, padded = rows
    assert (finland["match_level"], finland["label"], finland["country"]) == (
        "country",
        "Finland",
        "FI",
    )
    assert unknown["match_level"] is None
    assert (unknown["seqNumber"], unknown["seqLength"]) == (0, 0)
    assert padded["ref_id"] == "geonames:660013"


def test_an_id_of_two_objects_lists_both(helsinki: Release) -> None:
    # OSM node 25389429 is the railway station: an address and a POI
    rows = _rows(helsinki, ["osm:node/25389429"])
    assert [r["match_level"] for r in rows] == ["houseNumber", "poi"]
    assert [r["seqNumber"] for r in rows] == [1, 2]


def test_blank_ids_go_to_the_error_report(helsinki: Release) -> None:
    records = pa.table(
        {
            "_ordinal": pa.array([0, 1, 2, 3], pa.int64()),
            "recId": ["a", "b", "c", "d"],
            "id": ["geonames:660013", "", None, "nope:1"],
        }
    )
    result = lookup_records(records, helsinki, limit=1)
    errors = {r["recId"]: r["code"] for r in result.errors.to_pylist()}
    assert errors == {"b": "missing_value", "c": "missing_value"}
    rows = {r["recId"]: r for r in result.results.to_pylist()}
    assert sorted(rows) == ["a", "d"]
    assert rows["a"]["match_level"] == "country"
    assert rows["d"]["_ordinal"] == 3
    assert rows["d"]["match_level"] is None
