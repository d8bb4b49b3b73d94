"""Linear referencing of decoded paths: which part of which reference segment each road covers.

Every step between consecutive samples of a path covers a stretch of the network: part of one
segment, or the end of one, whole segments in between (rebuilt from the route table) and the
start of the next. Each stretch is paired with the matching range along the input, split in
proportion to route length, and the stretches are merged per (road, segment). At a road's
ends, a route that comes round off the road it ends at (a roundabout's ring, a crossing
street) is claimed only from where it turns onto the road.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from geobatch.engines.roadmatch.candidates import Candidates
from geobatch.engines.roadmatch.geometry import Samples, angle_diff
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
    # (a roundabout passed straight through is still allowed), nor standing still. Standing
    # still is judged by how far the input gets (its chord): a jittery input that doubles
    # back runs more metres than it advances, and is still on the road.
    point = layers.point
    chord = np.hypot(
        samples.x[point[later]] - samples.x[point[later - 1]],
        samples.y[point[later]] - samples.y[point[later - 1]],
    )
    ok = (
        good[later - 1]
        & good[later]
        & np.isfinite(route)
        & (route - gap <= params.max_detour_m + gap)
        & (chord - route <= 0.5 * chord)
        & (gap <= 2 * params.spacing_m + 1e-6)
    )
    later, a, b, route, gap, excess = (v[ok] for v in (later, a, b, route, gap, excess))
    step_excess = np.full(n_layers, np.nan)
    step_excess[later] = excess
    layer_ok = np.zeros(n_layers, dtype=bool)
    layer_ok[later] = True
    layer_ok[later - 1] = True
    # A step both of whose samples lie far from their positions on the path keeps the path
    # together and counts in the confidence, but that stretch of the input is not on the
    # reference (a road redrawn or built beside it): it is neither covered nor reported.
    # A short such stretch between two near ones (a roundabout passed straight through) is
    # part of the road.
    off = params.off_reference_share * params.search_radius_m
    near = _near_or_between(
        (c.distance[a] <= off) | (c.distance[b] <= off),
        line[later],
        chain[later - 1],
        chain[later],
        3 * params.spacing_m,
    )
    later, a, b, route, gap = (v[near] for v in (later, a, b, route, gap))
    matched_m = np.bincount(line[later], weights=gap, minlength=n_lines)

    c_a, c_b = chain[later - 1], chain[later]
    seg_a, seg_b = c.segment[a], c.segment[b]
    dir_a, dir_b = c.direction[a], c.direction[b]
    off_a, off_b = c.offset[a], c.offset[b]
    len_a, len_b = network.length_m[seg_a], network.length_m[seg_b]
    same = seg_a == seg_b

    parts: list[tuple[np.ndarray, ...]] = []
    # Steps within one segment.
    s = same
    parts.append(
        (
            line[later[s]],
            seg_a[s],
            np.minimum(off_a[s], off_b[s]),
            np.maximum(off_a[s], off_b[s]),
            c_a[s],
            c_b[s],
        )
    )
    # Steps across junctions: leave a, whole segments between, enter b.
    d = ~same
    total = np.maximum(route[d], 1e-9)
    scale = gap[d] / total
    exit_m = np.where(dir_a[d] > 0, len_a[d] - off_a[d], off_a[d])
    entry_m = np.where(dir_b[d] > 0, off_b[d], len_b[d] - off_b[d])
    parts.append(
        (
            line[later[d]],
            seg_a[d],
            np.where(dir_a[d] > 0, off_a[d], 0.0),
            np.where(dir_a[d] > 0, len_a[d], off_a[d]),
            c_a[d],
            c_a[d] + exit_m * scale,
        )
    )
    parts.append(
        (
            line[later[d]],
            seg_b[d],
            np.where(dir_b[d] > 0, 0.0, off_b[d]),
            np.where(dir_b[d] > 0, off_b[d], len_b[d]),
            c_b[d] - entry_m * scale,
            c_b[d],
        )
    )
    between, pair = _between(network, routes, c, a[d], b[d], line[later[d]], c_a[d], exit_m, scale)
    parts.append(between)
    # Where an end sample is on the road the input ends at, only the inner sample's stretch.
    hop_step = np.flatnonzero(d)[pair]
    off_start, off_end = _ends_off_road(
        samples, layers, c, network, later, a, b, hop_step, between[1], params
    )
    if off_start.any() or off_end.any():
        # Steps within one segment are never dropped: only the three junction parts are cut.
        wanted = (~off_start[d], ~off_end[d], ~(off_start | off_end)[hop_step])
        parts[1:] = [
            tuple(column[keep] for column in part)
            for part, keep in zip(parts[1:], wanted, strict=True)
        ]

    line_, segment, lo, hi, input_lo, input_hi = (
        np.concatenate(column) for column in zip(*parts, strict=True)
    )
    return _merge(
        (line_, segment, lo, hi, input_lo, input_hi),
        samples.lengths,
        matched_m,
        layer_ok,
        step_excess,
        network,
        params,
    )


def _near_or_between(
    near: np.ndarray, line: np.ndarray, start: np.ndarray, stop: np.ndarray, longest: float
) -> np.ndarray:
    """``near``, and also True on runs of far steps no longer than ``longest`` metres of the
    input with a near step of the same line on either side."""
    out = near.copy()
    far = np.flatnonzero(~near)
    if len(far) == 0:
        return out
    head = np.r_[True, (np.diff(far) != 1) | (line[far[1:]] != line[far[:-1]])]
    first, last = far[head], far[np.r_[head[1:], True]]
    before, after = first - 1, last + 1
    inside = (before >= 0) & (after < len(near))
    before, after = np.clip(before, 0, len(near) - 1), np.clip(after, 0, len(near) - 1)
    short = (
        inside
        & near[before]
        & near[after]
        & (line[before] == line[first])
        & (line[after] == line[first])
        & (stop[last] - start[first] <= longest)
    )
    mark = np.zeros(len(near) + 1, dtype=np.int64)
    np.add.at(mark, first[short], 1)
    np.add.at(mark, last[short] + 1, -1)
    return out | (np.cumsum(mark)[:-1] > 0)


def _between(
    network: RoadNetwork,
    routes: RouteTable,
    c: Candidates,
    a: np.ndarray,
    b: np.ndarray,
    line: np.ndarray,
    start_chainage: np.ndarray,
    exit_m: np.ndarray,
    scale: np.ndarray,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Whole segments on the route from a's exit junction to b's entry junction, and the
    index (among ``a``) of the step each lies on, in route order."""
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
    lo_in = start_chainage[pair] + (exit_m[pair] + before) * scale[pair]
    columns = (line[pair], seg, np.zeros(len(seg)), length, lo_in, lo_in + length * scale[pair])
    return columns, pair


def _ends_off_road(
    samples: Samples,
    layers: Layers,
    c: Candidates,
    network: RoadNetwork,
    later: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    hop_step: np.ndarray,
    hop_segment: np.ndarray,
    params: MatchParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Per step (``a`` to ``b`` into layer ``later``), whether it is a road's first (last)
    step from (to) an end sample put on the road the input ends at, not on the road itself.

    A sample at a road's end has one neighbour to hold it, and a roundabout's ring or a
    crossing street passes within metres of it. It is taken as such where the input there
    runs along the inner sample's segment, the end sample's heads off the input, and the
    route turns onto (off) the inner sample's segment at a junction: the input goes straight
    on where the route turns. ``hop_segment`` are the whole segments between samples, in
    route order, on steps ``hop_step``.
    """
    point_a, point_b = layers.point[later - 1], layers.point[later]
    line = samples.line[point_b]
    head = np.r_[True, line[1:] != line[:-1]]
    tail = np.r_[line[1:] != line[:-1], True]
    start = np.zeros(len(later), dtype=bool)
    end = np.zeros(len(later), dtype=bool)
    # Only a first or last step across a junction (not a road's only step) can be one.
    k = np.flatnonzero((head ^ tail) & (c.segment[a] != c.segment[b]))
    if not len(k):
        return start, end
    a, b, point_a, point_b = a[k], b[k], point_a[k], point_b[k]
    seg_a, seg_b = c.segment[a], c.segment[b]
    forward_a, forward_b = c.direction[a] > 0, c.direction[b] > 0
    exit_node = np.where(forward_a, network.to_node[seg_a], network.from_node[seg_a])
    entry_node = np.where(forward_b, network.from_node[seg_b], network.to_node[seg_b])
    # The segment the route comes onto b's from (the last whole segment between, else a's),
    # and the one it goes off a's into (the first between, else b's).
    before_b, before_b_forward = seg_a, forward_a
    after_a, after_a_forward = seg_b, forward_b
    if len(hop_step):
        first = np.searchsorted(hop_step, k, side="left")
        stop = np.searchsorted(hop_step, k, side="right")
        has = stop > first
        last_hop = hop_segment[np.maximum(stop - 1, 0)]
        first_hop = hop_segment[np.minimum(first, len(hop_step) - 1)]
        before_b = np.where(has, last_hop, seg_a)
        before_b_forward = np.where(has, network.to_node[last_hop] == entry_node, forward_a)
        after_a = np.where(has, first_hop, seg_b)
        after_a_forward = np.where(has, network.from_node[first_hop] == exit_node, forward_b)
    onto_b = angle_diff(
        _heading(network, before_b, before_b_forward, leaving=True),
        _heading(network, seg_b, forward_b, leaving=False),
    )
    off_a = angle_diff(
        _heading(network, seg_a, forward_a, leaving=True),
        _heading(network, after_a, after_a_forward, leaving=False),
    )
    limit = np.radians(params.end_turn_deg)
    corner = np.radians(params.end_corner_deg)
    start[k] = (
        head[k]
        & (samples.turn(point_a, c.heading[a]) > limit)
        & (samples.turn(point_a, c.heading[b]) <= limit)
        & (onto_b > corner)
    )
    end[k] = (
        tail[k]
        & (samples.turn(point_b, c.heading[b]) > limit)
        & (samples.turn(point_b, c.heading[a]) <= limit)
        & (off_a > corner)
    )
    return start, end


def _heading(
    network: RoadNetwork, segment: np.ndarray, forward: np.ndarray, *, leaving: bool
) -> np.ndarray:
    """Travel heading where a route enters (or leaves) ``segment``, travelled ``forward``."""
    first, stop = network.piece_range(segment)
    piece = np.where(forward == leaving, stop - 1, first)
    heading = np.arctan2(network.piece_dy[piece], network.piece_dx[piece])
    return np.where(forward, heading, heading + np.pi)  # type: ignore[no-any-return]


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
