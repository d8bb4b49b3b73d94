"""Fuzzy name search: the same matches, in the same order, as rapidfuzz over all the names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz, process

from geobatch.engines.geocode.index import FuzzyKeys

NAMES = [
    "pier 13",
    "pier 14",
    "pier street",
    "5th avenue",
    "45th street",
    "fifth avenue",
    "boston street",
    "bsoton street",
    "east 33rd street",
    "east street",
    "pier",
    "",
]


def _rapidfuzz(names: list[str], query: str, cutoff: float, limit: int) -> list[tuple[str, float]]:
    found = process.extract(query, names, scorer=fuzz.ratio, limit=limit, score_cutoff=cutoff)
    return [(name, score) for name, score, _ in found]


def test_queries_differing_in_digits_find_their_own_numbered_names() -> None:
    keys = FuzzyKeys(NAMES)
    for query in ("pier 13", "pier 14", "pier 99", "east 33rd street", "east 45th street"):
        assert keys.extract(query, 75.0, 3) == _rapidfuzz(NAMES, query, 75.0, 3), query


def test_forget_keeps_the_answers() -> None:
    keys = FuzzyKeys(NAMES)
    first = keys.extract("boston street 12", 60.0, 3)
    keys.forget()
    assert keys.extract("boston street 12", 60.0, 3) == first


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(st.text(alphabet="ab 019", max_size=8), min_size=1, max_size=30),
    queries=st.lists(st.text(alphabet="ab 0129", max_size=9), min_size=1, max_size=6),
    cutoff=st.sampled_from([0.0, 50.0, 75.0, 90.0]),
    limit=st.integers(min_value=1, max_value=5),
)
def test_same_as_rapidfuzz_over_all_names(
    names: list[str], queries: list[str], cutoff: float, limit: int
) -> None:
    keys = FuzzyKeys(names)
    for query in queries:  # one after another: later ones may share a remembered shape
        assert keys.extract(query, cutoff, limit) == _rapidfuzz(names, query, cutoff, limit)
