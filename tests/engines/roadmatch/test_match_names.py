"""Street name similarity across abbreviations, case and punctuation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from geobatch.engines.roadmatch.names import normalise, similarity


def test_abbreviations_and_case_do_not_matter() -> None:
    assert normalise("MASSACHUSETTS AVE. NW") == "massachusetts avenue northwest"
    assert similarity("Massachusetts Avenue Northwest", ["MASSACHUSETTS AVE NW"]) == 100.0


def test_best_of_the_variants_and_none_without_names() -> None:
    assert similarity("Pitkäsilta", ["Långa bron", "Pitkäsilta"]) == 100.0
    assert similarity("", ["Main Street"]) is None
    assert similarity("Main Street", []) is None
    low = similarity("Main Street", ["Harbour Road"])
    assert low is not None
    assert low < 60


@given(st.text(max_size=40))
def test_similarity_is_a_score_or_none(name: str) -> None:
    score = similarity(name, [name, "Main Street"])
    assert score is None or 0.0 <= score <= 100.0
    if normalise(name):
        assert score == 100.0
