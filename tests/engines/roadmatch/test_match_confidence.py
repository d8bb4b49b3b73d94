"""Confidence ordering and the full / partial / unmatched status."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from toy_networks import line, network

from geobatch.engines.roadmatch import MatchParams, match_lines
from geobatch.engines.roadmatch.confidence import _frechet, combine, road_threshold

PARAMS = MatchParams()


def _straight() -> object:
    return network({"a": [(0, 0), (300, 0)]}, names={"a": "Main Street"})


def test_confidence_falls_with_distance_heading_and_name_disagreement() -> None:
    base = combine(np.array([2.0]), np.array([3.0]), np.array([0.05]), np.array([100.0]))[0]
    assert base > 90
    farther = combine(np.array([15.0]), np.array([18.0]), np.array([0.05]), np.array([100.0]))[0]
    skewed = combine(np.array([2.0]), np.array([3.0]), np.array([0.6]), np.array([100.0]))[0]
    renamed = combine(np.array([2.0]), np.array([3.0]), np.array([0.05]), np.array([20.0]))[0]
    unnamed = combine(np.array([2.0]), np.array([3.0]), np.array([0.05]), np.array([np.nan]))[0]
    assert max(farther, skewed, renamed) < base
    assert renamed < unnamed <= 100


def test_matches_further_away_have_lower_confidence() -> None:
    net = _straight()
    offsets = [0.0, 5.0, 10.0, 20.0]
    lines = [line([(20, d), (280, d)]) for d in offsets]
    matches = match_lines(lines, None, net, MatchParams(confidence_threshold=0))
    confidence = [m.confidence for m in matches]
    assert confidence == sorted(confidence, reverse=True)
    assert confidence[0] > 95
    assert confidence[2] >= PARAMS.confidence_threshold  # 10 m off is still a match
    assert confidence[3] < confidence[2] - 20


def test_name_similarity_counts_where_both_sides_have_names() -> None:
    net = _straight()
    road = line([(20, 6), (280, 6)])
    same, abbreviated, other, none = match_lines(
        [road] * 4, ["Main Street", "MAIN ST", "Harbour Road", None], net, PARAMS
    )
    assert same.confidence == pytest.approx(abbreviated.confidence, abs=1.0)
    assert other.confidence < none.confidence < same.confidence


def test_status_full_partial_and_unmatched() -> None:
    net = _straight()
    full = line([(10, 3), (290, 3)])
    half = line([(150, 3), (300, 3), (300, 150), (300, 300)])  # leaves the network at the end
    away = line([(0, 100), (300, 100)])
    matches = match_lines([full, half, away], None, net, PARAMS)
    assert [m.status for m in matches] == ["full", "partial", "unmatched"]
    assert matches[0].matched_ratio >= PARAMS.full_ratio
    assert 0.3 < matches[1].matched_ratio < 0.7
    assert matches[2].segments == ()
    assert matches[2].matched_ratio == 0.0


def test_below_the_confidence_threshold_a_road_is_unmatched() -> None:
    net = _straight()
    road = line([(20, 10), (280, 10)])
    (loose,) = match_lines([road], None, net, MatchParams(confidence_threshold=10))
    (strict,) = match_lines([road], None, net, MatchParams(confidence_threshold=95))
    assert loose.status == "full"
    assert strict.status == "unmatched"
    assert strict.confidence == loose.confidence
    assert strict.segments == ()


def test_params_refuse_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="confidence_threshold"):
        MatchParams(confidence_threshold=101)
    with pytest.raises(ValueError, match="search_radius_m"):
        MatchParams(search_radius_m=0)


def _main_street_in_two() -> object:
    return network(
        {"a": [(0, 0), (150, 0)], "b": [(150, 0), (300, 0)]},
        names={"a": "Main Street", "b": "Main Street"},
    )


def test_a_road_missing_from_the_reference_is_unmatched_not_snapped_to_a_neighbour() -> None:
    net = _main_street_in_two()
    road = line([(20, 18), (280, 18)])  # a street of its own, 18 m beside Main Street
    named, unnamed = match_lines([road, road], ["Harbour Road", None], net, PARAMS)
    assert (named.status, named.segments, named.matched_ratio) == ("unmatched", (), 0.0)
    assert unnamed.status == "unmatched"
    assert unnamed.confidence < PARAMS.confidence_threshold
    # Nearer, a name of its own still counts against it.
    closer = line([(20, 9), (280, 9)])
    named, unnamed = match_lines([closer] * 2, ["Harbour Road", None], net, PARAMS)
    assert named.confidence < unnamed.confidence


def test_a_new_road_touching_the_reference_only_where_it_starts_is_unmatched() -> None:
    net = _main_street_in_two()
    # Main Street extended eastwards past its end: only its first step runs along the street.
    extension = line([(290, 3), (500, 3)])
    branch = line([(290, 3), (300, 3), (330, 40), (330, 200)])  # leaves it at once
    longer = line([(240, 3), (500, 3)])  # 60 m on the street: partly on the reference
    roads = [extension, branch, longer]
    names = ["Main Street"] * 3
    found = match_lines(roads, names, net, PARAMS)
    assert [m.status for m in found] == ["unmatched", "unmatched", "partial"]
    assert (found[0].segments, found[0].matched_ratio) == ((), 0.0)
    # Without the rule, the single step at the start is reported as a partial match.
    loose = match_lines(roads, names, net, MatchParams(min_matched_steps=0.0))
    assert loose[0].status == "partial"


def test_confidence_threshold_drops_weak_stretches_and_the_status_follows() -> None:
    net = _main_street_in_two()
    # On Main Street for its first half, then drifting 16 m off it.
    road = line([(10, 2), (150, 2), (300, 16)])
    (loose,) = match_lines([road], ["Main Street"], net, MatchParams(confidence_threshold=50))
    (strict,) = match_lines([road], ["Main Street"], net, MatchParams(confidence_threshold=84))
    assert [s.segment_id for s in loose.segments] == ["a", "b"]
    assert loose.matched_ratio > 0.85
    weak = loose.segments[1].confidence
    assert loose.segments[0].confidence > 84 > weak
    assert [s.segment_id for s in strict.segments] == ["a"]
    assert strict.status == "partial"
    assert strict.matched_ratio == pytest.approx(140 / 291, abs=0.03)


def test_frechet_of_samples_and_path_positions_is_that_of_geos() -> None:
    rng = np.random.default_rng(3)
    count = rng.integers(2, 40, size=300)
    line = np.repeat(np.arange(300), count)
    sample_xy = np.cumsum(rng.normal(0, 10, (len(line), 2)), axis=0)
    # Path positions a few metres off their samples, and on some lines swapped around so that
    # a sample lies nearer another sample's position than its own (the quadratic case).
    path_xy = sample_xy + rng.normal(0, 4, sample_xy.shape)
    swap = np.flatnonzero(rng.random(len(line) - 1) < 0.05)
    path_xy[swap], path_xy[swap + 1] = path_xy[swap + 1].copy(), path_xy[swap].copy()
    lines, found = _frechet(line, sample_xy, path_xy)
    expected = shapely.frechet_distance(
        shapely.linestrings(sample_xy, indices=line), shapely.linestrings(path_xy, indices=line)
    )
    assert np.array_equal(lines, np.arange(300))
    assert np.array_equal(found, expected)


def test_the_street_a_road_ends_at_is_not_reported_as_part_of_it() -> None:
    net = network(
        {"a": [(0, 0), (200, 0)], "b": [(200, 0), (300, 0)]},
        names={"a": "Main Street", "b": "Harbour Road"},
    )
    ends_there = line([(20, 2), (210, 2)])
    runs_on = line([(20, 2), (250, 2)])
    short, long = match_lines([ends_there, runs_on], ["Main Street"] * 2, net, PARAMS)
    assert [s.segment_id for s in short.segments] == ["a"]
    assert short.status == "full"  # the road does reach the junction
    assert [s.segment_id for s in long.segments] == ["a", "b"]
    kept = match_lines([ends_there], ["Main Street"], net, MatchParams(end_name_m=0))[0]
    assert [s.segment_id for s in kept.segments] == ["a", "b"]


def test_a_stretch_running_well_away_from_the_reference_is_not_covered() -> None:
    net = network({"a": [(0, 0), (400, 0)]}, names={"a": "Main Street"})
    # Along the street for 150 m, then 20 m beside it: a new road built alongside.
    leaves = line([(0, 2), (150, 2), (165, 20), (350, 20)])
    (match,) = match_lines([leaves], ["Main Street"], net, PARAMS)
    assert match.status == "partial"
    assert 0.35 < match.matched_ratio < 0.6
    assert max(s.input_to_m for s in match.segments) < 175
    assert max(s.to_fraction for s in match.segments) < 175 / 400
    (loose,) = match_lines([leaves], ["Main Street"], net, MatchParams(off_reference_share=1.0))
    assert loose.status == "full"


def test_a_road_of_few_samples_needs_more_confidence() -> None:
    # A fragment fits whatever street it lies near: at one sampling step it must clear the
    # threshold plus a quarter of the way to 100; a road four steps long a sixteenth.
    net = _straight()

    def bent(length: float, offset: float) -> shapely.LineString:
        rise = math.tan(math.radians(20)) * length / 2
        return line([(100, offset), (100 + length / 2, offset + rise), (100 + length, offset)])

    fragment, road = bent(12, 10), bent(60, 6)
    names = ["Harbour Road"] * 2
    loose = match_lines([fragment, road], names, net, MatchParams(confidence_threshold=0))
    assert road_threshold(np.array([12.0, 60.0]), PARAMS).tolist() == [70.0, 62.5]
    assert loose[1].confidence < loose[0].confidence < 70.0
    default = match_lines([fragment, road], names, net, PARAMS)
    assert [m.status for m in default] == ["unmatched", "full"]
    without = match_lines([fragment, road], names, net, MatchParams(short_road_margin=0))
    assert [m.status for m in without] == ["full", "full"]
    assert [m.status for m in loose] == ["full", "full"]
