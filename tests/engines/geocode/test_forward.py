"""Forward geocoding: each match level, interpolation, gazetteer disambiguation, filters, chunks."""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pytest
import shapely

from geobatch.engines.geocode import ForwardGeocoder, geocode_records
from geobatch.engines.geocode.forward import distance_km
from geobatch.engines.geocode.index import Street
from geobatch.reference import Release, ReleaseStore

STATION = "osm:node/25389429"  # Kaivokatu 1, 00100 Helsinki


@pytest.fixture(scope="module")
def geocoder(helsinki: Release) -> ForwardGeocoder:
    return ForwardGeocoder(helsinki)


def test_exact_address_and_its_variants(geocoder: ForwardGeocoder) -> None:
    for text in (
        "Kaivokatu 1, 00100 Helsinki",
        "kaivokatu 1",
        "Helsinki, Kaivokatu 1",
        "Kaivok. 1, Helsinki",
        "Kaivoaktu 1, Helsinki",  # typo
    ):
        [best] = geocoder.geocode(text)
        assert (best.ref_id, best.match_level) == (STATION, "houseNumber"), text
        assert best.label == "Kaivokatu 1, 00100 Helsinki"
    exact = geocoder.geocode("Kaivokatu 1, 00100 Helsinki")[0]
    typo = geocoder.geocode("Kaivoaktu 1")[0]
    assert exact.confidence >= 95
    assert exact.confidence > typo.confidence


def test_street_misspelt_thrice_found_within_the_postcode_or_town(
    geocoder: ForwardGeocoder,
) -> None:
    """Too unlike "Kaivokatu" for the whole release's names, alike enough among those of the
    postcode or town the query names that have its house number; without a town or a
    number the street has, no street is guessed (one missing from the release would find
    a wrong one)."""
    assert not len(geocoder._misspelt("kaviokut"))
    for text in ("Kaviokut 1, 00100 Helsinki", "Kaviokut 1, Helsinki"):
        [best] = geocoder.geocode(text)
        assert (best.ref_id, best.match_level) == (STATION, "houseNumber"), text
        assert best.confidence < geocoder.geocode("Kaivoaktu 1, Helsinki")[0].confidence
    for text in ("Kaviokut 1", "Kaviokut, 00100 Helsinki", "Kaviokut 999, 00100 Helsinki"):
        assert all(c.street != "Kaivokatu" for c in geocoder.geocode(text, limit=3)), text


def test_structured_fields(geocoder: ForwardGeocoder) -> None:
    fields = {"street": "Kaivokatu", "house_number": "1", "city": "Helsinki"}
    [best] = geocoder.geocode(fields=fields)
    assert best.ref_id == STATION


def _gap(geocoder: ForwardGeocoder) -> tuple[Street, int, int, int]:
    """A street, a missing number and its known neighbours of the same parity."""
    for street in geocoder.local.streets:
        values = sorted(set(street.sorted_numbers.tolist()))
        for low, high in itertools.pairwise(values):
            if high - low == 4 and low % 2 == high % 2 and str(low + 2) not in street.numbers:
                return street, low + 2, low, high
    raise AssertionError("no street with a gap in its numbers")


def test_interpolation_between_known_numbers(geocoder: ForwardGeocoder) -> None:
    street, missing, low, high = _gap(geocoder)
    [best] = geocoder.geocode(f"{street.name} {missing}")
    assert best.match_level == "interpolated"
    assert best.house_number == str(missing)
    addresses = geocoder.local.addresses
    a, b = street.numbers[str(low)], street.numbers[str(high)]
    span = distance_km(addresses.lon[a], addresses.lat[a], addresses.lon[b], addresses.lat[b])
    assert distance_km(addresses.lon[a], addresses.lat[a], best.lon, best.lat) <= span + 0.02
    assert distance_km(addresses.lon[b], addresses.lat[b], best.lon, best.lat) <= span + 0.02


def test_street_level_when_the_number_is_unknown(geocoder: ForwardGeocoder) -> None:
    [best] = geocoder.geocode("Kaivokatu 999, Helsinki")
    assert best.match_level == "street"
    assert best.street == "Kaivokatu"
    assert best.house_number is None
    [plain] = geocoder.geocode("Kaivokatu")
    assert plain.match_level == "street"


def test_poi_by_name(geocoder: ForwardGeocoder) -> None:
    [best] = geocoder.geocode("Hilton Helsinki Strand")
    assert (best.match_level, best.ref_id) == ("poi", "osm:node/55211772")


def test_locality_region_and_country(geocoder: ForwardGeocoder) -> None:
    [local] = geocoder.geocode("Kluuvi")
    assert local.match_level == "locality"
    assert distance_km(local.lon, local.lat, 24.947, 60.171) < 1
    [region] = geocoder.geocode("Illinois")
    assert (region.match_level, region.ref_id) == ("region", "geonames:4896861")
    [country] = geocoder.geocode("France")
    assert (country.match_level, country.country) == ("country", "FR")


def test_unknown_street_falls_back_to_the_locality(geocoder: ForwardGeocoder) -> None:
    [best] = geocoder.geocode("Rue Inexistante 5, Paris, France")
    assert (best.match_level, best.ref_id) == ("locality", "geonames:2988507")
    assert best.confidence < 50


@pytest.mark.parametrize(
    ("text", "ref_id"),
    [
        ("Paris, France", "geonames:2988507"),
        ("Paris, TX", "geonames:4717560"),
        ("Springfield, IL", "geonames:4250542"),
        ("München", "geonames:2867714"),
        ("Springfield", "geonames:4409896"),  # the most populous one
    ],
)
def test_gazetteer_places_worldwide(geocoder: ForwardGeocoder, text: str, ref_id: str) -> None:
    assert geocoder.geocode(text)[0].ref_id == ref_id


def test_proximity_bias_and_country_filter(geocoder: ForwardGeocoder) -> None:
    near_boston = geocoder.geocode("Springfield", at=(42.36, -71.06))[0]
    assert near_boston.ref_id == "geonames:4951788"  # Springfield, Massachusetts
    in_us = geocoder.geocode("Paris", country="US")[0]
    assert in_us.country == "US"
    assert geocoder.geocode("Kaivokatu 1", country="SE") == []


def test_limit_orders_candidates_by_confidence(geocoder: ForwardGeocoder) -> None:
    found = geocoder.geocode("Paris", limit=3)
    assert len(found) == 3
    assert [c.confidence for c in found] == sorted((c.confidence for c in found), reverse=True)


def test_no_match_is_empty(geocoder: ForwardGeocoder) -> None:
    assert geocoder.geocode("qqxxzzkkww") == []


def test_chunk_every_record_once(helsinki: Release) -> None:
    records = pa.table(
        {
            "_ordinal": pa.array([0, 1, 2, 3], pa.int64()),
            "recId": ["station", "blank", "nothing", "paris"],
            "searchText": ["Kaivokatu 1, Helsinki", " ", "qqxxzzkkww", "Paris, France"],
            "City": [None, None, None, None],
        }
    )
    result = geocode_records(records, helsinki, truncate_at=2)
    assert result.errors.to_pylist() == [
        {
            "_ordinal": 1,
            "recId": "blank",
            "code": "empty_query",
            "message": "searchText and every address field are empty",
            "input": None,
        }
    ]
    rows = result.results.to_pylist()
    assert {r["recId"] for r in rows} == {"station", "nothing", "paris"}
    [nothing] = [r for r in rows if r["recId"] == "nothing"]
    assert (nothing["seqNumber"], nothing["seqLength"], nothing["match_level"]) == (0, 0, None)
    paris = [r for r in rows if r["recId"] == "paris"]
    assert [r["seqNumber"] for r in paris] == [1, 2]
    assert all(r["seqLength"] == 2 for r in paris)


def test_monaco_address(monaco: Release) -> None:
    [best] = ForwardGeocoder(monaco).geocode("4 bis Rue de la Colle, Monaco")
    assert (best.match_level, best.ref_id) == ("houseNumber", "osm:node/1661139827")


def _street_release(tmp_path: Path) -> Release:
    """Two towns 50 km apart, each with its own Main Street and numbers 1 and 3 on it."""
    store = ReleaseStore(tmp_path / "releases")
    towns = {"Eastham": 24.0, "Westham": 23.2}
    with store.building("towns-2024-01-01", "towns") as builder:
        builder.write_table(
            "streets",
            pa.table(
                {
                    "id": [f"street:{town.lower()}:main-street" for town in towns],
                    "name": ["Main Street"] * 2,
                    "locality": list(towns),
                    "geometry": [
                        shapely.to_wkb(shapely.multilinestrings([[(x, 60.0), (x + 0.01, 60.0)]]))
                        for x in towns.values()
                    ],
                }
            ),
        )
        builder.write_table(
            "addresses",
            pa.table(
                {
                    "id": [f"{town}-{n}" for town in towns for n in (1, 3)],
                    "housenumber": ["1", "3"] * 2,
                    "street": ["Main Street"] * 4,
                    # Westham's number 3 names no town: it joins the nearest Main Street.
                    "city": ["Eastham", "Eastham", "Westham", None],
                    "lon": [x + dx for x in towns.values() for dx in (0.001, 0.002)],
                    "lat": [60.0001] * 4,
                }
            ),
        )
    return store.load("towns-2024-01-01")


def test_same_named_streets_of_two_towns_stay_apart(tmp_path: Path) -> None:
    geocoder = ForwardGeocoder(_street_release(tmp_path))
    assert len(geocoder.local.street_by_key["main street"]) == 2
    for town in ("Eastham", "Westham"):
        for number in ("1", "3"):
            [best] = geocoder.geocode(f"Main Street {number}, {town}")
            assert (best.ref_id, best.match_level) == (f"{town}-{number}", "houseNumber")
        [street] = geocoder.geocode(f"Main Street, {town}")
        assert street.match_level == "street"
        assert street.city == town
        expected_lon = 24.005 if town == "Eastham" else 23.205
        assert abs(street.lon - expected_lon) < 0.003  # on its own town's street
    # Interpolation uses one town's numbers only: 2 lies between 1 and 3 of that town.
    [between] = geocoder.geocode("Main Street 2, Westham")
    assert between.match_level == "interpolated"
    assert 23.2 < between.lon < 23.21


def test_andorra_streets_of_the_same_name_in_two_parishes(andorra: Release) -> None:
    geocoder = ForwardGeocoder(andorra)
    streets = geocoder.local.streets
    checked = 0
    for indexes in geocoder.local.street_by_key.values():
        towns = [streets[i] for i in indexes if streets[i].city and streets[i].line is not None]
        if len(towns) < 2 or shapely.distance(towns[0].line, towns[1].line) < 0.01:
            continue  # one road crossing a parish boundary, not two streets
        for street in towns:
            [best] = geocoder.geocode(f"{street.name}, {street.city}")
            assert best.city == street.city, street.name
            assert shapely.distance(street.line, shapely.Point(best.lon, best.lat)) < 0.002
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize(
    "words", ["pohjoisesplanadi {}", "pohjoisesplanadi {} helsinki", "mannerheimintie {} helsinki"]
)
def test_keys_with_a_number_find_the_streets_of_their_own_digits(
    geocoder: ForwardGeocoder, words: str
) -> None:
    """Streets remembered per shape of a key with digits are those a lookup of the key itself
    finds, also where a street's name has digits of its own ("Pohjoisesplanadi 33")."""
    geocoder.clear_caches()
    for number in ("19", "33", "21", "7", "5", "1"):
        key = words.format(number)
        found, looked_up = geocoder._streets(key), geocoder._looked_up(key)
        assert found.index.tolist() == looked_up.index.tolist(), key
        assert found.similarity.tolist() == looked_up.similarity.tolist(), key
    assert geocoder._looked_up("pohjoisesplanadi 33").similarity.tolist() == [1.0]


def test_place_names_with_digits_are_found_among_the_few(geocoder: ForwardGeocoder) -> None:
    places = geocoder.local.places.by_key
    for key in ("aleksi 13", "aleksi 14", "8 bit taproom", "9 bit taproom", "kaivokatu 1"):
        assert geocoder.local.names_place(key) == (key in places), key
    assert geocoder.local.names_place("aleksi 13")
