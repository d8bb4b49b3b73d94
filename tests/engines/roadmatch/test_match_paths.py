"""Whole matches on hand-built networks: junctions, divided carriageways, roundabouts."""

from __future__ import annotations

import pytest
from toy_networks import arc, carriageways, line, network, roundabout, t_junction

from geobatch.engines.roadmatch import MatchParams, RoadMatch, match_lines

PARAMS = MatchParams()


def _ids(match: RoadMatch) -> list[str]:
    return [s.segment_id for s in match.segments]


def test_a_road_turning_at_a_t_junction_takes_the_branch() -> None:
    net = t_junction()
    turning = line([(-150, 4), (-3, 4), (4, 3), (4, 150)])
    straight = line([(-150, -5), (150, -5)])
    turned, through = match_lines([turning, straight], None, net, PARAMS)
    assert _ids(turned) == ["west", "north"]
    assert turned.status == "full"
    assert _ids(through) == ["west", "east"]


def test_a_wobbling_centre_line_stays_on_one_carriageway() -> None:
    net = carriageways()
    wobble = [(x, 3.0 if k % 2 else -3.0) for k, x in enumerate(range(-280, 281, 20))]
    for points in (wobble, wobble[::-1]):
        (match,) = match_lines([line(points)], None, net, PARAMS)
        ids = set(_ids(match))
        assert ids in ({"eb1", "eb2", "eb3"}, {"wb1", "wb2", "wb3"}), ids
        assert match.status == "full"


def test_a_known_traffic_direction_picks_the_carriageway() -> None:
    net = carriageways()
    eastwards = line([(-280, 0), (280, 0)])
    westwards = line([(280, 0), (-280, 0)])
    east, west = match_lines([eastwards, westwards], None, net, PARAMS, oneway=[1, 1])
    assert _ids(east) == ["eb1", "eb2", "eb3"]
    assert _ids(west) == ["wb3", "wb2", "wb1"]


def test_a_road_through_a_roundabout_follows_the_ring_in_its_direction() -> None:
    net = roundabout()
    eastwards = line([(-180, 1), (180, 1)])  # straight through the centre
    around = line([(-180, 2), (-22, 2), *[(x, y - 2) for x, y in _ring_south()], (180, -2)])
    for road in (eastwards, around):
        (match,) = match_lines([road], None, net, PARAMS, oneway=[1])
        assert _ids(match) == ["arm_w", "ring_ws", "ring_se", "arm_e"]
    (back,) = match_lines([line([(180, 1), (-180, 1)])], None, net, PARAMS, oneway=[1])
    assert _ids(back) == ["arm_e", "ring_es", "ring_nw", "arm_w"]


def _ring_south() -> list[tuple[float, float]]:
    import math

    return [
        (21 * math.cos(math.radians(a)), 21 * math.sin(math.radians(a)))
        for a in range(180, 361, 15)
    ]


def test_one_match_per_line_in_order() -> None:
    net = t_junction()
    lines = [
        line([(-150, 2), (-20, 2)]),
        line([(5000, 5000), (5100, 5000)]),
        line([(2, 20), (2, 150)]),
    ]
    matches = match_lines(lines, ["a", None, "c"], net, PARAMS)
    assert [_ids(m) for m in matches] == [["west"], [], ["north"]]
    assert [m.status for m in matches] == ["full", "unmatched", "full"]


def test_batches_give_the_same_answers_as_one_call() -> None:
    net = t_junction()
    lines = [line([(-150 + 10 * k, 3), (-20 + 10 * k, 3)]) for k in range(5)]
    lines.append(line([(3, 10), (3, 190)]))
    whole = match_lines(lines, None, net, PARAMS)
    batched = match_lines(lines, None, net, MatchParams(batch_size=2, batch_km=0.2))
    assert [m.status for m in batched] == [m.status for m in whole]
    assert [_ids(m) for m in batched] == [_ids(m) for m in whole]
    for one, other in zip(batched, whole, strict=True):
        assert one.confidence == other.confidence
        for a, b in zip(one.segments, other.segments, strict=True):
            assert (a.from_fraction, a.to_fraction) == pytest.approx(
                (b.from_fraction, b.to_fraction)
            )
            assert a.input_to_m == pytest.approx(b.input_to_m)


def test_a_roads_answer_does_not_depend_on_the_roads_around_it() -> None:
    # Long and short roads, in an order that length-sorted batching reverses.
    net = roundabout()
    lines = [
        line([(-300 + 7 * k, 3.3), (-40 + 3 * k, 2.1), (-35 + 2 * k, 40.7)]) for k in range(4)
    ] + [line([(-150 + 10 * k, -2.9), (-20 + 10 * k, -3.1)]) for k in range(4)]
    together = match_lines(lines, None, net, PARAMS)
    for k, road in enumerate(lines):
        neighbours = [lines[(k + 3) % len(lines)], road, lines[(k + 5) % len(lines)]]
        assert match_lines(neighbours, None, net, PARAMS)[1] == together[k]
        assert match_lines([road], None, net, PARAMS)[0] == together[k]


def test_a_trace_keeps_to_the_carriageway_of_its_travel_direction() -> None:
    net = carriageways()
    # Driven westwards but recorded nearer the eastbound carriageway.
    trace = line([(280, 4), (150, 5), (0, 4), (-150, 5), (-280, 4)])
    (match,) = match_lines([trace], None, net, MatchParams.for_traces())
    assert _ids(match) == ["wb3", "wb2", "wb1"]
    assert MatchParams.for_traces(search_radius_m=50).search_radius_m == 50


def test_traces_with_and_without_a_known_direction_in_one_call() -> None:
    net = carriageways()
    west = line([(280, 4), (-280, 4)])
    east = line([(-280, -4), (280, -4)])
    matches = match_lines(
        [west, east, west], None, net, MatchParams.for_traces(), oneway=[0, 0, -1]
    )
    assert _ids(matches[0]) == ["wb3", "wb2", "wb1"]
    assert _ids(matches[1]) == ["eb1", "eb2", "eb3"]
    # Recorded westwards but declared as flowing against that: the eastbound carriageway.
    assert _ids(matches[2]) == ["eb3", "eb2", "eb1"]


def test_traces_route_around_a_oneway_link_that_roads_may_use() -> None:
    # Between junctions A (0, 0) and B (10, 0): a direct link open only from B to A, and a
    # slightly longer two-way detour. Samples fall at A and beyond B, not on either link.
    net = network(
        {
            "in": [(-90, 0), (0, 0)],
            "direct": [(0, 0), (10, 0)],
            "detour": [(0, 0), (5, 4), (10, 0)],
            "out": [(10, 0), (90, 0)],
        },
        oneway={"direct": -1},
    )
    trace = line([(-90, 0), (90, 0)])
    (as_trace,) = match_lines([trace], None, net, MatchParams.for_traces(spacing_m=15.0))
    (as_road,) = match_lines([trace], None, net, PARAMS)
    assert _ids(as_trace) == ["in", "detour", "out"]
    assert "direct" in _ids(as_road)


def test_a_road_said_to_be_oneway_prefers_a_oneway_segment_beside_a_two_way_street() -> None:
    # A two-way street at y=0 and a oneway slip road along it at y=8; the road is drawn
    # nearer the street, as an offset digitisation puts it.
    net = network(
        {"street": [(-150, 0), (150, 0)], "slip": [(-150, 8), (150, 8)]},
        oneway={"slip": 1},
    )
    road = line([(-140, 3), (140, 3)])
    oneway, two_way, unknown = match_lines(
        [road, road, road], None, net, PARAMS, oneway=[1, 0, None]
    )
    assert _ids(oneway) == ["slip"]
    assert _ids(two_way) == ["street"]
    assert _ids(unknown) == ["street"]


def test_a_road_without_a_name_prefers_an_unnamed_segment_when_names_are_given() -> None:
    net = network(
        {"avenue": [(-150, 0), (150, 0)], "link": [(-150, 8), (150, 8)]},
        names={"avenue": "Main Avenue"},
    )
    road = line([(-140, 3.5), (140, 3.5)])
    unnamed, named = match_lines([road, road], [None, "Main Avenue"], net, PARAMS)
    assert _ids(unnamed) == ["link"]
    assert _ids(named) == ["avenue"]
    (without_names,) = match_lines([road], None, net, PARAMS)
    assert _ids(without_names) == ["avenue"]


def test_a_road_of_unknown_direction_midway_takes_the_carriageway_it_is_digitised_along() -> None:
    # Oneway carriageways are digitised in their travel direction: between two equally
    # near ones, a road of unknown direction is read as running the way it is drawn.
    net = carriageways()
    for y in (-0.3, 0.3):
        eastwards = line([(-280, y), (280, y)])
        westwards = line([(280, y), (-280, y)])
        east, west = match_lines([eastwards, westwards], None, net, PARAMS)
        assert _ids(east) == ["eb1", "eb2", "eb3"]
        assert _ids(west) == ["wb3", "wb2", "wb1"]


def test_a_road_said_to_run_in_a_tunnel_takes_the_tunnel_beneath_the_street() -> None:
    # A street at y=0 and a tunnel under the same ground 7 m to the side; the road is drawn
    # nearer the street.
    net = network(
        {"street": [(-150, 0), (150, 0)], "tunnel": [(-150, 7), (150, 7)]},
        tunnels=["tunnel"],
        layers={"tunnel": -1},
    )
    road = line([(-140, 3), (140, 3)])
    inside, outside, unknown = match_lines(
        [road, road, road], None, net, PARAMS, tunnel=[True, False, None], layer=[-1, 0, None]
    )
    assert _ids(inside) == ["tunnel"]
    assert _ids(outside) == ["street"]
    assert _ids(unknown) == ["street"]
    (anywhere,) = match_lines([road], None, net, MatchParams(level_penalty=0.0), tunnel=[True])
    assert _ids(anywhere) == ["street"]


def test_agreeing_on_a_tunnel_raises_the_confidence_and_disagreeing_lowers_it() -> None:
    net = network({"tunnel": [(-150, 0), (150, 0)]}, tunnels=["tunnel"])
    road = line([(-140, 6), (140, 6)])
    inside, outside, unknown = match_lines(
        [road, road, road], None, net, PARAMS, tunnel=[True, False, None]
    )
    assert inside.confidence > unknown.confidence > outside.confidence


def test_a_road_ending_at_a_roundabout_claims_nothing_of_the_ring() -> None:
    """Its last point lies inside the small ring, nearer a segment beyond the one its arm
    meets; the route there runs round the ring, which the road does not."""
    ring = {f"ring{k}": arc(12, 45 * k, 45 * (k + 1), 4) for k in range(8)}
    arms = {"arm_n": [(0, 12), (0, 200)], "arm_e": [(12, 0), (200, 0)]}
    net = network(ring | arms)
    inwards = [(0.0, 150.0), (10.0, 5.0)]
    for points in (inwards, inwards[::-1]):
        (match,) = match_lines([line(points)], None, net, PARAMS)
        assert _ids(match) == ["arm_n"]
        assert match.status == "full"
