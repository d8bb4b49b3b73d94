"""Cross-version evaluation of road matching: an old OSM snapshot's roads onto a newer release.

Run with ``.venv/bin/python evals/roadmatch_versions.py [--seed N ...] [--old F --new F]
[--without oneway] [--without name] [--without layer]``. Several seeds give a row each and one
of them pooled (the perturbations move a few roads onto their neighbour or off it, so one
seed's figures vary by about ±0.005).

The roads of ``osm/monaco-2012.osm.gz`` are perturbed as a customer digitises them and matched
as ``road_match`` records (the job's default options) onto a release built from
``osm/monaco.osm.pbf`` (2016). Given the other way round (``--old`` the 2016 extract, ``--new``
the 2012 one), the roads built since, and those of the 2016 extract's wider area, are absent
from the reference: a test of roads that must come back ``unmatched``. The truth comes from
persistent OSM ids first, then geometry:

- an old edge (two consecutive nodes of an old way) whose two nodes are still consecutive on a
  new way lies on that way, between those nodes; nodes added to the way since (a new crossing)
  do not break the run, since they were not there to be consecutive with, unless they take
  the way more than 10 m off the edge (the way was redrawn there);
- any other old edge is judged by geometry, every 2 m along it: a point lies on the new way
  within 10 m of it that runs the same way (within 30 degrees), its own way first where that
  kept its id but was redrawn, else the nearest. A way deleted and drawn again in place under a
  new id is still on the reference (by ids alone 51 of 56 "absent" roads were such roads), and
  an edge that a new way covers only in part lies on it only there;
- what no new way runs along within 10 m lies on no reference road (removed, or moved further).

Test roads carry their old way's name, oneway flag, layer, tunnel and bridge tags
(``--without layer`` leaves out the last three). Perturbations, drawn with a fixed
seed: a sideways offset of 1-6 m (not applied where it would fold a road up), 1 m Gaussian
jitter on vertices every 10 m, Douglas-Peucker simplification (2 m), splits of a way at a
random point (often mid-edge, so roads end mid-segment) and merges of two ways that meet end
to end. Scores, by matched length along the new ways (a few metres of tolerance at the ends
of a truth range):

- precision: matched metres inside a true range of that road / all matched metres;
- recall: true metres covered by a match / all true metres;
- status agreement: the status from the truth (``full`` when >= 90 % of the road lies on
  reference roads, ``unmatched`` when none of it does, else ``partial``) against the answer;
- absent matched: of the roads none of which lies on the reference, the share not answered
  ``unmatched``; and the same for those of them more than 10 m (median) from every reference
  road.

A road the engine rejects (it goes to the error report) counts as answered ``unmatched``.

The lost length is broken down by kind: matched metres on a right way but past the road's true
extent on it (ranges overrunning the input's ends), inside that extent (a piece counted whole
across a gap), on another way beside a present road, or on a road absent from the reference;
and true metres missed on roads answered unmatched or in gaps of matched ones. ``--worst N``
lists the roads that lose the most.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import osmium
import pyarrow as pa
import shapely
from rich.console import Console
from rich.table import Table

from geobatch.engines.roadmatch import RoadNetwork, network_for
from geobatch.engines.roadmatch.chunk import match_records
from geobatch.engines.roadmatch.output import RoadAnswer
from geobatch.jobs.types.road_match import RoadMatchOptions, params_of
from geobatch.reference import Release
from geobatch.reference.osm_tags import is_bridge, is_tunnel, layer, oneway, road_class

sys.path.insert(0, str(Path(__file__).resolve().parent))
from roadmatch_data import SHARED_DATA, data_or_exit, temporary_release
from roadmatch_synthetic import Way, ways_of

REDRAWN_M = 10.0
END_TOLERANCE_M = 3.0
FULL_SHARE = 0.9
WITHOUT = {"name": ("name",), "oneway": ("oneway",), "layer": ("layer", "tunnel", "bridge")}
"""The record columns ``--without`` leaves out, by cue."""


@dataclass
class OsmWay:
    """A road way of a snapshot: node ids and lon/lat, consecutive duplicates dropped."""

    id: int
    refs: list[int]
    lonlat: np.ndarray
    name: str | None
    oneway: int  # 1 along, -1 against, 0 both ways
    highway: str
    layer: int
    tunnel: bool
    bridge: bool


def read_ways(path: Path) -> dict[int, OsmWay]:
    """The road ways (the release's road classes) of an OSM file, PBF or XML."""
    ways: dict[int, OsmWay] = {}
    for way in (
        osmium.FileProcessor(str(path))
        .with_locations()
        .with_filter(osmium.filter.KeyFilter("highway"))
    ):
        if not isinstance(way, osmium.osm.Way):
            continue
        tags = {tag.k: tag.v for tag in way.tags}
        highway = road_class(tags)
        if highway is None:
            continue
        refs: list[int] = []
        coords: list[tuple[float, float]] = []
        for node in way.nodes:
            if not node.location.valid():
                continue
            here = (node.location.lon, node.location.lat)
            if coords and coords[-1] == here:
                continue
            refs.append(node.ref)
            coords.append(here)
        if len(refs) >= 2:
            ways[way.id] = OsmWay(
                way.id,
                refs,
                np.asarray(coords),
                tags.get("name"),
                oneway(tags, highway),
                highway,
                layer(tags),
                is_tunnel(tags),
                is_bridge(tags),
            )
    return ways


@dataclass
class NewWays:
    """The release's ways with where their nodes lie along them, and an edge index."""

    ways: dict[int, Way]
    node_at: dict[int, np.ndarray]  # way id -> metres along the way of each node
    # (node, node) -> [(way id, position of one, position of the other)]
    edges: dict[tuple[int, int], list[tuple[int, int, int]]]
    segment_way: dict[int, tuple[int, float]]  # segment index -> (way id, start metres)
    refs: dict[int, list[int]]  # way id -> node ids
    tree: shapely.STRtree | None = None  # the ways' metric lines, in ``tree_ids`` order
    tree_ids: list[int] = field(default_factory=list)


def index_new(
    new: dict[int, OsmWay], old_nodes: set[int], network: RoadNetwork, segments: pa.Table
) -> NewWays:
    out = NewWays(ways={}, node_at={}, edges=defaultdict(list), segment_way={}, refs={})
    for way in ways_of(network, segments):
        way_id = int(str(network.source_ids[way.segments[0]]).rsplit("/", 1)[1])
        osm = new.get(way_id)
        coords = shapely.get_coordinates(way.metric)
        if osm is None or len(osm.refs) != len(coords):
            continue  # a way cut into runs by missing nodes: left out of the truth
        out.ways[way_id] = way
        out.refs[way_id] = osm.refs
        step = np.hypot(*np.diff(coords, axis=0).T)
        out.node_at[way_id] = np.concatenate([[0.0], np.cumsum(step)])
        # Edges between nodes that were already there, skipping nodes added since.
        kept = [i for i, ref in enumerate(osm.refs) if ref in old_nodes]
        for i, j in itertools.pairwise(kept):
            pair = (osm.refs[i], osm.refs[j])
            out.edges[pair].append((way_id, i, j))
            out.edges[pair[::-1]].append((way_id, i, j))
        for seg, start in zip(way.segments.tolist(), way.starts.tolist(), strict=True):
            out.segment_way[seg] = (way_id, float(start))
    out.tree_ids = list(out.ways)
    out.tree = shapely.STRtree([out.ways[w].metric for w in out.tree_ids])
    return out


@dataclass
class OldEdge:
    """Where an old edge lies on the new network: stretches (edge share from, to, way id,
    metres along the way at those shares); none where it lies on no reference road."""

    length_m: float
    on: list[tuple[float, float, int, float, float]]


def truth_of_edges(old: OsmWay, new: NewWays, network: RoadNetwork) -> list[OldEdge]:
    x, y = network.projection.forward(old.lonlat[:, 0], old.lonlat[:, 1])
    xy = np.column_stack([x, y])
    out: list[OldEdge] = []
    for i in range(len(old.refs) - 1):
        length = float(np.hypot(*(xy[i + 1] - xy[i])))
        hits = new.edges.get((old.refs[i], old.refs[i + 1]), [])
        if hits and not _rerouted(xy[i : i + 2], hits[0], new):
            way_id, p, q = hits[0]
            at = new.node_at[way_id]
            forward = new.refs[way_id][p] == old.refs[i]
            lo, hi = (at[p], at[q]) if forward else (at[q], at[p])
            out.append(OldEdge(length, [(0.0, 1.0, way_id, float(lo), float(hi))]))
            continue
        out.append(OldEdge(length, _redrawn(old.id, xy[i : i + 2], length, new)))
    return out


def _rerouted(ends: np.ndarray, hit: tuple[int, int, int], new: NewWays) -> bool:
    """Whether nodes added between an old edge's two nodes take the new way more than 10 m
    off the edge: the two are then no longer consecutive, and the edge counts as redrawn."""
    way_id, p, q = hit
    if q - p <= 1:
        return False
    between = shapely.get_coordinates(new.ways[way_id].metric)[p + 1 : q]
    edge = shapely.LineString(ends)
    return bool(shapely.distance(edge, shapely.points(between)).max() > REDRAWN_M)


def _redrawn(
    way_id: int, ends: np.ndarray, length: float, new: NewWays
) -> list[tuple[float, float, int, float, float]]:
    """Where an old edge runs along new ways within 10 m, judged every 2 m: on its own way
    where that was redrawn, else on the nearest way heading the same way (a road deleted and
    re-created in place under a new id is still on the reference; one further away, or a
    way crossing it, is not)."""
    steps = max(int(np.ceil(length / 2.0)), 1)
    share = np.arange(steps + 1) / steps
    points = shapely.points(ends[0] + share[:, None] * (ends[1] - ends[0]))
    near = [] if new.tree is None else new.tree.query(points, "dwithin", REDRAWN_M)
    candidates = sorted({new.tree_ids[k] for k in np.unique(near[1]).tolist()}) if len(near) else []
    heading = np.arctan2(*(ends[1] - ends[0])[::-1])
    best_way = np.full(len(share), -1, dtype=np.int64)
    best_gap = np.full(len(share), np.inf)
    best_at = np.zeros(len(share))
    for candidate in candidates:
        line = new.ways[candidate].metric
        gap = shapely.distance(line, points)
        at = shapely.line_locate_point(line, points)
        ahead = shapely.get_coordinates(shapely.line_interpolate_point(line, at + 1.0))
        behind = shapely.get_coordinates(shapely.line_interpolate_point(line, at - 1.0))
        way_heading = np.arctan2(ahead[:, 1] - behind[:, 1], ahead[:, 0] - behind[:, 0])
        turn = np.abs((way_heading - heading + np.pi / 2) % np.pi - np.pi / 2)
        gap = np.where(turn <= np.radians(30.0), gap, np.inf)
        if candidate == way_id:
            gap = np.where(gap <= REDRAWN_M, -1.0, gap)  # its own way first
        better = (gap <= REDRAWN_M) & (gap < best_gap)
        best_way[better], best_gap[better], best_at[better] = candidate, gap[better], at[better]
    out: list[tuple[float, float, int, float, float]] = []
    start = 0
    for k in range(1, len(share) + 1):
        if k < len(share) and best_way[k] == best_way[start]:
            continue
        if best_way[start] >= 0 and k - 1 > start:
            f0, f1 = float(share[start]), float(share[k - 1])
            out.append((f0, f1, int(best_way[start]), float(best_at[start]), float(best_at[k - 1])))
        start = k
    return out


@dataclass
class Road:
    """One test road: its lon/lat line, and pieces (edge truth, share from, share to)."""

    line: shapely.LineString
    name: str | None
    oneway: int
    pieces: list[tuple[OldEdge, float, float]]
    layer: int = 0
    tunnel: bool = False
    bridge: bool = False
    highway: str = ""
    truth: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    length_m: float = 0.0
    on_reference_m: float = 0.0

    def settle(self) -> None:
        for edge, f0, f1 in self.pieces:
            self.length_m += (f1 - f0) * edge.length_m
            for e0, e1, way_id, lo, hi in edge.on:
                s0, s1 = max(f0, e0), min(f1, e1)
                if s1 <= s0:
                    continue
                self.on_reference_m += (s1 - s0) * edge.length_m
                a = lo + (s0 - e0) / max(e1 - e0, 1e-12) * (hi - lo)
                b = lo + (s1 - e0) / max(e1 - e0, 1e-12) * (hi - lo)
                self.truth.setdefault(way_id, []).append((min(a, b), max(a, b)))

    @property
    def status(self) -> str:
        share = self.on_reference_m / max(self.length_m, 1e-9)
        if share >= FULL_SHARE:
            return "full"
        return "partial" if self.on_reference_m > 1.0 else "unmatched"


def perturbed_roads(
    old: dict[int, OsmWay], truth: dict[int, list[OldEdge]], network: RoadNetwork, seed: int
) -> list[Road]:
    """Old ways as customer roads: some merged end to end, some split, all redrawn."""
    rng = np.random.default_rng(seed)
    by_start: dict[int, list[int]] = defaultdict(list)
    for way in old.values():
        by_start[way.refs[0]].append(way.id)
    used: set[int] = set()
    chains: list[list[int]] = []
    for way_id in sorted(old):
        if way_id in used:
            continue
        chain = [way_id]
        used.add(way_id)
        follow = [
            w
            for w in by_start.get(old[way_id].refs[-1], [])
            if w not in used and old[w].oneway == old[way_id].oneway
        ]
        if follow and rng.random() < 0.15:
            chain.append(follow[0])
            used.add(follow[0])
        chains.append(chain)
    roads: list[Road] = []
    for chain in chains:
        refs: list[tuple[float, float]] = []
        pieces: list[tuple[OldEdge, float, float]] = []
        for way_id in chain:
            coords = old[way_id].lonlat
            refs.extend(map(tuple, coords if not refs else coords[1:]))
            pieces.extend((edge, 0.0, 1.0) for edge in truth[way_id])
        xy = np.column_stack(network.projection.forward(*np.asarray(refs).T))
        if rng.random() < 0.2 and len(pieces) >= 1:
            # Split at a random point along the road, usually inside an edge.
            cum = np.concatenate([[0.0], np.cumsum([e.length_m for e, _, _ in pieces])])
            cut = rng.uniform(0.25, 0.75) * cum[-1]
            k = int(np.searchsorted(cum, cut, side="right") - 1)
            k = min(k, len(pieces) - 1)
            f = (cut - cum[k]) / max(pieces[k][0].length_m, 1e-9)
            point = xy[k] + f * (xy[k + 1] - xy[k])
            first_xy = np.vstack([xy[: k + 1], point])
            second_xy = np.vstack([point, xy[k + 1 :]])
            first = [*pieces[:k], (pieces[k][0], 0.0, f)]
            second = [(pieces[k][0], f, 1.0), *pieces[k + 1 :]]
            parts = [(first_xy, first), (second_xy, second)]
        else:
            parts = [(xy, pieces)]
        for part_xy, part_pieces in parts:
            line = _redraw(part_xy, rng)
            if line is None:
                continue
            lon, lat = network.projection.inverse(*shapely.get_coordinates(line).T)
            first = old[chain[0]]
            road = Road(
                shapely.LineString(np.column_stack([lon, lat])),
                first.name,
                first.oneway,
                part_pieces,
                first.layer,
                first.tunnel,
                first.bridge,
                first.highway,
            )
            road.settle()
            if road.length_m >= 1.0:
                roads.append(road)
    return roads


def _redraw(xy: np.ndarray, rng: np.random.Generator) -> shapely.LineString | None:
    """Offset sideways, densified with jitter, simplified; None when it degenerates."""
    line = shapely.LineString(xy)
    if line.length < 1.0:
        return None
    if rng.random() < 0.8:
        moved = shapely.offset_curve(line, float(rng.uniform(1.0, 6.0) * rng.choice([-1, 1])))
        # An offset of a road that turns back on itself can fold it up: such a road is kept
        # where it is rather than drawn as a fraction of itself.
        if (
            isinstance(moved, shapely.LineString)
            and not moved.is_empty
            and abs(moved.length - line.length) <= 0.2 * line.length
        ):
            line = moved
    dense = shapely.get_coordinates(shapely.segmentize(line, 10.0))
    inner = rng.normal(0.0, 1.0, size=(len(dense) - 2, 2))
    dense[1:-1] += inner
    simplified = shapely.simplify(shapely.LineString(dense), 2.0)
    if shapely.get_num_coordinates(simplified) < 2 or simplified.length < 1.0:
        return None
    return simplified


@dataclass
class Score:
    """Sums over the roads: metres matched, right, true and recalled, and status counts."""

    matched_m: float = 0.0
    correct_m: float = 0.0
    truth_m: float = 0.0
    recalled_m: float = 0.0
    status_same: int = 0
    roads: int = 0
    absent: int = 0
    absent_matched: int = 0
    confusion: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    # Lost precision by kind, metres: on the right way past the road's true extent there
    # (ranges overrunning the input's ends), on the right way inside it (a piece counted
    # whole across a gap of the input), on another way beside a present road, on an absent one.
    past_ends_m: float = 0.0
    inside_m: float = 0.0
    wrong_way_m: float = 0.0
    absent_road_m: float = 0.0
    # Lost recall by kind, metres: roads answered unmatched, and gaps in matched roads.
    missed_unmatched_m: float = 0.0
    missed_gaps_m: float = 0.0
    worst: list[tuple[float, int, int, str, str]] = field(default_factory=list)  # seed, road

    def add(self, other: Score) -> None:
        """Pool another run's sums into this one (several seeds)."""
        for name, value in vars(other).items():
            if isinstance(value, (int, float)):
                setattr(self, name, getattr(self, name) + value)
        for key, count in other.confusion.items():
            self.confusion[key] += count
        self.worst.extend(other.worst)


def _overlap(lo: float, hi: float, ranges: list[tuple[float, float]]) -> float:
    """Metres of [lo, hi] inside the union of ``ranges``."""
    covered = 0.0
    ordered = sorted(ranges)
    start, end = None, None
    merged: list[tuple[float, float]] = []
    for a, b in ordered:
        if start is None or end is None or a > end:
            if start is not None and end is not None:
                merged.append((start, end))
            start, end = a, b
        else:
            end = max(end, b)
    if start is not None and end is not None:
        merged.append((start, end))
    for a, b in merged:
        covered += max(0.0, min(hi, b) - max(lo, a))
    return covered


def score(
    roads: list[Road], answers: list[RoadAnswer], new: NewWays, network: RoadNetwork, seed: int = 0
) -> Score:
    out = Score()
    index = {str(network.segment_ids[k]): k for k in range(len(network))}
    for number, (road, answer) in enumerate(zip(roads, answers, strict=True)):
        matched: dict[int, list[tuple[float, float]]] = defaultdict(list)
        lost = 0.0
        for piece in answer.segments:
            seg = index[piece.segment_id]
            if seg not in new.segment_way:
                continue
            way_id, start = new.segment_way[seg]
            length = float(network.length_m[seg])
            a = start + min(piece.from_fraction, piece.to_fraction) * length
            b = start + max(piece.from_fraction, piece.to_fraction) * length
            matched[way_id].append((a, b))
            out.matched_m += b - a
            truth = road.truth.get(way_id, [])
            tolerant = [(lo - END_TOLERANCE_M, hi + END_TOLERANCE_M) for lo, hi in truth]
            right = _overlap(a, b, tolerant)
            out.correct_m += right
            lost += b - a - right
            if not truth:
                if road.truth:
                    out.wrong_way_m += b - a - right
                else:
                    out.absent_road_m += b - a - right
                continue
            extent = [(min(lo for lo, _ in tolerant), max(hi for _, hi in tolerant))]
            inside = _overlap(a, b, extent) - right
            out.inside_m += inside
            out.past_ends_m += b - a - right - inside
        for way_id, ranges in road.truth.items():
            tolerant = [(a - END_TOLERANCE_M, b + END_TOLERANCE_M) for a, b in matched[way_id]]
            for lo, hi in ranges:
                out.truth_m += hi - lo
                recalled = _overlap(lo, hi, tolerant)
                out.recalled_m += recalled
                lost += hi - lo - recalled
                if answer.status == "unmatched":
                    out.missed_unmatched_m += hi - lo - recalled
                else:
                    out.missed_gaps_m += hi - lo - recalled
        out.worst.append((lost, seed, number, road.status, answer.status))
        out.roads += 1
        out.status_same += road.status == answer.status
        out.confusion[(road.status, answer.status)] += 1
        if road.status == "unmatched":
            out.absent += 1
            out.absent_matched += answer.status != "unmatched"
    return out


def _absent_far(
    roads: list[Road], answers: list[RoadAnswer], network: RoadNetwork, release: Release
) -> tuple[int, int]:
    """Of the roads absent by their ids, those whose points lie more than 10 m (median) from
    every reference road, and how many of those were matched: most roads absent by id were
    only re-created under new ids where they were."""
    segments = shapely.from_wkb(release.table("segments").column("geometry").to_numpy(False))
    tree = shapely.STRtree(network.projection.project(segments))
    far = matched = 0
    for road, answer in zip(roads, answers, strict=True):
        if road.status != "unmatched":
            continue
        line = network.projection.project(np.asarray([road.line], dtype=object))[0]
        points = shapely.points(shapely.get_coordinates(shapely.segmentize(line, 5.0)))
        _, distance = tree.query_nearest(points, return_distance=True, all_matches=False)
        if float(np.median(distance)) > REDRAWN_M:
            far += 1
            matched += answer.status != "unmatched"
    return far, matched


def _every_road(roads: list[Road], rows: list[int], answers: list[RoadAnswer]) -> list[RoadAnswer]:
    """An answer per road: one the engine rejected (its error report row) matched nothing."""
    by_row = dict(zip(rows, answers, strict=True))
    return [
        by_row.get(k)
        or RoadAnswer(
            status="unmatched",
            confidence=0.0,
            matched_ratio=0.0,
            length_m=road.length_m,
            segments=(),
        )
        for k, road in enumerate(roads)
    ]


def _breakdown(result: Score) -> Table:
    """Where precision and recall are lost, in metres and as a share of all matched metres."""
    table = Table(title="lost length by kind")
    for column in ("kind", "metres", "share"):
        table.add_column(column, justify="right")
    rows = (
        ("precision: past the input's ends", result.past_ends_m, result.matched_m),
        ("precision: inside (piece counted whole)", result.inside_m, result.matched_m),
        ("precision: another road beside", result.wrong_way_m, result.matched_m),
        ("precision: road absent from reference", result.absent_road_m, result.matched_m),
        ("recall: road answered unmatched", result.missed_unmatched_m, result.truth_m),
        ("recall: gaps in matched roads", result.missed_gaps_m, result.truth_m),
    )
    for kind, metres, total in rows:
        table.add_row(kind, f"{metres:,.0f}", f"{metres / max(total, 1e-9):.3f}")
    return table


def _records(roads: list[Road], left_out: set[str]) -> pa.Table:
    """The test roads as ``road_match`` records, less the columns a customer would lack."""
    records = pa.table(
        {
            "_ordinal": pa.array(np.arange(1, len(roads) + 1), pa.int64()),
            "recId": pa.array([str(i) for i in range(len(roads))], pa.string()),
            "name": pa.array([r.name for r in roads], pa.string()),
            "oneway": pa.array([r.oneway for r in roads], pa.int8()),
            "layer": pa.array([r.layer for r in roads], pa.int8()),
            "tunnel": pa.array([r.tunnel for r in roads], pa.bool_()),
            "bridge": pa.array([r.bridge for r in roads], pa.bool_()),
            "geometry": pa.array(shapely.to_wkb(np.asarray([r.line for r in roads]))),
        }
    )
    return records.drop_columns(sorted(left_out))


def _row(label: str, result: Score, km: float, far: int, far_matched: int) -> list[str]:
    return [
        label,
        str(result.roads),
        f"{km:.1f}",
        f"{result.correct_m / max(result.matched_m, 1e-9):.3f}",
        f"{result.recalled_m / max(result.truth_m, 1e-9):.3f}",
        f"{result.status_same / max(result.roads, 1):.3f}",
        f"{result.absent_matched}/{result.absent}",
        f"{far_matched}/{far}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, default=SHARED_DATA / "osm" / "monaco-2012.osm.gz")
    parser.add_argument("--new", type=Path, default=SHARED_DATA / "osm" / "monaco.osm.pbf")
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[2012], help="one or more; several are pooled"
    )
    parser.add_argument("--worst", type=int, default=0, help="list the N roads losing most")
    parser.add_argument(
        "--without",
        action="append",
        choices=sorted(WITHOUT),
        default=[],
        help="leave a column out of the records, as a customer without it would",
    )
    args = parser.parse_args()
    data_or_exit(args.old, args.new)
    console = Console()
    old = read_ways(args.old)
    new_osm = read_ways(args.new)
    left_out = {column for name in args.without for column in WITHOUT[name]}
    rows: list[list[str]] = []
    pooled, km, far, far_matched, seconds = Score(), 0.0, 0, 0, 0.0
    rejected, codes = 0, set()
    with temporary_release(args.new) as release:
        network = network_for(release)
        old_nodes = {ref for way in old.values() for ref in way.refs}
        new = index_new(new_osm, old_nodes, network, release.table("segments"))
        truth = {way_id: truth_of_edges(way, new, network) for way_id, way in old.items()}
        for seed in args.seed:
            roads = perturbed_roads(old, truth, network, seed)
            started = time.perf_counter()
            batch = match_records(_records(roads, left_out), network, params_of(RoadMatchOptions()))
            seconds += time.perf_counter() - started
            rejected += batch.errors.num_rows
            codes |= set(batch.errors.column("code").to_pylist())
            answers = _every_road(roads, batch.rows.tolist(), batch.answers)
            result = score(roads, answers, new, network, seed)
            seed_far, seed_far_matched = _absent_far(roads, answers, network, release)
            seed_km = sum(r.length_m for r in roads) / 1000
            rows.append(_row(str(seed), result, seed_km, seed_far, seed_far_matched))
            pooled.add(result)
            km, far, far_matched = km + seed_km, far + seed_far, far_matched + seed_far_matched
    if len(args.seed) > 1:
        rows.append(_row("all", pooled, km, far, far_matched))
    without = f", without {' and '.join(sorted(set(args.without)))}" if args.without else ""
    table = Table(title=f"{args.old.name} onto {release.manifest.id}{without}")
    columns = ("seed", "roads", "km", "precision", "recall", "status agreement", "absent matched")
    for column in (*columns, "of them > 10 m away"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    confusion = Table(title="status: truth (rows) against answer (columns)")
    confusion.add_column("truth")
    names = ("full", "partial", "unmatched")
    for name in names:
        confusion.add_column(name, justify="right")
    for truth_status in names:
        confusion.add_row(truth_status, *(str(pooled.confusion[(truth_status, a)]) for a in names))
    console.print(confusion)
    console.print(_breakdown(pooled))
    for lost, seed, number, truth_status, answer_status in sorted(pooled.worst)[::-1][: args.worst]:
        console.print(
            f"seed {seed}, road {number}: {lost:.0f} m lost, truth {truth_status}, {answer_status}"
        )
    console.print(
        f"matched in {seconds:.2f} s; {rejected} roads rejected ({', '.join(sorted(codes))})"
    )


if __name__ == "__main__":
    main()
