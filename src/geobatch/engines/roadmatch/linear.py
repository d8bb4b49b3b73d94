"""Linear referencing of decoded paths: which part of which reference segment each road covers.

Every step between consecutive samples of a path covers a stretch of the network: part of one
segment, or the end of one, whole segments in between (rebuilt from the route table) and the
start of the next. Each stretch is paired with the matching range along the input, split in
proportion to route length, and the stretches are merged per (road, segment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from geobatch.engines.roadmatch.candidates import Candidates
from geobatch.engines.roadmatch.geometry import Samples
from geobatch.engines.roadmatch.hmm import Layers, route_lengths
from geobatch.engines.roadmatch.network import RoadNetwork
from geobatch.engines.roadmatch.routes import RouteTable

if TYPE_CHECKING:
    from geobatch.engines.roadmatch.match import MatchParams


@dataclass(frozen=True, kw_only=True)
class PathPieces:
    """Covered segment ranges per road (merged), and which samples and steps matched."""

    line: np.ndarray  # int64, sorted by line then input_from
    segment: np.ndarray  # int64
    lo: np.ndarray  # metres along the segment (its direction)
    hi: np.ndarray
    input_lo: np.ndarray  # metres along the input road
    input_hi: np.ndarray
    matched_m: np.ndarray  # per input line, metres of its length on the matched path
    layer_ok: np.ndarray  # per layer, True where its sample lies on the matched path
    step_excess: np.ndarray  # per layer, |route - input| of the matched step into it, else nan


def trace_paths(
    samples: Samples,
    candidates: Candidates,
    layers: Layers,
    chosen: np.ndarray,
    restart: np.ndarray,
    network: RoadNetwork,
    routes: RouteTable,
    params: MatchParams,
) -> PathPieces:
    """Pieces of the chosen path (candidate ``chosen[l]`` at layer l) of every line."""
    n_lines = len(samples.lengths)
    n_layers = len(layers.point)
    c = candidates
    line = samples.line[layers.point]
    chain = samples.chainage[layers.point]
    turn = samples.turn(layers.point, c.heading[chosen])
    good = turn <= np.radians(params.max_heading_deg)

    later = np.flatnonzero((line[1:] == line[:-1]) & ~restart[1:]) + 1
    a, b = chosen[later - 1], chosen[later]
    route = route_lengths(c, network, routes, a, b, params.spacing_m / 3)
    gap = chain[later] - chain[later - 1]
    excess = np.abs(route - gap)
    # A step is on the path when the route roughly keeps pace with the input: not far longer
    # (a roundabout passed straight through is still allowed), nor standing still.
    ok = (
        good[later - 1]
        & good[later]
        & np.isfinite(route)
        & (route - gap <= params.max_detour_m + gap)
        & (gap - route <= 0.5 * gap)
        & (gap <= 2 * params.spacing_m + 1e-6)
    )
    later, a, b, route, gap, excess = (v[ok] for v in (later, a, b, route, gap, excess))
    step_excess = np.full(n_layers, np.nan)
    step_excess[later] = excess
    layer_ok = np.zeros(n_layers, dtype=bool)
    layer_ok[later] = True
    layer_ok[later - 1] = True
    matched_m = np.bincount(line[later], weights=gap, minlength=n_lines)

    seg_a, seg_b = c.segment[a], c.segment[b]
    off_a, off_b = c.offset[a], c.offset[b]
    len_a, len_b = network.length_m[seg_a], network.length_m[seg_b]
    forward_a, forward_b = c.direction[a] > 0, c.direction[b] > 0
    exit_m = np.where(forward_a, len_a - off_a, off_a)
    entry_m = np.where(forward_b, off_b, len_b - off_b)
    s, d = np.flatnonzero(seg_a == seg_b), np.flatnonzero(seg_a != seg_b)
    # Every stretch of a step as (step, segment, its offsets where the route enters and leaves
    # it, and those places in metres along the route): within one segment; across junctions,
    # the end of a, whole segments between and the start of b.
    parts = [
        (s, seg_a[s], off_a[s], off_b[s], np.zeros(len(s)), route[s]),
        (d, seg_a[d], off_a[d], np.where(forward_a[d], len_a[d], 0.0), np.zeros(len(d)), exit_m[d]),
        (
            d,
            seg_b[d],
            np.where(forward_b[d], 0.0, len_b[d]),
            off_b[d],
            route[d] - entry_m[d],
            route[d],
        ),
        _between(network, routes, c, a[d], b[d], d, exit_m[d]),
    ]
    stretches = tuple(np.concatenate(column) for column in zip(*parts, strict=True))
    between = np.arange(len(stretches[0])) >= len(s) + 2 * len(d)
    loose_start, loose_end = _loose_ends(
        line[later], seg_a != seg_b, turn[later - 1], turn[later], params
    )
    return _merge(
        _claim(
            stretches, between, chain[later - 1], line[later], route, gap, loose_start, loose_end
        ),
        samples.lengths,
        matched_m,
        layer_ok,
        step_excess,
        network,
        params,
    )


def _between(
    network: RoadNetwork,
    routes: RouteTable,
    c: Candidates,
    a: np.ndarray,
    b: np.ndarray,
    step: np.ndarray,
    exit_m: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Whole segments on the route from a's exit junction to b's entry junction, as stretches
    of ``step``, each travelled from the junction it shares with the one before."""
    seg_a, seg_b = c.segment[a], c.segment[b]
    exit_node = np.where(c.direction[a] > 0, network.to_node[seg_a], network.from_node[seg_a])
    entry_node = np.where(c.direction[b] > 0, network.from_node[seg_b], network.to_node[seg_b])
    pair, seg = routes.path_segments(exit_node, entry_node, network.from_node, network.to_node)
    # path_segments lists each route from its end; order hops from the start instead.
    order = np.lexsort((-np.arange(len(pair)), pair))
    pair, seg = pair[order], seg[order]
    length = network.length_m[seg]
    run_first = np.searchsorted(pair, pair, side="left")
    cum = np.cumsum(length)
    before = cum - length - (cum[run_first] - length[run_first])
    # A shortest route never runs back over the two junctions of the hop before, so a hop
    # leaves from its from-node exactly when that node is one of the previous hop's.
    start = network.from_node[seg]
    prev = np.maximum(np.arange(len(seg)) - 1, 0)
    forward = np.where(
        run_first == np.arange(len(seg)),
        start == exit_node[pair],
        (start == network.from_node[seg[prev]]) | (start == network.to_node[seg[prev]]),
    )
    r0 = exit_m[pair] + before
    return (
        step[pair],
        seg,
        np.where(forward, 0.0, length),
        np.where(forward, length, 0.0),
        r0,
        r0 + length,
    )


def _loose_ends(
    step_line: np.ndarray,
    crosses: np.ndarray,
    turn_before: np.ndarray,
    turn_after: np.ndarray,
    params: MatchParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Per step, whether it is a road's first (last) step, crossing a junction from (to) an
    end sample put on a segment heading more than ``end_turn_deg`` off the road."""
    head = np.r_[True, step_line[1:] != step_line[:-1]]
    tail = np.r_[step_line[1:] != step_line[:-1], True]
    limit = np.radians(params.end_turn_deg)
    return (
        head & ~tail & crosses & (turn_before > limit),
        tail & ~head & crosses & (turn_after > limit),
    )


def _claim(
    stretches: tuple[np.ndarray, ...],
    between: np.ndarray,
    start_chainage: np.ndarray,
    step_line: np.ndarray,
    route: np.ndarray,
    gap: np.ndarray,
    loose_start: np.ndarray,
    loose_end: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """(line, segment, lo, hi, input_lo, input_hi) of the stretches each step claims.

    A step claims its whole route, paired with its stretch of the input in proportion to route
    length, except at a loose end of a road: a sample at a road's end has one neighbour to
    hold it, and one on a segment heading off the road is on the road it ends at (a
    roundabout's ring, a crossing street), from where the route runs round onto the road.
    Such a step claims no whole segment between its two samples' own, and of the rest only
    the ``gap`` metres of route (the input's length) next to the sample inside the road.
    """
    step, segment, enter, leave, r0, r1 = stretches
    spare = np.maximum(route - gap, 0.0)
    w0 = np.where(loose_start, spare, 0.0)[step]
    w1 = (route - np.where(loose_end, spare, 0.0))[step]
    loose = (loose_start | loose_end)[step]
    lo_r = np.where(loose, np.clip(r0, w0, w1), r0)
    hi_r = np.where(loose, np.clip(r1, w0, w1), r1)
    span = r1 - r0
    t0 = np.divide(lo_r - r0, span, out=np.zeros_like(span), where=span > 0)
    t1 = np.divide(hi_r - r0, span, out=np.ones_like(span), where=span > 0)
    at0 = enter + t0 * (leave - enter)
    at1 = enter + t1 * (leave - enter)
    width = w1 - w0
    u0 = np.divide(lo_r - w0, width, out=np.zeros_like(width), where=width > 0)
    u1 = np.divide(hi_r - w0, width, out=np.ones_like(width), where=width > 0)
    keep = ~loose | ((hi_r > lo_r) & ~between)
    begin, metres = start_chainage[step], gap[step]
    return tuple(
        v[keep]
        for v in (
            step_line[step],
            segment,
            np.minimum(at0, at1),
            np.maximum(at0, at1),
            begin + u0 * metres,
            begin + u1 * metres,
        )
    )


def _merge(
    columns: tuple[np.ndarray, ...],
    road_length: np.ndarray,
    matched_m: np.ndarray,
    layer_ok: np.ndarray,
    step_excess: np.ndarray,
    network: RoadNetwork,
    params: MatchParams,
) -> PathPieces:
    """One range per (line, segment): the hull of its pieces, ends snapped, slivers dropped."""
    line, segment, lo, hi, input_lo, input_hi = columns
    order = np.lexsort((segment, line))
    line, segment, lo, hi, input_lo, input_hi = (
        v[order] for v in (line, segment, lo, hi, input_lo, input_hi)
    )
    if len(line):
        head = np.ones(len(line), dtype=bool)
        head[1:] = (line[1:] != line[:-1]) | (segment[1:] != segment[:-1])
        starts = np.flatnonzero(head)
        line, segment = line[starts], segment[starts]
        lo = np.minimum.reduceat(lo, starts)
        hi = np.maximum.reduceat(hi, starts)
        input_lo = np.minimum.reduceat(input_lo, starts)
        input_hi = np.maximum.reduceat(input_hi, starts)
    length = network.length_m[segment]
    # Slivers at a road's ends (noise past a junction) are dropped, judged before snapping so
    # that a sliver of a short segment is not stretched to all of it; on a short road, only
    # those short relative to it. Segments crossed whole are always kept.
    smallest = np.minimum(params.min_piece_m, 0.25 * road_length[line])
    keep = (hi - lo >= smallest) | ((lo <= 1e-6) & (hi >= length - 1e-6))
    line, segment, lo, hi, input_lo, input_hi, length = (
        v[keep] for v in (line, segment, lo, hi, input_lo, input_hi, length)
    )
    lo = np.where(lo <= params.end_snap_m, 0.0, lo)
    hi = np.where(length - hi <= params.end_snap_m, length, hi)
    order = np.lexsort((input_lo, line))
    return PathPieces(
        line=line[order],
        segment=segment[order],
        lo=lo[order],
        hi=hi[order],
        input_lo=input_lo[order],
        input_hi=input_hi[order],
        matched_m=matched_m,
        layer_ok=layer_ok,
        step_excess=step_excess,
    )
