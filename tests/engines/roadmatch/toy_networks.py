"""Small hand-built road networks in metres around a fixed origin, for the engine's tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely

from geobatch.engines.roadmatch import RoadNetwork

LON0, LAT0 = 10.0, 50.0
M_PER_DEG_LAT = 111_229.0
M_PER_DEG_LON = 111_412.0 * math.cos(math.radians(LAT0))


def line(points: Sequence[tuple[float, float]]) -> shapely.LineString:
    """A lon/lat LineString from (x, y) metres east and north of the origin."""
    xy = np.asarray(points, dtype=float)
    return shapely.LineString(
        np.column_stack([LON0 + xy[:, 0] / M_PER_DEG_LON, LAT0 + xy[:, 1] / M_PER_DEG_LAT])
    )


def arc(
    radius: float, start_deg: float, end_deg: float, steps: int = 12
) -> list[tuple[float, float]]:
    angles = np.radians(np.linspace(start_deg, end_deg, steps + 1))
    return [(radius * math.cos(a), radius * math.sin(a)) for a in angles]


def network(
    roads: dict[str, Sequence[tuple[float, float]]],
    oneway: dict[str, int] | None = None,
    names: dict[str, str] | None = None,
    tunnels: Sequence[str] = (),
    layers: dict[str, int] | None = None,
) -> RoadNetwork:
    """Segments named by id, joined where their end points meet."""
    ids = list(roads)
    return RoadNetwork.from_lines(
        [line(roads[i]) for i in ids],
        ids=ids,
        oneway=[(oneway or {}).get(i, 0) for i in ids],
        names=[(names or {}).get(i) for i in ids],
        tunnel=[i in tunnels for i in ids],
        layer=[(layers or {}).get(i, 0) for i in ids],
    )


def t_junction() -> RoadNetwork:
    """A west-east main road cut at x=0 where a road leaves northwards."""
    return network(
        {
            "west": [(-200, 0), (0, 0)],
            "east": [(0, 0), (200, 0)],
            "north": [(0, 0), (0, 200)],
        }
    )


def carriageways() -> RoadNetwork:
    """A divided road: eastbound at y=+7, westbound at y=-7 (digitised westwards), each in
    three segments, with a crossing road at x=0 joining them."""
    return network(
        {
            "eb1": [(-300, 7), (-100, 7)],
            "eb2": [(-100, 7), (100, 7)],
            "eb3": [(100, 7), (300, 7)],
            "wb3": [(300, -7), (100, -7)],
            "wb2": [(100, -7), (-100, -7)],
            "wb1": [(-100, -7), (-300, -7)],
            "link_w": [(-100, 7), (-100, -7)],
            "link_e": [(100, -7), (100, 7)],
            "cross_n": [(-100, 7), (-100, 200)],
            "cross_s": [(-100, -7), (-100, -200)],
        },
        oneway=dict.fromkeys(("eb1", "eb2", "eb3", "wb1", "wb2", "wb3"), 1),
    )


def roundabout() -> RoadNetwork:
    """A roundabout of radius 20 m (anticlockwise, oneway) with arms to the four directions."""
    return network(
        {
            "ring_es": arc(20, 0, 90),  # east -> north
            "ring_nw": arc(20, 90, 180),  # north -> west
            "ring_ws": arc(20, 180, 270),  # west -> south
            "ring_se": arc(20, 270, 360),  # south -> east
            "arm_e": [(20, 0), (200, 0)],
            "arm_n": [(0, 20), (0, 200)],
            "arm_w": [(-200, 0), (-20, 0)],
            "arm_s": [(0, -200), (0, -20)],
        },
        oneway={"ring_es": 1, "ring_nw": 1, "ring_ws": 1, "ring_se": 1},
    )
