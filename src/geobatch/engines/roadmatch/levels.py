"""Where a road runs (in a tunnel, on a bridge, at an OSM ``layer``) as a matching cue.

A tunnel and the street above it, or a bridge and the road beneath, lie a few metres apart,
closer than a digitised road's offset: geometry alone cannot tell them apart. Where the
input says where a road runs, a candidate on a segment that runs elsewhere is less likely;
where it does not say, nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geobatch.engines.roadmatch.network import RoadNetwork

UNKNOWN = -128
"""An unknown layer, tunnel or bridge in the per-line arrays."""


@dataclass(frozen=True, kw_only=True)
class Levels:
    """Per input line: its layer, and 1/0 for in a tunnel and on a bridge; ``UNKNOWN`` where
    the input does not say."""

    layer: np.ndarray  # int16
    tunnel: np.ndarray  # int16
    bridge: np.ndarray  # int16

    @classmethod
    def of(
        cls,
        size: int,
        layer: Sequence[int | None] | None,
        tunnel: Sequence[bool | None] | None,
        bridge: Sequence[bool | None] | None,
    ) -> Levels:
        return cls(
            layer=_known(size, layer), tunnel=_known(size, tunnel), bridge=_known(size, bridge)
        )

    def mismatch(
        self, line: np.ndarray, segment: np.ndarray, network: RoadNetwork, layer_share: float
    ) -> np.ndarray:
        """Per (line, segment) pair, 1 where the segment is in a tunnel or on a bridge and the
        line says it is not (or the reverse), plus ``layer_share`` where the layers differ
        (a tunnel drawn at another depth since is still that tunnel); 0 where unknown."""
        out = np.zeros(len(line))
        for said, actual in ((self.tunnel, network.tunnel), (self.bridge, network.bridge)):
            given = said[line]
            out = np.maximum(out, (given != UNKNOWN) & (given != actual[segment]))
        given = self.layer[line]
        out += layer_share * ((given != UNKNOWN) & (given != network.layer[segment]))
        return out

    def agreement(
        self, line: np.ndarray, segment: np.ndarray, network: RoadNetwork, layer_share: float
    ) -> np.ndarray:
        """Per (line, segment) pair, 1 - mismatch (0..1) where either side is off the ground
        (in a tunnel, on a bridge, at a layer other than 0) and the line says where it runs;
        nan elsewhere: two roads at ground level agreeing says little."""
        road_off = (self.tunnel[line] == 1) | (self.bridge[line] == 1)
        road_off |= (self.layer[line] != UNKNOWN) & (self.layer[line] != 0)
        segment_off = network.tunnel[segment] | network.bridge[segment]
        segment_off = segment_off | (network.layer[segment] != 0)
        said = (self.layer[line] != UNKNOWN) | (self.tunnel[line] != UNKNOWN)
        said |= self.bridge[line] != UNKNOWN
        score = 1.0 - np.minimum(self.mismatch(line, segment, network, layer_share), 1.0)
        return np.where(said & (road_off | segment_off), score, np.nan)


def _known(size: int, values: Sequence[int | bool | None] | None) -> np.ndarray:
    out = np.full(size, UNKNOWN, dtype=np.int16)
    if values is not None:
        out[:] = [UNKNOWN if v is None else int(v) for v in values]
    return out
