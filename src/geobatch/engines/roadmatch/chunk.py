"""Matching a batch of road records: decode, match every line, combine parts, build the table.

One function shared by the ``road_match`` job type (a chunk) and the single-shot endpoint (a
small FeatureCollection), so both answer the same way.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from geobatch.engines.roadmatch.inputs import decode_roads
from geobatch.engines.roadmatch.match import MatchParams, RoadNetwork, match_columns
from geobatch.engines.roadmatch.matches import Matches
from geobatch.engines.roadmatch.output import Layout, RoadAnswer, combine_parts, road_table


@dataclass(frozen=True, kw_only=True)
class BatchMatch:
    """Road ``i`` of ``matches`` answers record row ``rows[i]``; ``errors`` has every other row."""

    rows: np.ndarray
    matches: Matches
    errors: pa.Table
    seconds: float

    @functools.cached_property
    def answers(self) -> list[RoadAnswer]:
        """The answers as one object per road, built on first use (the table needs none)."""
        return self.matches.roads()

    def table(
        self, records: pa.Table, layout: Layout = "roads", *, geometry: bool = False
    ) -> pa.Table:
        return road_table(records, self.rows, self.matches, layout, geometry=geometry)


def match_records(
    records: pa.Table, network: RoadNetwork, params: MatchParams, *, traces: bool = False
) -> BatchMatch:
    """Match every usable record of ``records`` (``_ordinal``, ``recId``, geometry, and the
    optional ``name``, ``oneway``, ``layer``, ``tunnel`` and ``bridge``); GPS traces are
    matched in their direction of travel."""
    started = time.perf_counter()
    if traces:
        params = MatchParams.for_traces(
            search_radius_m=params.search_radius_m,
            confidence_threshold=params.confidence_threshold,
            with_geometry=params.with_geometry,
        )
    lines = decode_roads(records, traces=traces, use_names=params.use_names)
    matches = (
        match_columns(
            lines.parts,
            lines.names if params.use_names else None,
            network,
            params,
            oneway=None if traces else lines.oneway,
            layer=None if traces else lines.layer,
            tunnel=None if traces else lines.tunnel,
            bridge=None if traces else lines.bridge,
        )
        if lines.parts
        else Matches.from_roads([])
    )
    return BatchMatch(
        rows=lines.rows,
        matches=combine_parts(lines.owner, matches),
        errors=lines.errors,
        seconds=time.perf_counter() - started,
    )
