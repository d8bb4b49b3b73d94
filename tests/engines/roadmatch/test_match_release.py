"""Matching against a real release: its own roads come back as themselves."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.ops import substring

from geobatch.engines.roadmatch import MatchParams, RoadNetwork, match_lines, network_for
from geobatch.reference import Release


def test_network_is_built_once_per_release(helsinki: Release) -> None:
    network = network_for(helsinki)
    assert network_for(helsinki) is network
    assert len(network) == helsinki.table("segments").num_rows


def test_reference_segments_match_themselves(helsinki: Release) -> None:
    network = network_for(helsinki)
    segments = helsinki.table("segments")
    rng = np.random.default_rng(3)
    rows = np.sort(rng.choice(segments.num_rows, size=150, replace=False))
    picked = segments.take(rows)
    lines = shapely.from_wkb(picked.column("geometry").to_numpy(zero_copy_only=False))
    ids = picked.column("id").to_pylist()
    matches = match_lines(list(lines), picked.column("name").to_pylist(), network, MatchParams())
    assert len(matches) == len(ids)
    found = sum(
        any(s.segment_id == i for s in m.segments) for m, i in zip(matches, ids, strict=True)
    )
    assert found >= 0.97 * len(ids)
    assert sum(m.status == "full" for m in matches) >= 0.95 * len(ids)
    for match, segment_id in zip(matches, ids, strict=True):
        own = [s for s in match.segments if s.segment_id == segment_id]
        if own:
            assert own[0].source_id == segment_id.rsplit(":", 1)[0]


def test_empty_input_gives_no_matches(helsinki: Release) -> None:
    assert match_lines([], None, RoadNetwork.from_release(helsinki), MatchParams()) == []


def test_roads_that_double_back_on_themselves_match_like_the_others(helsinki: Release) -> None:
    """Digitising jitter that doubles back makes a line cross itself and run more metres
    than it advances; the road is matched, and whole (its steps keep pace with the road)."""
    network = network_for(helsinki)
    segments = helsinki.table("segments")
    long_enough = np.flatnonzero(segments.column("length_m").to_numpy() > 80)
    rows = np.random.default_rng(5).choice(long_enough, size=60, replace=False)
    picked = segments.take(np.sort(rows))
    lines = shapely.from_wkb(picked.column("geometry").to_numpy(zero_copy_only=False))
    jittered = []
    for line in lines:
        # A hook: on from the middle to a bar across the road, back, and through the bar.
        start, on, back = (line.interpolate(f, normalized=True) for f in (0.5, 0.54, 0.52))
        along = np.subtract(on.coords[0], start.coords[0])
        across = 0.3 * np.array([-along[1], along[0]])  # a bar of about two metres
        head = substring(line, 0, 0.5, normalized=True)
        tail = substring(line, 0.52, 1, normalized=True)
        hook = [np.add(on.coords[0], across), np.subtract(on.coords[0], across), back.coords[0]]
        jittered.append(shapely.LineString([*head.coords, *map(tuple, hook), *tail.coords]))
    assert not shapely.is_simple(jittered).any()
    matches = match_lines(jittered, picked.column("name").to_pylist(), network, MatchParams())
    ids = picked.column("id").to_pylist()
    own = sum(any(s.segment_id == i for s in m.segments) for m, i in zip(matches, ids, strict=True))
    assert own >= 0.95 * len(ids)
    assert sum(m.status == "full" for m in matches) >= 0.9 * len(ids)
