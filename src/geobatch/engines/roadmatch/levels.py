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
        return _Pairs.of(self, line, segment, network).mismatch(layer_share)

    def agreement(
        self, line: np.ndarray, segment: np.ndarray, network: RoadNetwork, layer_share: float
    ) -> np.ndarray:
        """Per (line, segment) pair, 1 - mismatch (0..1) where either side is off the ground
        (in a tunnel, on a bridge, at a layer other than 0) and the line says where it runs;
        nan elsewhere: two roads at ground level agreeing says little."""
        pairs = _Pairs.of(self, line, segment, network)
        road_off = (pairs.road_tunnel == 1) | (pairs.road_bridge == 1)
        road_off |= (pairs.road_layer != UNKNOWN) & (pairs.road_layer != 0)
        segment_off = pairs.tunnel | pairs.bridge | (pairs.layer != 0)
        said = (pairs.road_layer != UNKNOWN) | (pairs.road_tunnel != UNKNOWN)
        said |= pairs.road_bridge != UNKNOWN
        score = 1.0 - np.minimum(pairs.mismatch(layer_share), 1.0)
        return np.where(said & (road_off | segment_off), score, np.nan)


@dataclass(frozen=True)
class _Pairs:
    """The levels of both sides of each (line, segment) pair, gathered once."""

    road_tunnel: np.ndarray
    road_bridge: np.ndarray
    road_layer: np.ndarray
    tunnel: np.ndarray
    bridge: np.ndarray
    layer: np.ndarray

    @classmethod
    def of(
        cls, levels: Levels, line: np.ndarray, segment: np.ndarray, network: RoadNetwork
    ) -> _Pairs:
        return cls(
            levels.tunnel[line],
            levels.bridge[line],
            levels.layer[line],
            network.tunnel[segment],
            network.bridge[segment],
            network.layer[segment],
        )

    def mismatch(self, layer_share: float) -> np.ndarray:
        out = np.zeros(len(self.layer))
        for said, actual in ((self.road_tunnel, self.tunnel), (self.road_bridge, self.bridge)):
            out = np.maximum(out, (said != UNKNOWN) & (said != actual))
        layer_differs = (self.road_layer != UNKNOWN) & (self.road_layer != self.layer)
        return np.asarray(out + layer_share * layer_differs)


def _known(size: int, values: Sequence[int | bool | None] | None) -> np.ndarray:
    out = np.full(size, UNKNOWN, dtype=np.int16)
    if values is not None:
        out[:] = [UNKNOWN if v is None else int(v) for v in values]
    return out
