"""Match road geometries onto the reference network: the road matching engine's entry point.

Each input road is resampled every few metres, every sample gets candidate positions on
nearby reference segments, and the most likely path through them is decoded as a hidden
Markov model (emission from distance and heading, transition from route versus input
distance), once for each assumed traffic direction of the input, keeping the better. The
path is then turned into covered ranges of reference segments (linear referencing), and
each road gets a status, the matched share of its length and a confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import shapely

from geobatch.engines.roadmatch.candidates import find_candidates
from geobatch.engines.roadmatch.confidence import score_roads
from geobatch.engines.roadmatch.geometry import resample_coords
from geobatch.engines.roadmatch.hmm import (
    ModelParams,
    build_layers,
    emission_costs,
    transition_costs,
)
from geobatch.engines.roadmatch.levels import Levels
from geobatch.engines.roadmatch.linear import PathPieces, trace_paths
from geobatch.engines.roadmatch.matches import Matches
from geobatch.engines.roadmatch.names import NameScores
from geobatch.engines.roadmatch.network import RoadNetwork, network_for
from geobatch.engines.roadmatch.viterbi import decode

Status = Literal["full", "partial", "unmatched"]

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


@dataclass(frozen=True, kw_only=True)
class MatchParams:
    """How to match; the defaults suit road datasets digitised within metres of the reference."""

    search_radius_m: float = 30.0
    confidence_threshold: float = 60.0  # 0-100; weaker stretches (or roads) are not matches
    # a road one sampling step long must also clear this share of the way from the threshold
    # to 100 (a road of n steps, 1/n of it): a few samples fit any street they lie near
    short_road_margin: float = 0.25
    use_names: bool = True
    spacing_m: float = 15.0  # resampling step along the input
    max_candidates: int = 6  # nearest segments kept per sample
    sigma_m: float = 8.0  # emission: distance scale
    sigma_heading_deg: float = 30.0  # emission: heading difference scale
    beta_m: float = 4.0  # transition: scale of |route - input distance|
    oneway_penalty: float = 2.0  # emission cost of travelling against a oneway segment
    # emission cost of a oneway road on a two-way segment or a two-way road on a oneway one,
    # where the input says which it is (a slip road or a carriageway beside a two-way street)
    oneway_kind_penalty: float = 1.0
    # emission cost, on oneway segments, of assuming a road not said to be oneway or two-way
    # runs against its digitisation
    reversed_penalty: float = 0.1
    name_penalty: float = 1.0  # emission cost of a segment named unlike the road
    unnamed_penalty: float = 0.25  # share of it for a named segment when the road has no name
    # emission cost of a segment in a tunnel or on a bridge when the road says it is not (or
    # the reverse), where the input says; a segment at another layer costs ``layer_share`` of it
    level_penalty: float = 0.5
    layer_share: float = 0.5
    either_direction: bool = True  # input digitisation direction says nothing about traffic
    # cost of restarting the path (gap, off-network stretch): that of a route 40 m longer than
    # the input, so a stretch the road cannot follow along the network is a restart, not a
    # detour through a wrong street whose weak pieces pull the whole road's confidence down
    break_cost: float = 10.0
    max_heading_deg: float = 60.0  # a sample further off the segment's heading is unmatched
    max_state_turn_deg: float = 100.0  # states heading further off the road are not considered
    max_detour_m: float = 15.0  # a step whose route exceeds twice its length by more is unmatched
    end_snap_m: float = 2.0  # ranges this close to a segment end reach the end
    # a road's end sample heading further off the road than this, where the road runs along
    # its neighbour's segment within it and the route turns by more than ``end_corner_deg``
    # onto that segment, is on the road it ends at (a ring, a crossing street): not claimed
    end_turn_deg: float = 12.0
    end_corner_deg: float = 45.0
    # pieces within this many metres of a road's end, on segments named unlike it (name
    # similarity below ``end_name_other``) where the rest of it matched its own name (at least
    # ``end_name_same``), are the street or roundabout it ends at: not reported
    end_name_m: float = 15.0
    end_name_same: float = 80.0
    end_name_other: float = 50.0
    min_piece_m: float = 5.0  # shorter partial covers (a quarter of a short road) are dropped
    # a stretch whose samples lie further than this share of ``search_radius_m`` (12 m of the
    # default 30) from the path is not on the reference: neither covered nor reported
    off_reference_share: float = 0.4
    full_ratio: float = 0.9  # share of the input covered by matched stretches for "full"
    min_ratio: float = 0.0  # at or below this matched share a road is "unmatched"
    # a road at least three sampling steps long whose kept stretches cover no more than this
    # many steps is "unmatched": one step along a reference road is what any road shows where
    # it meets another (its junctions), not evidence that it is on the reference
    min_matched_steps: float = 1.5
    batch_size: int = 2000  # lines decoded together, at most
    batch_km: float = 400.0  # and about this much road length
    with_geometry: bool = False  # give each matched stretch its geometry (lon/lat)

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence_threshold <= 100.0:
            raise ValueError("confidence_threshold must be between 0 and 100")
        if not self.search_radius_m > 0:
            raise ValueError("search_radius_m must be positive")
        if not self.spacing_m > 0:
            raise ValueError("spacing_m must be positive")
        if self.max_candidates < 1:
            raise ValueError("max_candidates must be at least 1")

    @classmethod
    def for_traces(cls, **changes: Any) -> MatchParams:
        """Settings for GPS traces: fixes are in travel order, so the direction is known and
        oneway segments are only travelled their way; traces carry no names."""
        base: dict[str, Any] = {
            "either_direction": False,
            "oneway_penalty": 8.0,
            "use_names": False,
            "off_reference_share": 1.0,  # fixes scatter around the road, they do not leave it
        }
        return cls(**(base | changes))


@dataclass(frozen=True, kw_only=True)
class SegmentMatch:
    """One reference segment covered by an input road."""

    segment_id: str  # reference segment id (osm:way/1:0, GERS id)
    source_id: str  # osm:way/1 or the GERS id
    from_fraction: float  # covered part along the reference segment, 0..1, in its direction
    to_fraction: float
    input_from_m: float  # the corresponding range along the input road, metres
    input_to_m: float
    length_m: float  # matched length along the reference segment
    confidence: float  # 0-100
    geometry: shapely.LineString | None = None  # the stretch, lon/lat, when asked for


@dataclass(frozen=True, kw_only=True)
class RoadMatch:
    """The outcome for one input road."""

    status: Status
    confidence: float  # 0-100
    matched_ratio: float  # matched share of the input road's length, 0..1
    length_m: float  # input road length
    segments: tuple[SegmentMatch, ...]


def match_lines(
    lines: Sequence[shapely.LineString],
    names: Sequence[str | None] | None,
    network: RoadNetwork,
    params: MatchParams,
    *,
    oneway: Sequence[int | None] | None = None,
    layer: Sequence[int | None] | None = None,
    tunnel: Sequence[bool | None] | None = None,
    bridge: Sequence[bool | None] | None = None,
) -> list[RoadMatch]:
    """One RoadMatch per input line (lon/lat, EPSG:4326, >= 2 points), same order.

    ``oneway`` optionally gives each road's traffic direction relative to its digitisation
    (1 along, -1 against, 0 both ways, None unknown); a known direction is enforced on
    oneway reference segments instead of trying both, and a road said to be oneway (or
    two-way) prefers segments that are too. ``layer``, ``tunnel`` and ``bridge`` optionally
    say where each road runs (None unknown): it prefers segments that run there too.
    """
    return match_columns(
        lines, names, network, params, oneway=oneway, layer=layer, tunnel=tunnel, bridge=bridge
    ).roads()


def match_columns(
    lines: Sequence[shapely.LineString],
    names: Sequence[str | None] | None,
    network: RoadNetwork,
    params: MatchParams,
    *,
    oneway: Sequence[int | None] | None = None,
    layer: Sequence[int | None] | None = None,
    tunnel: Sequence[bool | None] | None = None,
    bridge: Sequence[bool | None] | None = None,
) -> Matches:
    """The answer of ``match_lines`` in columns, without an object per road or stretch.

    Roads are decoded shortest first, in batches of similar length: the Viterbi recursion
    steps once per layer of a batch's longest road, so one long road among short ones would
    make every batch pay for its length. Answers come back in input order.
    """
    approx_km = shapely.length(np.asarray(lines, dtype=object)) * 111.32  # degrees, upper bound
    order = np.argsort(approx_km, kind="stable")
    out: list[Matches] = []
    for begin, end in _batches(approx_km[order], params):
        rows = order[begin:end].tolist()
        batch = [lines[k] for k in rows]
        batch_names = None if names is None else [names[k] for k in rows]
        known = np.zeros(len(batch), dtype=np.int8)
        declared = np.zeros(len(batch), dtype=bool)
        if oneway is not None:
            given = [oneway[k] for k in rows]
            known = np.array([int(np.sign(v)) if v else 0 for v in given], np.int8)
            declared = np.array([v is not None for v in given], dtype=bool)
        levels = Levels.of(
            len(batch),
            None if layer is None else [layer[k] for k in rows],
            None if tunnel is None else [tunnel[k] for k in rows],
            None if bridge is None else [bridge[k] for k in rows],
        )
        out.append(_match_batch(batch, batch_names, known, declared, levels, network, params))
    matches = Matches.concat(out)
    if len(order) and (order[1:] < order[:-1]).any():
        matches = matches.take(np.argsort(order))
    return matches


def _batches(approx_km: np.ndarray, params: MatchParams) -> list[tuple[int, int]]:
    """Consecutive ranges (of ``approx_km``, sorted ascending) of at most ``batch_size`` lines
    and about ``batch_km`` of length, in ascending order.

    Memory grows with the number of samples in a batch, so long roads make smaller batches.
    They are cut from the longest road down: the recursion steps as often as a batch's
    longest road has layers, and a long tail of roads fills the batch of the longest one, so
    that the next batch starts at a shorter road than it would cut from the shortest up.
    """
    out: list[tuple[int, int]] = []
    stop, total = len(approx_km), 0.0
    lengths = approx_km.tolist()
    for begin in range(len(lengths) - 1, -1, -1):
        km = lengths[begin]
        size = stop - begin - 1
        if size > 0 and (size >= params.batch_size or total + km > params.batch_km):
            out.append((begin + 1, stop))
            stop, total = begin + 1, 0.0
        total += km
    if stop > 0:
        out.append((0, stop))
    return out[::-1]


def _match_batch(
    lines: list[shapely.LineString],
    names: list[str | None] | None,
    oneway: np.ndarray,
    declared: np.ndarray,
    levels: Levels,
    network: RoadNetwork,
    params: MatchParams,
) -> Matches:
    lonlat, owner = shapely.get_coordinates(np.asarray(lines, dtype=object), return_index=True)
    metric = network.projection.project_xy(lonlat)
    samples = resample_coords(metric, owner, len(lines), params.spacing_m)
    # A state heading far off the road's own heading can never be on its path: never made.
    candidates = find_candidates(
        samples,
        network,
        params.search_radius_m,
        params.max_candidates,
        math.radians(params.max_state_turn_deg),
    )
    per_point = np.bincount(candidates.point) if len(candidates) else np.zeros(1, np.int64)
    layers = build_layers(samples, candidates, max(int(per_point.max()), 1))
    model = ModelParams(
        sigma_m=params.sigma_m,
        sigma_heading=math.radians(params.sigma_heading_deg),
        beta_m=params.beta_m,
        oneway_penalty=params.oneway_penalty,
        oneway_kind_penalty=params.oneway_kind_penalty,
        name_penalty=params.name_penalty,
        backtrack_tolerance_m=params.spacing_m / 3,
    )
    directions = (1, -1) if params.either_direction or (oneway < 0).any() else (1,)
    mismatch = None
    name_scores = None
    if params.use_names and names is not None:
        name_scores = NameScores(names, network)
        mismatch = name_scores.mismatch(
            samples.line[candidates.point], candidates.segment, params.unnamed_penalty
        )
    # Where the input says whether a road is oneway, a segment of the other kind is less likely.
    point_line = samples.line[candidates.point]
    kind_differs = declared[point_line] & (
        (oneway[point_line] != 0) != (network.oneway[candidates.segment] != 0)
    )
    # Oneway carriageways are digitised in their travel direction (OSM, TomTom, HERE): where
    # the input does not say, assuming it runs against its own digitisation costs a little.
    on_oneway = network.oneway[candidates.segment] != 0
    reversed_cost = np.where(~declared[point_line] & on_oneway, params.reversed_penalty, 0.0)
    # Where the input says where a road runs, a tunnel, bridge or layer elsewhere is less likely.
    level_cost = params.level_penalty * levels.mismatch(
        point_line, candidates.segment, network, params.layer_share
    )
    emission = emission_costs(
        samples,
        candidates,
        layers,
        network,
        model,
        directions,
        mismatch,
        kind_differs,
        reversed_cost,
        level_cost,
    )
    # Traces travel the way they were recorded, so routes between samples follow oneways too.
    routes = network.routes if len(directions) > 1 else network.directed_routes
    transition = transition_costs(samples, candidates, layers, network, routes, model)

    n_lines = len(lines)
    first = layers.first_of_line[:-1]
    count = np.diff(layers.first_of_line)
    # Decode a road once per traffic direction it may have; a road with no oneway segment
    # among its candidates scores the same either way, so it is decoded once.
    near_oneway = np.bincount(
        samples.line[candidates.point],
        weights=network.oneway[candidates.segment] != 0,
        minlength=n_lines,
    )
    unknown = oneway == 0
    either = unknown & (near_oneway > 0) & params.either_direction
    wanted = np.stack(
        [(unknown if k == 0 else either) | (oneway == sense) for k, sense in enumerate(directions)]
    )
    variant, line_of = np.nonzero(wanted)
    decoded = decode(
        emission, transition, first[line_of], count[line_of], variant, params.break_cost
    )
    cost = np.full(wanted.shape, np.inf)
    cost[variant, line_of] = decoded.cost
    chain_of = np.zeros(wanted.shape, dtype=np.int64)
    chain_of[variant, line_of] = np.arange(len(variant))
    best = np.argmin(cost, axis=0)
    chain = chain_of[best, np.arange(n_lines)]
    # The chosen chain's states, laid out layer by layer (layers are already in line order).
    rank = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    pick = np.repeat(decoded.start[chain], count) + rank
    layer_state = decoded.state[pick]
    restart = decoded.restart[pick]
    chosen = layers.state[np.arange(len(layers.point)), layer_state] if len(pick) else pick
    pieces: PathPieces = trace_paths(
        samples, candidates, layers, chosen, restart, network, routes, params
    )
    return score_roads(
        samples, candidates, layers, chosen, pieces, name_scores, network, params, levels
    )
