"""Normalisation: folding, abbreviations in ten languages, house numbers, postcodes."""

from __future__ import annotations

import unicodedata

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geobatch.engines.geocode.normalize import (
    _COMBINING,
    _NUMBER_RANGE,
    _NUMBER_SUFFIX,
    fold,
    fold_array,
    house_number_key,
    join_number_parts,
    plain_umlauts,
    postcode_key,
    street_key,
)


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("Av. Foch", "Avenue Foch"),  # fr
        ("Bd d\u2019Italie", "Boulevard d'Italie"),  # fr, typographic apostrophe
        ("5th Ave", "5th Avenue"),  # en
        ("N Charles St", "North Charles Street"),  # en: direction and final St
        ("St. Paul St", "Saint Paul Street"),  # en: leading St is a saint
        ("Hauptstr.", "Hauptstraße"),  # de: compound suffix
        ("Mannerheimint.", "Mannerheimintie"),  # fi
        ("Mikonk.", "Mikonkatu"),  # fi
        ("Drottningg.", "Drottninggatan"),  # sv
        ("C/ Major", "Carrer Major"),  # ca
        ("Avgda. Meritxell", "Avinguda Meritxell"),  # ca
        ("Avda. de la Constitución", "Avenida de la Constitucion"),  # es, accents
        ("Pça. do Comércio", "Praça do Comercio"),  # pt
        ("Vle Europa", "Viale Europa"),  # it
        ("Pza Navona", "Piazza Navona"),  # it
        ("Kalverstr.", "Kalverstrasse"),  # nl / de: "str." is one word for both
        ("Bahnhofstr", "Bahnhofstraße"),  # de, without its dot
        ("Austr. 13", "Austraße 13"),  # de, short enough to look like a country's abbreviation
        ("Drottningg 5", "Drottningg 5"),  # no dot: not taken for an abbreviation
    ],
)
def test_abbreviations_match_their_full_form(short: str, full: str) -> None:
    assert street_key(short) == street_key(full)


def test_fold_keeps_commas_and_number_ranges_and_drops_the_rest() -> None:
    assert fold("  Rue  GRIMALDI, 12-14 ") == "rue grimaldi, 12-14"
    assert fold("Säästöpankinranta") == "saastopankinranta"
    assert fold("Straße") == "strasse"
    assert fold("Monte-Carlo") == "monte carlo"
    assert fold("Vaccaro's, Little Italy") == "vaccaros, little italy"  # possessive kept whole
    assert fold("\uff2d\uff35\uff2e\uff23\uff28\uff25\uff2e") == "munchen"  # fullwidth: NFKC


@pytest.mark.parametrize(
    ("written", "key"),
    [("12b", "12b"), ("12 B", "12b"), ("12 bis", "12bis"), ("12-14", "12-14"), ("012", "12")],
)
def test_house_number_forms(written: str, key: str) -> None:
    assert house_number_key(written) == key


def test_number_parts_are_glued_into_one_token() -> None:
    assert join_number_parts("rue grimaldi 12 bis") == "rue grimaldi 12bis"
    assert join_number_parts("12 - 14 main street") == "12-14 main street"


@settings(max_examples=500)
@given(
    st.lists(
        st.sampled_from(["12", "3", "-", "/", " ", "b", "bis", "ter", "x", "ab", ","]), max_size=6
    )
)
def test_texts_the_quick_check_passes_over_have_no_number_parts(parts: list[str]) -> None:
    folded = " ".join("".join(parts).split())
    glued = _NUMBER_RANGE.sub(r"\1\2\3", _NUMBER_SUFFIX.sub(r"\1\2", folded))
    assert join_number_parts(folded) == glued


def test_postcodes_compare_without_spaces_and_case() -> None:
    assert postcode_key("sw1a 1aa") == postcode_key("SW1A1AA") == "SW1A1AA"
    assert postcode_key("ad500") == "AD500"


_LATIN = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzÄÖÅäöåéèêçñüßøæ .,'-/0123456789ÉÈ")),
    max_size=40,
)


@settings(deadline=None)
@given(_LATIN)
def test_fold_is_idempotent_and_lower_case(text: str) -> None:
    once = fold(text)
    assert fold(once) == once
    assert once == once.lower()
    assert "  " not in once


@settings(deadline=None, max_examples=50)
@given(st.lists(_LATIN, max_size=20))
def test_the_arrow_fold_agrees_with_the_python_one(texts: list[str]) -> None:
    assert fold_array(pa.array(texts, pa.string())).to_pylist() == [fold(t) for t in texts]


@pytest.mark.parametrize(
    ("written", "dotted"),
    [("Haemeentie", "Hämeentie"), ("Toeoeloe", "Töölö"), ("Muehlenweg", "Mühlenweg")],
)
def test_written_out_umlauts_compare_equal_both_ways(written: str, dotted: str) -> None:
    assert plain_umlauts(street_key(written)) == plain_umlauts(street_key(dotted))
    assert plain_umlauts(street_key(dotted)) == street_key(dotted)


@given(st.text(max_size=30))
def test_the_marks_table_drops_combining_marks_and_keeps_the_rest(text: str) -> None:
    text = unicodedata.normalize("NFKD", text)
    kept = "".join(char for char in text if not unicodedata.combining(char))
    assert text.translate(_COMBINING) == kept
