"""Candidates: every segment within the radius of each sample, nearest first, both directions."""

from __future__ import annotations

import numpy as np
import pytest
from toy_networks import line, network

from geobatch.engines.roadmatch import RoadNetwork
from geobatch.engines.roadmatch.candidates import find_candidates
from geobatch.engines.roadmatch.geometry import Samples, resample


def _samples(points: list[tuple[float, float]], net: RoadNetwork, spacing: float = 10.0) -> Samples:
    metric = net.projection.project(np.array([line(points)], dtype=object))
    return resample(metric, spacing)


def test_candidates_are_within_radius_nearest_first_in_both_directions() -> None:
    net = network(
        {"near": [(0, 0), (100, 0)], "mid": [(0, 20), (100, 20)], "far": [(0, 60), (100, 60)]}
    )
    samples = _samples([(50, 5), (60, 5)], net)
    cands = find_candidates(samples, net, radius_m=30.0, max_candidates=5)
    first = cands.point == 0
    segs = [net.segment_ids[s] for s in cands.segment[first]]
    assert segs == ["near", "near", "mid", "mid"]  # far is 55 m away
    assert cands.distance[first] == pytest.approx([5, 5, 15, 15], abs=0.2)
    assert cands.offset[first][0] == pytest.approx(50.0, abs=0.5)
    assert sorted(cands.direction[first][:2].tolist()) == [-1, 1]
    headings = cands.heading[first][:2]
    assert abs(abs(headings[0] - headings[1]) - np.pi) < 1e-9


def test_directions_far_off_the_road_are_not_candidates() -> None:
    net = network({"along": [(0, 0), (100, 0)], "across": [(50, -50), (50, 50)]})
    samples = _samples([(40, 3), (60, 3)], net)
    every = find_candidates(samples, net, radius_m=30.0, max_candidates=5)
    ahead = find_candidates(samples, net, radius_m=30.0, max_candidates=5, max_turn=np.radians(75))
    across = net.segment_ids.index("across")
    assert (every.segment == across).sum() == 2 * len(samples.x)  # both ways at every sample
    assert not (ahead.segment == across).any()  # 90 degrees off the road
    along = ahead.segment == net.segment_ids.index("along")
    assert along.sum() == len(samples.x)
    assert (ahead.direction[along] == 1).all()


def test_the_nearest_piece_of_a_segment_is_its_candidate() -> None:
    # A zig-zag segment passes the sample three times; the nearest pass (2 m) is the one kept.
    net = network({"zigzag": [(0, 10), (50, 10), (50, 2), (0, 2), (0, -20), (50, -20)]})
    samples = _samples([(25, 0), (26, 0)], net)
    cands = find_candidates(samples, net, radius_m=30.0, max_candidates=5)
    first = cands.point == 0
    assert cands.distance[first] == pytest.approx([2.0, 2.0], abs=0.1)
    assert cands.offset[first][0] == pytest.approx(50 + 8 + 25, abs=0.5)


def test_max_candidates_keeps_the_nearest_segments() -> None:
    roads = {f"r{k}": [(0, 3.0 * k), (100, 3.0 * k)] for k in range(8)}
    net = network(roads)
    samples = _samples([(50, 0), (60, 0)], net)
    cands = find_candidates(samples, net, radius_m=30.0, max_candidates=3)
    kept = {net.segment_ids[s] for s in cands.segment[cands.point == 0]}
    assert kept == {"r0", "r1", "r2"}


def test_projection_onto_a_bent_segment_measures_along_it() -> None:
    net = network({"bent": [(0, 0), (100, 0), (100, 100)]})
    samples = _samples([(104, 50), (104, 60)], net)
    cands = find_candidates(samples, net, radius_m=30.0, max_candidates=2)
    assert cands.offset[0] == pytest.approx(150.0, abs=0.7)
    assert cands.distance[0] == pytest.approx(4.0, abs=0.2)
