"""Confidence 0-100 of each match, and the per-road outcome.

A weighted mean of four scores in 0..1, each a Gaussian of a deviation: mean distance of the
samples to the path, shape (the larger of the discrete Frechet distance between the matched
samples and their positions on the path, and the largest route detour between samples),
mean heading difference, and, where both sides have names, name similarity. A road offset
by a few metres keeps a high confidence; a parallel street a block away does not.

Stretches (and whole roads) below ``confidence_threshold`` are dropped (a road only a few
sampling steps long needs a little more), and a road's status follows the share of its length
that the remaining stretches cover, so that a road the reference lacks is reported unmatched
rather than as its nearest neighbour.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import shapely

from geobatch.engines.roadmatch.candidates import Candidates
from geobatch.engines.roadmatch.geometry import Samples, angle_diff
from geobatch.engines.roadmatch.hmm import Layers
from geobatch.engines.roadmatch.levels import Levels
from geobatch.engines.roadmatch.linear import PathPieces
from geobatch.engines.roadmatch.matches import FULL, PARTIAL, UNMATCHED, Matches
from geobatch.engines.roadmatch.names import NameScores
from geobatch.engines.roadmatch.network import RoadNetwork
from geobatch.engines.roadmatch.shapes import covered_lines

if TYPE_CHECKING:
    from geobatch.engines.roadmatch.match import MatchParams

DISTANCE_SCALE_M = 12.0
SHAPE_SCALE_M = 20.0
HEADING_SCALE = math.radians(25.0)
WEIGHTS = {"distance": 0.35, "shape": 0.35, "heading": 0.15, "name": 0.15, "level": 0.15}


def combine(
    distance_m: np.ndarray,
    shape_m: np.ndarray,
    heading: np.ndarray,
    name: np.ndarray,
    level: np.ndarray | None = None,
) -> np.ndarray:
    """Confidence 0-100 from mean distance, shape deviation (metres), heading (radians),
    name similarity (0-100, nan where either side has no name) and level agreement (0-1, nan
    where the input does not say or both run at ground level: ``Levels.agreement``)."""
    parts = {
        "distance": np.exp(-0.5 * (distance_m / DISTANCE_SCALE_M) ** 2),
        "shape": np.exp(-0.5 * (shape_m / SHAPE_SCALE_M) ** 2),
        "heading": np.exp(-0.5 * (heading / HEADING_SCALE) ** 2),
    }
    total = sum(WEIGHTS[k] * v for k, v in parts.items())
    geometric = WEIGHTS["distance"] + WEIGHTS["shape"] + WEIGHTS["heading"]
    weight = np.full(np.shape(distance_m), geometric)
    has_name = ~np.isnan(name)
    total = total + np.where(has_name, WEIGHTS["name"] * np.nan_to_num(name) / 100.0, 0.0)
    weight = weight + np.where(has_name, WEIGHTS["name"], 0.0)
    if level is not None:
        has_level = ~np.isnan(level)
        total = total + np.where(has_level, WEIGHTS["level"] * np.nan_to_num(level), 0.0)
        weight = weight + np.where(has_level, WEIGHTS["level"], 0.0)
    return 100.0 * total / weight  # type: ignore[no-any-return]


def score_roads(
    samples: Samples,
    candidates: Candidates,
    layers: Layers,
    chosen: np.ndarray,
    pieces: PathPieces,
    names: NameScores | None,
    network: RoadNetwork,
    params: MatchParams,
    levels: Levels | None = None,
) -> Matches:
    """Each line's status, ratio and confidence, and its kept stretches, from its merged
    pieces and the samples on its path."""

    n_lines = len(samples.lengths)
    ok = pieces.layer_ok
    layer_line = samples.line[layers.point][ok]
    cand = chosen[ok]
    dist = candidates.distance[cand]
    turn = angle_diff(candidates.heading[cand], samples.heading[layers.point[ok]])
    n_ok = np.bincount(layer_line, minlength=n_lines)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_dist = np.bincount(layer_line, weights=dist, minlength=n_lines) / n_ok
        mean_turn = np.bincount(layer_line, weights=turn, minlength=n_lines) / n_ok
    shape = _shape(samples, candidates, layers, chosen, pieces, n_lines)

    # Per (line, segment) distance and heading of the samples on that segment.
    key = layer_line * len(network) + candidates.segment[cand]
    # Samples come in runs along one segment: only the heads of runs are sorted.
    head = np.ones(len(key), dtype=bool)
    head[1:] = key[1:] != key[:-1]
    ukey, run_key = np.unique(key[head], return_inverse=True)
    inverse = run_key.reshape(-1)[np.cumsum(head) - 1]
    ucount = np.bincount(inverse, minlength=len(ukey))
    seg_dist = np.bincount(inverse, weights=dist) / np.maximum(ucount, 1)
    seg_turn = np.bincount(inverse, weights=turn) / np.maximum(ucount, 1)
    # Segments crossed between samples (no sample of their own) take the road's values.
    piece_key = pieces.line * len(network) + pieces.segment
    p_dist = _lookup(ukey, seg_dist, piece_key, mean_dist[pieces.line])
    p_turn = _lookup(ukey, seg_turn, piece_key, mean_turn[pieces.line])

    p_name = np.full(len(pieces.line), np.nan)
    if names is not None:
        p_name = names.similarities(pieces.line, pieces.segment)
    p_level = np.full(len(pieces.line), np.nan)
    if levels is not None:
        p_level = levels.agreement(pieces.line, pieces.segment, network, params.layer_share)
    p_conf = combine(p_dist, shape[pieces.line], p_turn, p_name, p_level)

    covered = pieces.hi - pieces.lo
    with np.errstate(invalid="ignore", divide="ignore"):
        named = ~np.isnan(p_name)
        w = np.bincount(pieces.line[named], weights=covered[named], minlength=n_lines)
        road_name = (
            np.bincount(pieces.line[named], weights=(p_name * covered)[named], minlength=n_lines)
            / w
        )
    road_name = np.where(w > 0, road_name, np.nan)
    road_conf = combine(
        mean_dist, shape, mean_turn, road_name, _mean(pieces.line, p_level, covered, n_lines)
    )
    road_conf = np.where(n_ok > 0, road_conf, 0.0)
    # A stretch below the threshold is not a match: it is dropped, and the status comes from
    # the share of the input that the remaining stretches cover. A short weak stretch between
    # two strong ones of the same road (a roundabout passed through) is part of the path.
    foreign_end = _foreign_ends(pieces, p_name, n_lines, params)
    road_weak = road_conf < road_threshold(samples.lengths, params)
    weak = (p_conf < params.confidence_threshold) | road_weak[pieces.line] | foreign_end
    strong = ~weak
    first_strong = np.full(n_lines, np.inf)
    last_strong = np.full(n_lines, -np.inf)
    np.minimum.at(first_strong, pieces.line[strong], pieces.input_lo[strong])
    np.maximum.at(last_strong, pieces.line[strong], pieces.input_hi[strong])
    inside = (
        (pieces.input_lo >= first_strong[pieces.line])
        & (pieces.input_hi <= last_strong[pieces.line])
        & (pieces.input_hi - pieces.input_lo <= 3 * params.spacing_m)
    )
    kept = np.flatnonzero(strong | (inside & ~road_weak[pieces.line]))
    # The input on the matched path, less what only dropped stretches covered. (Slivers left
    # out of the ranges, a few metres past a junction at a road's end, still count as on it.)
    # A street met at the road's end is not reported, but the road does reach it.
    reach = np.union1d(kept, np.flatnonzero(foreign_end))
    lost = _covered(pieces.line, pieces.input_lo, pieces.input_hi, n_lines) - _covered(
        pieces.line[reach], pieces.input_lo[reach], pieces.input_hi[reach], n_lines
    )
    has_kept = np.bincount(pieces.line[kept], minlength=n_lines) > 0
    covered_input = np.where(has_kept, np.maximum(pieces.matched_m - lost, 0.0), 0.0)
    ratio = np.clip(covered_input / np.maximum(samples.lengths, 1e-9), 0.0, 1.0)
    # One step along a reference road is what any road shows where it meets another (a new
    # road continuing a street, a branch leaving it): a road long enough for several steps
    # that matches no more than that lies on none.
    stub = (covered_input <= params.min_matched_steps * params.spacing_m) & (
        samples.lengths >= 3 * params.spacing_m
    )
    unmatched = (ratio <= params.min_ratio) | stub
    ratio = np.where(unmatched, 0.0, ratio)

    # An unmatched road reports no stretches, even those that passed on their own.
    kept = kept[~unmatched[pieces.line[kept]]]
    shapes = np.full(len(kept), None, dtype=object)
    if params.with_geometry:
        shapes[:] = covered_lines(network, pieces.segment[kept], pieces.lo[kept], pieces.hi[kept])
    kept_segment = pieces.segment[kept]
    length = network.length_m[kept_segment]
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(
            length[:, None] > 0,
            np.clip(np.column_stack([pieces.lo[kept], pieces.hi[kept]]) / length[:, None], 0, 1),
            0.0,
        )
    status = np.where(unmatched, UNMATCHED, np.where(ratio >= params.full_ratio, FULL, PARTIAL))
    return Matches(
        status=status.astype(np.int8),
        confidence=np.round(road_conf, 1),
        matched_ratio=ratio,
        length_m=samples.lengths.astype(np.float64),
        offsets=np.searchsorted(pieces.line[kept], np.arange(n_lines + 1)).astype(np.int64),
        segment_id=_objects(network.ids_of(kept_segment)),
        source_id=_objects(network.source_ids_of(kept_segment)),
        from_fraction=fractions[:, 0].copy(),
        to_fraction=fractions[:, 1].copy(),
        input_from_m=pieces.input_lo[kept].astype(np.float64),
        input_to_m=pieces.input_hi[kept].astype(np.float64),
        segment_length_m=covered[kept].astype(np.float64),
        segment_confidence=np.round(p_conf[kept], 1),
        geometry=shapes,
    )


def road_threshold(lengths: np.ndarray, params: MatchParams) -> np.ndarray:
    """The confidence each road must reach: the threshold, raised for a road only a few
    sampling steps long by ``short_road_margin`` of the way to 100 at one step, less in
    proportion as the road is longer. Its few samples fit any street they lie near (a
    fragment left beside the road it once belonged to), so its confidence says less; a
    threshold of 0 still keeps everything."""
    threshold = params.confidence_threshold
    if threshold <= 0:
        return np.zeros(len(lengths))
    steps = np.maximum(lengths, params.spacing_m) / params.spacing_m
    out: np.ndarray = threshold + (100.0 - threshold) * params.short_road_margin / steps
    return out


def _foreign_ends(
    pieces: PathPieces, p_name: np.ndarray, n_lines: int, params: MatchParams
) -> np.ndarray:
    """Per piece, whether it lies within ``end_name_m`` of a road's first or last matched
    metre, with only such pieces between it and that end, on segments named unlike the road,
    while the road's own name is found along the rest of it: the street or roundabout it
    meets at its end, not a stretch of it."""
    n = len(pieces.line)
    if n == 0 or params.end_name_m <= 0:
        return np.zeros(n, dtype=bool)
    own = p_name >= params.end_name_same
    foreign = p_name < params.end_name_other  # False where either side has no name
    head = np.flatnonzero(np.r_[True, pieces.line[1:] != pieces.line[:-1]])
    size = np.diff(np.r_[head, n])
    start = np.repeat(pieces.input_lo[head], size)
    stop = np.repeat(np.maximum.reduceat(pieces.input_hi, head), size)
    # Pieces of the line up to and including this one (from its start, then from its end)
    # that are not foreign.
    other = (~foreign).astype(np.int64)
    before = np.cumsum(other) - np.repeat(np.cumsum(other)[head] - other[head], size)
    after = np.repeat(np.add.reduceat(other, head), size) - before + other
    at_start = (before == 0) & (pieces.input_hi - start <= params.end_name_m)
    at_end = (after == 0) & (stop - pieces.input_lo <= params.end_name_m)
    has_own = np.bincount(pieces.line, weights=own, minlength=n_lines) > 0
    return foreign & (at_start | at_end) & has_own[pieces.line]  # type: ignore[no-any-return]


def _mean(line: np.ndarray, values: np.ndarray, weights: np.ndarray, n_lines: int) -> np.ndarray:
    """Per line, the ``weights``-weighted mean of its non-nan ``values``; nan where none."""
    known = ~np.isnan(values)
    w = np.bincount(line[known], weights=weights[known], minlength=n_lines)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(line[known], weights=(values * weights)[known], minlength=n_lines) / w
    return np.where(w > 0, mean, np.nan)


def _objects(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _covered(line: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_lines: int) -> np.ndarray:
    """Per line, metres of the union of its [lo, hi] ranges (sorted by line, then lo).

    Each range's reach (the furthest end of the ranges before it on its line) is carried rank
    by rank over all lines at once, in the line's own figures, so a road's share does not
    depend on the roads batched with it."""
    if len(line) == 0:
        return np.zeros(n_lines)
    head = np.flatnonzero(np.r_[True, line[1:] != line[:-1]])
    rank = np.arange(len(line)) - np.repeat(head, np.diff(np.r_[head, len(line)]))
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2)).tolist()
    before = np.full(len(line), -np.inf)
    reach = hi.copy()
    for r in range(1, len(bounds) - 1):
        at = by_rank[bounds[r] : bounds[r + 1]]
        before[at] = reach[at - 1]
        reach[at] = np.maximum(reach[at - 1], hi[at])
    gained = np.maximum(hi - np.maximum(lo, before), 0.0)
    return np.bincount(line, weights=gained, minlength=n_lines)


def _lookup(
    keys: np.ndarray, values: np.ndarray, query: np.ndarray, default: np.ndarray
) -> np.ndarray:
    """``values`` at ``query`` in the sorted ``keys``, ``default`` where absent."""
    if len(keys) == 0:
        return default
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[pos] == query, values[pos], default)


def _shape(
    samples: Samples,
    candidates: Candidates,
    layers: Layers,
    chosen: np.ndarray,
    pieces: PathPieces,
    n_lines: int,
) -> np.ndarray:
    """Per line, max(discrete Frechet(samples, their path positions), largest route detour)."""
    ok = pieces.layer_ok
    line = samples.line[layers.point][ok]
    shape = np.zeros(n_lines)
    if len(line):
        sample_xy = np.column_stack([samples.x[layers.point[ok]], samples.y[layers.point[ok]]])
        cand = chosen[ok]
        path_xy = np.column_stack([candidates.x[cand], candidates.y[cand]])
        count = np.bincount(line, minlength=n_lines)
        multi = count[line] >= 2
        if multi.any():
            shape_line, frechet = _frechet(line[multi], sample_xy[multi], path_xy[multi])
            shape[shape_line] = frechet
        single = ~multi
        dist = candidates.distance[cand]
        np.maximum.at(shape, line[single], dist[single])
    excess = np.nan_to_num(pieces.step_excess, nan=0.0)
    np.maximum.at(shape, samples.line[layers.point], excess)
    return shape


def _frechet(
    line: np.ndarray, sample_xy: np.ndarray, path_xy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per line (``line`` sorted, two points or more each), the discrete Frechet distance
    between its samples and their positions on the path: (lines, distances).

    Sample i and path position i pair up one to one, so the Frechet distance is at most D,
    the largest distance of such a pair (pair i*), and at least the distance from sample i*
    to the nearest path position, since every coupling pairs i* with one. Where that nearest
    is pair i*'s own (nearly always: a path position is the sample's projection), the distance
    is D, found in linear time with the figures GEOS computes (sqrt(dx * dx + dy * dy)); GEOS
    (quadratic in a line's points) answers only the other lines.
    """
    head = np.r_[True, line[1:] != line[:-1]]
    starts = np.flatnonzero(head)
    run = np.cumsum(head) - 1
    dx, dy = sample_xy[:, 0] - path_xy[:, 0], sample_xy[:, 1] - path_xy[:, 1]
    pair = np.sqrt(dx * dx + dy * dy)
    top = np.maximum.reduceat(pair, starts)
    at = np.flatnonzero(pair == top[run])
    worst = at[np.r_[True, run[at][1:] != run[at][:-1]]]  # the first i* of each line
    dx = sample_xy[worst[run], 0] - path_xy[:, 0]
    dy = sample_xy[worst[run], 1] - path_xy[:, 1]
    nearest = np.minimum.reduceat(np.sqrt(dx * dx + dy * dy), starts)
    lines = line[starts]
    out = top.copy()
    other = np.flatnonzero(nearest < top)
    if len(other):
        rows = np.flatnonzero(np.isin(run, other))
        dense = np.searchsorted(other, run[rows])
        inputs = shapely.linestrings(sample_xy[rows], indices=dense)
        paths = shapely.linestrings(path_xy[rows], indices=dense)
        out[other] = shapely.frechet_distance(inputs, paths)
    return lines, out
