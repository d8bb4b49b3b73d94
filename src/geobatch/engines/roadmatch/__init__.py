"""Road matching: map a customer's road geometries onto the reference network.

``match_lines`` decodes each road as a path through the reference graph (a hidden Markov
model over candidate segments) and reports, per road, the reference segments it covers with
linear ranges, a status and a confidence. ``network_for`` builds the matching structures of
a release once per process.
"""

from geobatch.engines.roadmatch.match import (
    MatchParams,
    RoadMatch,
    SegmentMatch,
    match_columns,
    match_lines,
)
from geobatch.engines.roadmatch.matches import Matches
from geobatch.engines.roadmatch.network import RoadNetwork, network_for

__all__ = [
    "MatchParams",
    "Matches",
    "RoadMatch",
    "RoadNetwork",
    "SegmentMatch",
    "match_columns",
    "match_lines",
    "network_for",
]
