"""Readings shared by queries of one shape: the same as parsing each query on its own."""

from __future__ import annotations

import pytest

from geobatch.engines.geocode.forward import ForwardGeocoder
from geobatch.engines.geocode.parse import ParsedAddress, Vocabulary, readings
from geobatch.engines.geocode.templates import ReadingTemplates
from geobatch.reference import Release


@pytest.fixture(scope="module")
def vocabulary(helsinki: Release) -> Vocabulary:
    return ForwardGeocoder(helsinki).vocabulary


def test_a_shape_is_parsed_once_and_filled_with_each_number(vocabulary: Vocabulary) -> None:
    templates = ReadingTemplates(vocabulary)
    texts = ["Mikonkatu 18, 00100 Helsinki", "Mikonkatu 25, 00100 Helsinki", "mikonkatu 8 00100"]
    for text in texts:
        assert list(templates.readings(text)) == list(readings(text, vocabulary)), text
    assert len(templates._templates) == 2  # the first two share one shape
    [first, *_] = templates.readings("Mikonkatu 7 B, 00100 Helsinki")
    assert first == ParsedAddress(
        house_number="7b", street="mikonkatu", postcode="00100", locality="helsinki"
    )


@pytest.mark.parametrize(
    ("text", "other"),
    [
        ("Mikonkatu 18, 00100 Helsinki", "Mikonkatu 81, 00100 Helsinki"),
        ("18 Mikonkatu 3", "18 Mikonkatu 5"),  # two numbers: each parsed on its own
        ("Mikonkatu 012", "Mikonkatu 999"),  # "012" is house number "12"
        ("Mikonkatu 1234, Helsinki", "Mikonkatu 4321, Helsinki"),  # postcode-shaped
        ("Mikonkatu 0010, 12-34", "Mikonkatu 1234, 12-34"),  # "12-34" is postcode "1234"
        ("Helsinki 1992", "Helsinki 1993"),  # also a name with a number in it
        ("Mikonkatu 7 b 12345", "Mikonkatu 9 b 12345"),
        ("Mikonkatu 10, 00100 Helsinki", "Mikonkatu 18, 00100 Helsinki"),  # "10" names a place
        ("Praha 1", "Praha 5"),  # and so does "Praha 1"
        ("123456789 Mikonkatu 5", "123456789 Mikonkatu 6"),  # no digit left to mark with
    ],
)
def test_readings_are_those_of_the_query_itself(
    vocabulary: Vocabulary, text: str, other: str
) -> None:
    templates = ReadingTemplates(vocabulary)
    list(templates.readings(other))  # the shape is remembered from another number
    assert list(templates.readings(text)) == list(readings(text, vocabulary))
    templates.clear()
    assert list(templates.readings(text)) == list(readings(text, vocabulary))
