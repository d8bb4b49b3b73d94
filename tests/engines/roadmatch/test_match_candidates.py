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
