"""The hidden Markov model of matching: layers of candidate states, emission and transition costs.

Following Newson & Krumm (2009): a state is a position on a reference segment (here with a
travel direction), its emission cost grows with the squared distance from the sample and with
the squared heading difference, and the transition cost between consecutive samples grows
linearly with |network route distance - distance along the input|. Route distances are exact
within a segment and come from a ``RouteTable`` across junctions (undirected for road
datasets, following oneways for GPS traces); turning back on a segment is not a transition,
which is what keeps paths from zig-zagging between parallel carriageways or around a
roundabout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geobatch.engines.roadmatch.candidates import Candidates
from geobatch.engines.roadmatch.geometry import Samples, angle_diff
from geobatch.engines.roadmatch.network import RoadNetwork
from geobatch.engines.roadmatch.routes import RouteTable


@dataclass(frozen=True, kw_only=True)
class ModelParams:
    """Scales of the costs (metres and radians)."""

    sigma_m: float
    sigma_heading: float
    beta_m: float
    oneway_penalty: float
    oneway_kind_penalty: float
    name_penalty: float
    backtrack_tolerance_m: float


@dataclass(frozen=True, kw_only=True)
class Layers:
    """Sample points with at least one candidate, in input order, and their states."""

    point: np.ndarray  # int64 sample index of each layer
    state: np.ndarray  # (n_layers, S) int64 candidate index, -1 for padding
    count: np.ndarray  # int64 states per layer
    first_of_line: np.ndarray  # int64 first layer of each input line (n_lines + 1 offsets)


def build_layers(samples: Samples, candidates: Candidates, n_states: int) -> Layers:
    """Group the (point-sorted) candidates into padded layers."""
    n_lines = len(samples.lengths)
    if len(candidates) == 0:
        return Layers(
            point=np.zeros(0, dtype=np.int64),
            state=np.zeros((0, n_states), dtype=np.int64),
            count=np.zeros(0, dtype=np.int64),
            first_of_line=np.zeros(n_lines + 1, dtype=np.int64),
        )
    # Candidates are sorted by point: each point's are one run.
    head = np.ones(len(candidates), dtype=bool)
    head[1:] = candidates.point[1:] != candidates.point[:-1]
    first = np.flatnonzero(head)
    point = candidates.point[first]
    count = np.diff(np.append(first, len(candidates)))
    rank = np.arange(len(candidates)) - np.repeat(first, count)
    layer_of = np.repeat(np.arange(len(point)), count)
    state = np.full((len(point), n_states), -1, dtype=np.int64)
    state[layer_of, rank] = np.arange(len(candidates))
    line = samples.line[point]
    first_of_line = np.searchsorted(line, np.arange(n_lines + 1)).astype(np.int64)
    return Layers(point=point, state=state, count=count, first_of_line=first_of_line)


def emission_costs(
    samples: Samples,
    candidates: Candidates,
    layers: Layers,
    network: RoadNetwork,
    params: ModelParams,
    directions: tuple[int, ...],
    name_mismatch: np.ndarray | None = None,
    kind_differs: np.ndarray | None = None,
    reversed_cost: np.ndarray | None = None,
    level_cost: np.ndarray | None = None,
) -> np.ndarray:
    """(len(directions), n_layers, S): one variant per assumed traffic direction of the input.

    Direction +1 assumes traffic flows the way the input is digitised, -1 the other way; a
    state travelling against a oneway segment's traffic costs ``oneway_penalty``, and one on
    a segment whose name differs from the road's up to ``name_penalty`` (``name_mismatch``
    is 0 for the same name, 1 for an unrelated one); a candidate where ``kind_differs`` (a
    road known to be oneway on a two-way segment, or the reverse) costs ``oneway_kind_penalty``,
    ``reversed_cost`` is added where the input is assumed to run against its traffic, and
    ``level_cost`` per candidate (a segment at another level than the road says).
    """
    c = candidates
    base = 0.5 * (c.distance / params.sigma_m) ** 2
    turn = angle_diff(c.heading, samples.heading[c.point])
    base = base + 0.5 * (turn / params.sigma_heading) ** 2
    if name_mismatch is not None:
        base = base + params.name_penalty * name_mismatch
    if kind_differs is not None:
        base = base + np.where(kind_differs, params.oneway_kind_penalty, 0.0)
    if level_cost is not None:
        base = base + level_cost
    oneway = network.oneway[c.segment]
    out = np.full((len(directions), *layers.state.shape), np.inf)
    valid = layers.state >= 0
    for k, sense in enumerate(directions):
        against = (oneway != 0) & (c.direction * sense != oneway)
        cost = base + np.where(against, params.oneway_penalty, 0.0)
        if sense < 0 and reversed_cost is not None:
            cost = cost + reversed_cost
        out[k][valid] = cost[layers.state[valid]]
    return out


def route_lengths(
    candidates: Candidates,
    network: RoadNetwork,
    routes: RouteTable,
    a: np.ndarray,
    b: np.ndarray,
    tol: float,
) -> np.ndarray:
    """Network metres from candidate ``a`` to candidate ``b`` travelling in their directions."""
    c = candidates
    same = c.segment[a] == c.segment[b]
    # Within one segment (a quarter of the pairs) the metres are the offsets' difference.
    inside = np.flatnonzero(same)
    a_in, b_in = a[inside], b[inside]
    advance = (c.offset[b_in] - c.offset[a_in]) * c.direction[a_in]
    along = (c.direction[a_in] == c.direction[b_in]) & (advance >= -tol)
    out = np.full(len(a), np.inf)
    out[inside] = np.where(along, np.maximum(advance, 0.0), np.inf)
    # Routes are looked up only between different segments.
    cross = np.flatnonzero(~same)
    a, b = a[cross], b[cross]
    # Junctions and remaining metres per candidate: once per candidate where pairs outnumber
    # candidates (every pair of consecutive layers), else for the pairs' own candidates.
    if len(cross) >= len(c):
        exit_node, entry_node, exit_m, entry_m = _ends(c, network, np.arange(len(c)))
        a_exit, a_exit_m, b_entry, b_entry_m = exit_node[a], exit_m[a], entry_node[b], entry_m[b]
    else:
        a_exit, _, a_exit_m, _ = _ends(c, network, a)
        _, b_entry, _, b_entry_m = _ends(c, network, b)
    out[cross] = a_exit_m + routes.distance(a_exit, b_entry) + b_entry_m
    return out


def _ends(
    c: Candidates, network: RoadNetwork, which: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of candidates ``which``: the junction each leaves by and enters from, travelling its
    direction, and the metres from it to them."""
    segment, offset = c.segment[which], c.offset[which]
    forward = c.direction[which] > 0
    length = network.length_m[segment]
    exit_node = np.where(forward, network.to_node[segment], network.from_node[segment])
    entry_node = np.where(forward, network.from_node[segment], network.to_node[segment])
    exit_m = np.where(forward, length - offset, offset)
    return exit_node, entry_node, exit_m, length - exit_m


def transition_costs(
    samples: Samples,
    candidates: Candidates,
    layers: Layers,
    network: RoadNetwork,
    routes: RouteTable,
    params: ModelParams,
) -> np.ndarray:
    """(n_layers, S, S): entry [l, j, i] the cost into state j of layer l from state i of the
    previous layer of the same line (previous states last: ``decode`` reduces over them)."""
    n_layers, n_states = layers.state.shape
    out = np.full((n_layers, n_states, n_states), np.inf)
    if n_layers < 2:
        return out
    line = samples.line[layers.point]
    later = np.flatnonzero(line[1:] == line[:-1]) + 1
    prev_count = layers.count[later - 1]
    pairs = prev_count * layers.count[later]
    layer = np.repeat(later, pairs)
    within = np.arange(int(pairs.sum())) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    i, j = np.divmod(within, np.repeat(layers.count[later], pairs))
    # Flat indices: numpy's multi-array indexing costs more than the arithmetic.
    b_at = layer * n_states + j
    a = layers.state.reshape(-1)[b_at - (n_states + j) + i]
    b = layers.state.reshape(-1)[b_at]
    route = route_lengths(candidates, network, routes, a, b, params.backtrack_tolerance_m)
    # The input's metres between consecutive layers, once per layer rather than per pair.
    chainage = samples.chainage[layers.point]
    straight = chainage[later] - chainage[later - 1]
    out.reshape(-1)[b_at * n_states + i] = (
        np.abs(route - np.repeat(straight, pairs)) / params.beta_m
    )
    return out
