"""Street name similarity across abbreviations, case and punctuation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from toy_networks import network

from geobatch.engines.roadmatch.names import mismatch, normalise, similarities, similarity


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


def test_pairs_score_once_per_name_and_segment_and_nan_without_names() -> None:
    net = network(
        {"main": [(0, 0), (100, 0)], "side": [(0, 20), (100, 20)], "bare": [(0, 40), (100, 40)]},
        names={"main": "Main Street", "side": "Side Road"},
    )
    names = ["MAIN ST", None, "Main Street"]
    line = np.array([0, 0, 0, 1, 2, 2])
    segment = np.array([0, 1, 2, 0, 0, 0])
    got = similarities(names, line, segment, net)
    assert got[0] == 100.0
    assert got[4] == got[5] == 100.0
    assert got[1] == similarity("MAIN ST", ["Side Road"]) < 60
    assert np.isnan(got[2])
    assert np.isnan(got[3])
    assert mismatch(names, line, segment, net).tolist() == pytest.approx(
        [0.0, 1 - got[1] / 100, 0.5, 0.0, 0.0, 0.0]
    )


def test_segments_of_one_street_share_a_name_group_and_score_alike() -> None:
    net = network(
        {
            "main-1": [(0, 0), (100, 0)],
            "main-2": [(100, 0), (200, 0)],
            "side": [(0, 20), (100, 20)],
            "bare": [(0, 40), (100, 40)],
        },
        names={"main-1": "Main Street", "main-2": "Main Street", "side": "Side Road"},
    )
    groups = net.name_groups(np.array([3, 1, 0, 2, 1]))
    assert groups[1] == groups[2] == groups[4]
    assert len({int(groups[0]), int(groups[1]), int(groups[3])}) == 3
    assert net.group_names(int(groups[1])) == ("Main Street",)
    assert net.name_groups(np.array([0, 1])).tolist() == [groups[2], groups[1]]
    got = similarities(["Main St", "Side Rd"], np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2]), net)
    assert got[0] == got[1] == 100.0
    assert got[2] == similarity("Side Rd", ["Main Street"])
    assert got[3] == 100.0


def test_shared_street_type_words_do_not_make_names_alike() -> None:
    unrelated = similarity("Avenue de la Porte Neuve", ["Avenue des Pins"])
    assert unrelated is not None
    assert unrelated < 50
    related = similarity("Rue Bosio", ["Rond-Point Bosio"])
    assert related is not None
    assert related >= 80
    # Differing street types still count against a pair.
    other_type = similarity("Main Street", ["Main Avenue"])
    assert other_type is not None
    assert other_type < 80


def test_a_name_of_street_type_words_only_weighs_as_no_name() -> None:
    # "Bretelle" (a slip road) says what kind of road it is, not which one.
    net = network(
        {
            "boulevard": [(0, 0), (100, 0)],
            "slip": [(0, 8), (100, 8)],
            "bare": [(0, 16), (100, 16)],
        },
        names={"boulevard": "Boulevard du Larvotto", "slip": "Bretelle de Monaco"},
    )
    line = np.zeros(3, dtype=np.int64)
    costs = mismatch(["Bretelle"], line, np.array([0, 1, 2]), net)
    assert costs.tolist() == [0.5, 0.5, 0.5]
    assert similarity("Bretelle", ["Bretelle"]) == 100.0
    assert similarity("Bretelle de Monaco", ["Bretelle de Monaco"]) == 100.0
    unrelated = similarity("Bretelle de Monaco", ["Boulevard du Larvotto"])
    assert unrelated is not None
    assert unrelated < 50
