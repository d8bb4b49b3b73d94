"""The road network: junctions joined from coordinates, bounded route table, path rebuild."""

from __future__ import annotations

import math

import numpy as np
import pytest
from toy_networks import network

from geobatch.engines.roadmatch.routes import RouteTable
from geobatch.reference.indexes import routes as routes_module


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 4 x 4 grid of 100 m blocks: nodes r*4+c, edges right and up."""
    frm, to = [], []
    for r in range(4):
        for c in range(4):
            if c < 3:
                frm.append(r * 4 + c)
                to.append(r * 4 + c + 1)
            if r < 3:
                frm.append(r * 4 + c)
                to.append((r + 1) * 4 + c)
    return np.array(frm), np.array(to), np.full(len(frm), 100.0)


def test_route_table_gives_shortest_distances_within_the_limit() -> None:
    frm, to, length = grid()
    table = RouteTable.build(16, frm, to, length, limit_m=350.0)
    origin = np.array([0, 0, 0, 5, 15])
    destination = np.array([0, 5, 15, 0, 12])
    got = table.distance(origin, destination)
    assert got[:2].tolist() == [0.0, 200.0]
    assert math.isinf(got[2])  # 600 m away, beyond the limit
    assert got[3] == 200.0  # undirected
    assert got[4] == 300.0


def test_route_look_ups_agree_on_small_and_large_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    frm, to, length = grid()
    table = RouteTable.build(16, frm, to, length, limit_m=350.0)
    rng = np.random.default_rng(7)
    origin, destination = rng.integers(0, 16, 500), rng.integers(0, 16, 500)
    small = table.distance(origin, destination)  # one search over every key
    monkeypatch.setattr(routes_module, "SMALL_TABLE", 0)
    large = table.distance(origin, destination)  # searches within each origin's row
    assert np.array_equal(small, large)
    assert np.isfinite(small).any()
    assert np.isinf(small).any()


def test_route_table_rebuilds_the_segments_of_a_path() -> None:
    frm, to, length = grid()
    table = RouteTable.build(16, frm, to, length, limit_m=1000.0)
    pair, seg = table.path_segments(np.array([0, 3]), np.array([10, 3]), frm, to)
    hops = seg[pair == 0]
    assert len(hops) == 4
    assert length[hops].sum() == table.distance(np.array([0]), np.array([10]))[0]
    nodes = set(frm[hops]) | set(to[hops])
    assert {0, 10} <= nodes
    assert not (pair == 1).any()  # origin == destination: no segment


def test_from_lines_joins_segments_at_shared_end_points() -> None:
    net = network({"a": [(0, 0), (100, 0)], "b": [(100, 0), (100, 50)], "c": [(300, 0), (400, 0)]})
    assert net.to_node[0] == net.from_node[1]
    assert net.from_node[2] not in (net.from_node[0], net.to_node[0], net.to_node[1])
    assert net.length_m == pytest.approx([100.0, 50.0, 100.0], rel=0.01)
    far = net.routes.distance(net.from_node[:1], net.from_node[2:])
    assert math.isinf(far[0])


def test_directed_route_table_follows_oneway_segments() -> None:
    # 0 -> 1 oneway along, 1 -> 2 oneway against its digitisation (so 2 -> 1), 2 - 0 two-way.
    frm, to = np.array([0, 1, 2]), np.array([1, 2, 0])
    length = np.array([100.0, 100.0, 150.0])
    table = RouteTable.build(3, frm, to, length, 1000.0, oneway=np.array([1, -1, 0]))
    got = table.distance(np.array([0, 1, 2, 1]), np.array([1, 0, 1, 2]))
    assert got[0] == 100.0
    assert math.isinf(got[1])  # nothing leads from 1 back to 0
    assert got[2] == 100.0
    assert math.isinf(got[3])
