"""Linear referencing: covered fractions along reference segments and ranges along the input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from toy_networks import line, network

from geobatch.engines.roadmatch import MatchParams, match_lines
from geobatch.engines.roadmatch.linear import _near_or_between

PARAMS = MatchParams()


def test_part_of_a_segment_gives_its_fractions_and_the_input_range() -> None:
    net = network({"a": [(0, 0), (200, 0)]})
    for points in ([(40, 3), (140, 3)], [(140, 3), (40, 3)]):
        (match,) = match_lines([line(points)], None, net, PARAMS)
        (seg,) = match.segments
        # Fractions run in the segment's own direction whichever way the input is drawn.
        assert seg.from_fraction == pytest.approx(0.2, abs=0.01)
        assert seg.to_fraction == pytest.approx(0.7, abs=0.01)
        assert seg.input_from_m == pytest.approx(0.0, abs=0.5)
        assert seg.input_to_m == pytest.approx(100.0, abs=1.0)
        assert seg.length_m == pytest.approx(100.0, abs=1.0)
        assert match.matched_ratio == pytest.approx(1.0)


def test_a_road_across_a_junction_covers_the_end_of_one_and_the_start_of_the_next() -> None:
    net = network({"a": [(0, 0), (100, 0)], "b": [(100, 0), (300, 0)]})
    (match,) = match_lines([line([(50, -2), (200, -2)])], None, net, PARAMS)
    a, b = match.segments
    assert (a.segment_id, b.segment_id) == ("a", "b")
    assert (a.from_fraction, a.to_fraction) == pytest.approx((0.5, 1.0), abs=0.01)
    assert (b.from_fraction, b.to_fraction) == pytest.approx((0.0, 0.5), abs=0.01)
    assert a.input_to_m == pytest.approx(50.0, abs=1.5)
    assert b.input_from_m == pytest.approx(a.input_to_m, abs=1e-6)
    assert b.input_to_m == pytest.approx(150.0, abs=1.0)


def test_short_segments_between_samples_are_covered_whole() -> None:
    # A 6 m segment between two long ones falls between samples 15 m apart.
    net = network({"a": [(0, 0), (100, 0)], "b": [(100, 0), (106, 0)], "c": [(106, 0), (250, 0)]})
    (match,) = match_lines([line([(10, 2), (240, 2)])], None, net, PARAMS)
    assert [s.segment_id for s in match.segments] == ["a", "b", "c"]
    b = match.segments[1]
    assert (b.from_fraction, b.to_fraction) == (0.0, 1.0)
    assert b.input_to_m - b.input_from_m == pytest.approx(6.0, abs=1.0)


def test_ends_within_the_snap_distance_reach_the_segment_end() -> None:
    net = network({"a": [(0, 0), (100, 0)]})
    (match,) = match_lines([line([(1, 2), (98.5, 2)])], None, net, PARAMS)
    (seg,) = match.segments
    assert (seg.from_fraction, seg.to_fraction) == (0.0, 1.0)


def test_a_road_ending_mid_segment_covers_only_up_to_its_end() -> None:
    net = network({"a": [(0, 0), (100, 0)], "b": [(100, 0), (400, 0)]})
    # Starts 6 m past the junction with a, ends 4 m short of b's far end.
    (match,) = match_lines([line([(106, 3), (396, 3)])], None, net, PARAMS)
    (seg,) = match.segments
    assert seg.segment_id == "b"
    assert (seg.from_fraction, seg.to_fraction) == pytest.approx((6 / 300, 296 / 300), abs=0.004)
    assert seg.length_m == pytest.approx(290.0, abs=1.0)
    assert match.status == "full"


def test_one_piece_of_a_long_way_is_covered_only_where_the_road_runs() -> None:
    # A 2 km way with no junction; the road covers 137 m of its middle, drawn backwards.
    net = network({"long": [(0, 0), (700, 0), (1300, 10), (2000, 10)]})
    (match,) = match_lines([line([(1000.0, 2.0), (863.0, 4.0)])], None, net, PARAMS)
    (seg,) = match.segments
    length = net.length_m[0]
    assert seg.from_fraction * length == pytest.approx(863.0, abs=1.5)
    assert seg.to_fraction * length == pytest.approx(1000.0, abs=1.5)
    assert seg.length_m == pytest.approx(137.0, abs=1.5)
    assert seg.input_to_m - seg.input_from_m == pytest.approx(137.0, abs=1.5)
    assert match.matched_ratio == pytest.approx(1.0, abs=0.02)


@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=30))
def test_far_steps_count_only_when_short_and_between_near_ones(
    steps: list[tuple[int, bool]],
) -> None:
    steps.sort(key=lambda s: s[0])  # steps come line after line
    line_of = np.asarray([s[0] for s in steps], dtype=np.int64)
    near = np.asarray([s[1] for s in steps], dtype=bool)
    start = np.arange(len(steps)) * 15.0
    kept = _near_or_between(near, line_of, start, start + 15.0, 30.0)
    assert (kept | ~near).all()  # every near step is kept
    for k in np.flatnonzero(kept & ~near):
        before = [j for j in range(k) if line_of[j] == line_of[k]]
        after = [j for j in range(k + 1, len(steps)) if line_of[j] == line_of[k]]
        # A kept far step lies in a run of at most two far steps with near ones around it.
        assert any(near[j] for j in before[-2:])
        assert any(near[j] for j in after[:2])
    if not near.any():
        assert not kept.any()
