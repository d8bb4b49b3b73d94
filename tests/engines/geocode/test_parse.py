"""Free-text parsing against the default (Helsinki) release's vocabulary and the gazetteer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geobatch.engines.geocode.forward import ForwardGeocoder
from geobatch.engines.geocode.parse import ParsedAddress, Vocabulary, parse, parse_fields
from geobatch.reference import Release


@pytest.fixture(scope="module")
def vocabulary(helsinki: Release) -> Vocabulary:
    return ForwardGeocoder(helsinki).vocabulary


def test_street_number_postcode_and_locality(vocabulary: Vocabulary) -> None:
    [first, *_] = parse("Mikonkatu 18, 00100 Helsinki", vocabulary)
    assert first == ParsedAddress(
        house_number="18", street="mikonkatu", postcode="00100", locality="helsinki"
    )


def test_the_vocabulary_answers_alike_before_and_after_it_remembers(
    vocabulary: Vocabulary,
) -> None:
    """Keys are remembered with everything they name; forgetting changes no answer."""
    texts = ["Mikonkatu 18, 00100 Helsinki", "Helsinki, Finland", "Uusimaa", "Mikonkatu 99"]
    vocabulary.forget()
    first = [parse(text, vocabulary) for text in texts]
    assert (vocabulary.is_locality("helsinki"), vocabulary.country("finland")) == (True, "FI")
    assert not vocabulary.is_locality("mikonkatu 18")
    assert vocabulary.country("helsinki") is None
    assert vocabulary.is_region("uusimaa")
    assert vocabulary.is_postcode("00100")
    assert [parse(text, vocabulary) for text in texts] == first
    vocabulary.forget()
    assert [parse(text, vocabulary) for text in texts] == first


def test_locality_first_and_number_first(vocabulary: Vocabulary) -> None:
    readings = parse("Helsinki, Mikonkatu 18 B", vocabulary)
    assert ParsedAddress(house_number="18b", street="mikonkatu", locality="helsinki") in readings
    [first, *_] = parse("18 Mikonkatu", vocabulary)
    assert (first.house_number, first.street) == ("18", "mikonkatu")


def test_abbreviated_street_and_country_name(vocabulary: Vocabulary) -> None:
    [first, *_] = parse("Mikonk. 18, Helsinki, Suomi", vocabulary)
    assert (first.street, first.house_number, first.country) == ("mikonkatu", "18", "FI")


def test_place_queries(vocabulary: Vocabulary) -> None:
    assert ParsedAddress(locality="paris", country="FR") in parse("Paris, France", vocabulary)
    assert ParsedAddress(locality="springfield", region="il") in parse(
        "Springfield, IL", vocabulary
    )
    assert parse("France", vocabulary) == [ParsedAddress(country="FR")]
    assert ParsedAddress(locality="munchen") in parse("München", vocabulary)


def test_floor_and_extra_segments_leave_a_street_reading(vocabulary: Vocabulary) -> None:
    readings = parse("Vilhonkatu 6, 1. krs. / Floor 1, 00100 Helsinki", vocabulary)
    assert any(r.street == "vilhonkatu" and r.house_number == "6" for r in readings)


def test_blank_text_has_no_reading(vocabulary: Vocabulary) -> None:
    assert parse("  , ,  ", vocabulary) == []


def test_structured_fields(vocabulary: Vocabulary) -> None:
    parsed = parse_fields(
        vocabulary, street="Mikonkatu 18", postcode="00100", city="HELSINKI", country="Finland"
    )
    assert parsed == ParsedAddress(
        house_number="18", street="mikonkatu", postcode="00100", locality="helsinki", country="FI"
    )
    assert parse_fields(vocabulary, street="Mikonkatu", house_number="18 b").house_number == "18b"


@settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_known_street_and_number_is_recovered(
    vocabulary: Vocabulary, data: st.DataObject
) -> None:
    streets = [s for s in vocabulary.local.streets if s.numbers]
    street = data.draw(st.sampled_from(streets))
    number = data.draw(st.integers(min_value=1, max_value=999))
    suffix = data.draw(st.sampled_from(["", "a", " B", " bis"]))
    city = data.draw(st.sampled_from(["", ", Helsinki", ", 00100 Helsinki"]))
    readings = parse(f"{street.name} {number}{suffix}{city}", vocabulary)
    key = f"{number}{suffix.strip().lower()}"
    assert any(r.house_number == key and r.street for r in readings), readings


@settings(
    deadline=None, max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=60))
def test_parse_never_fails_and_never_returns_empty_parts(vocabulary: Vocabulary, text: str) -> None:
    for reading in parse(text, vocabulary):
        assert not reading.is_empty
        for part in (reading.street, reading.locality, reading.house_number, reading.postcode):
            assert part is None or part.strip() == part != ""


@pytest.mark.parametrize(
    "text",
    [
        "00100 Helsinki, Mikonkatu 18",
        "00100 Helsinki Mikonkatu 18",
        "Helsinki Mikonkatu 18",
        "Mikonkatu 18 00100 Helsinki",
        "Helsinki, 00100, Mikonkatu 18",
        "18 Mikonkatu, Helsinki 00100",
    ],
)
def test_parts_in_any_order_with_or_without_commas(vocabulary: Vocabulary, text: str) -> None:
    readings = parse(text, vocabulary)
    assert any(
        (r.street, r.house_number, r.locality) == ("mikonkatu", "18", "helsinki") for r in readings
    ), readings


def test_a_two_letter_region_only_after_a_town_and_a_street_kept_whole(
    vocabulary: Vocabulary,
) -> None:
    assert any(r.region == "il" for r in parse("Springfield IL", vocabulary))
    # "co" stays part of the name (not Colorado); "Monaco" may be read as country or region
    pizza = parse("Pizza&co, Monaco", vocabulary)
    assert all(r.region != "co" and r.street == "pizza co" for r in pizza), pizza
    readings = parse("2 Avenue Prince Albert Ier de Monaco", vocabulary)
    assert any(
        (r.street, r.house_number) == ("avenue prince albert ier de monaco", "2") for r in readings
    ), readings


def test_a_name_ending_in_a_country_is_first_read_whole(vocabulary: Vocabulary) -> None:
    [first, *_] = parse("Port Hercule de Monaco", vocabulary)
    assert (first.street, first.name_only, first.country) == ("port hercule de monaco", True, None)


def test_a_street_ending_in_a_country_keeps_the_town_before_it(vocabulary: Vocabulary) -> None:
    """A street's name may end in a country's ("d'Italie"): the town written first stays."""
    readings = parse("Helsinki, 54 Boulevard d'Italie", vocabulary)
    wanted = ParsedAddress(house_number="54", street="boulevard d italie", locality="helsinki")
    assert wanted in readings, readings
