"""Matching against a real release: its own roads come back as themselves."""

from __future__ import annotations

import numpy as np
import shapely

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
