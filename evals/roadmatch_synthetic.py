"""Synthetic evaluation of road matching with known answers.

Run with ``.venv/bin/python evals/roadmatch_synthetic.py [--releases DIR] [--seed N]``.

The reference roads of a release (each OSM way, i.e. its segments end to end) are perturbed
the ways customer datasets differ from the reference, matched back, and compared with the
segments and ranges they came from. Per perturbation kind it prints precision and recall of
the matched segment ids and of the matched length (segment metres inside the true ranges),
and the fully / partially / un-matched shares:

- ``exact``: the way itself;
- ``offset``: shifted sideways by 2-10 m (either side);
- ``offset, no name/oneway``: the same without the attributes below;
- ``noise``: resampled every 10 m with 2 m Gaussian noise on every vertex;
- ``resample``: simplified (3 m tolerance) and resampled at a random 5-40 m step;
- ``split``: cut at a random point into two roads, each with its own truth range;
- ``merge``: chains of two or three ways meeting end to end, as one road;
- ``combined``: offset, noise and a split together;
- ``dropped``: 10% of the ways removed from the network and their offset copies matched; the
  truth is "no match", so precision is 0 by construction and the status shares are what to
  read (what still matches is mostly a parallel road or the other carriageway). A line under
  the table gives the same for the copies lying (median) more than 10 m from every remaining
  road: one nearer lies on that road by the tolerance of ``roadmatch_versions.py``'s truth.

Test roads carry their way's name and oneway flag, as customer datasets usually do. A truth
range shorter than the engine reports (``MatchParams.min_piece_m``, or a quarter of a short
road) is not expected back.

Releases: the default Helsinki one always, Monaco and Andorra when ``../shared/data/osm`` is
present; they are built into ``--releases`` (a temporary folder by default).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely
from rich.console import Console
from rich.table import Table
from shapely import ops

from geobatch.engines.roadmatch import MatchParams, RoadMatch, RoadNetwork, match_lines
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm

SHARED_OSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm"
EXTRACTS = ("monaco", "andorra")
AWAY_M = 10.0


@dataclass(frozen=True, kw_only=True)
class Truth:
    """Where a test road truly lies: segment index -> (from, to) metres along the segment."""

    ranges: dict[int, tuple[float, float]]


@dataclass(frozen=True, kw_only=True)
class Case:
    """Test roads in lon/lat with their names and truths."""

    lines: list[shapely.LineString]
    names: list[str | None] | None
    oneway: list[int] | None
    truths: list[Truth]
    away: list[bool] = field(default_factory=list)  # dropped: more than AWAY_M from the rest


@dataclass(frozen=True, kw_only=True)
class Way:
    """One reference way in local metres: its segments in order and their spans along it."""

    metric: shapely.LineString
    segments: np.ndarray
    starts: np.ndarray  # metres along the way where each segment begins
    name: str | None
    oneway: int  # the way's traffic direction along its digitisation, 0 both ways


def ways_of(network: RoadNetwork, segments: pa.Table) -> list[Way]:
    """The release's ways, rebuilt from their segments (``osm:way/1:0``, ``:1`` ... in order)."""
    ids = segments.column("id").to_pylist()
    source = segments.column("source_id").to_pylist()
    piece = [int(i.rsplit(":", 1)[1]) if i.count(":") > 1 else 0 for i in ids]
    order = sorted(range(len(ids)), key=lambda k: (source[k], piece[k]))
    metric = network.projection.project(
        shapely.from_wkb(segments.column("geometry").to_numpy(zero_copy_only=False))
    )
    names = segments.column("name").to_pylist()
    oneway = segments.column("oneway").to_pylist()
    ways: list[Way] = []
    k = 0
    while k < len(order):
        run = [order[k]]
        while k + len(run) < len(order) and source[order[k + len(run)]] == source[order[k]]:
            run.append(order[k + len(run)])
        k += len(run)
        coords = [shapely.get_coordinates(metric[s]) for s in run]
        if any(len(c) < 2 for c in coords):
            continue
        joined = coords[0]
        for c in coords[1:]:
            if np.allclose(joined[-1], c[0], atol=1e-3):
                joined = np.vstack([joined, c[1:]])
            else:
                joined = np.empty((0, 2))
                break
        if len(joined) < 2:
            continue
        lengths = network.length_m[run]
        ways.append(
            Way(
                metric=shapely.LineString(joined),
                segments=np.asarray(run),
                starts=np.cumsum(lengths) - lengths,
                name=names[run[0]],
                oneway=int(oneway[run[0]]),
            )
        )
    return ways


def truth_between(way: Way, network: RoadNetwork, lo: float, hi: float) -> Truth:
    """Segment ranges of the way between chainages ``lo`` and ``hi`` (metres)."""
    ranges: dict[int, tuple[float, float]] = {}
    for seg, start in zip(way.segments.tolist(), way.starts.tolist(), strict=True):
        length = float(network.length_m[seg])
        a, b = max(lo - start, 0.0), min(hi - start, length)
        # Covers shorter than the engine reports (see ``min_piece_m``) are not expected back.
        smallest = min(MatchParams().min_piece_m, 0.25 * (hi - lo))
        if b - a >= smallest or (a <= 0.0 and b >= length):
            ranges[seg] = (a, b)
    return Truth(ranges=ranges)


def whole(way: Way, network: RoadNetwork) -> Truth:
    return truth_between(way, network, 0.0, float(way.metric.length))


def offset(line: shapely.LineString, rng: np.random.Generator) -> shapely.LineString:
    distance = rng.uniform(2.0, 10.0) * rng.choice([-1.0, 1.0])
    moved = shapely.offset_curve(line, distance, join_style="round")
    if moved.is_empty or moved.geom_type != "LineString" or len(moved.coords) < 2:
        return line
    # GEOS keeps the direction for both sides since 3.11; keep the input's direction anyway.
    start = shapely.get_coordinates(line)[0]
    coords = shapely.get_coordinates(moved)
    if np.hypot(*(coords[-1] - start)) < np.hypot(*(coords[0] - start)):
        coords = coords[::-1]
    return shapely.LineString(coords)


def noise(line: shapely.LineString, rng: np.random.Generator) -> shapely.LineString:
    steps = max(int(line.length // 10.0), 1)
    pts = shapely.get_coordinates(
        shapely.line_interpolate_point(line, np.linspace(0.0, line.length, steps + 1))
    )
    return shapely.LineString(pts + rng.normal(0.0, 2.0, pts.shape))


def resampled(line: shapely.LineString, rng: np.random.Generator) -> shapely.LineString:
    simple = shapely.simplify(line, 3.0)
    step = rng.uniform(5.0, 40.0)
    count = max(int(simple.length // step), 1)
    return shapely.LineString(
        shapely.get_coordinates(
            shapely.line_interpolate_point(simple, np.linspace(0.0, simple.length, count + 1))
        )
    )


def _piece(line: shapely.LineString, lo: float, hi: float) -> shapely.LineString:
    return ops.substring(line, lo, hi)


def build_cases(
    network: RoadNetwork, ways: list[Way], rng: np.random.Generator
) -> dict[str, tuple[Case, RoadNetwork]]:
    """Every perturbation kind's test roads, with the network to match them against."""

    def single(perturb: Callable[[shapely.LineString], shapely.LineString]) -> Case:
        return Case(
            lines=[perturb(w.metric) for w in ways],
            names=[w.name for w in ways],
            oneway=[w.oneway for w in ways],
            truths=[whole(w, network) for w in ways],
        )

    cases: dict[str, Case] = {
        "exact": single(lambda g: g),
        "offset": single(lambda g: offset(g, rng)),
    }
    bare = cases["offset"]
    cases["offset, no name/oneway"] = Case(
        lines=[offset(w.metric, rng) for w in ways], names=None, oneway=None, truths=bare.truths
    )
    cases |= {
        "noise": single(lambda g: noise(g, rng)),
        "resample": single(lambda g: resampled(g, rng)),
    }

    split_lines, split_names, split_truths, split_oneway = [], [], [], []
    combined_lines, combined_names, combined_truths = [], [], []
    for w in ways:
        length = float(w.metric.length)
        cut = rng.uniform(0.3, 0.7) * length
        for lo, hi in ((0.0, cut), (cut, length)):
            part = _piece(w.metric, lo, hi)
            split_lines.append(part)
            split_names.append(w.name)
            split_oneway.append(w.oneway)
            split_truths.append(truth_between(w, network, lo, hi))
            combined_lines.append(noise(offset(part, rng), rng))
            combined_names.append(w.name)
            combined_truths.append(truth_between(w, network, lo, hi))
    cases["split"] = Case(
        lines=split_lines, names=split_names, oneway=split_oneway, truths=split_truths
    )

    merge_lines, merge_names, merge_truths, merge_oneway = [], [], [], []
    by_start: dict[tuple[float, float], list[int]] = {}
    for k, w in enumerate(ways):
        x, y = shapely.get_coordinates(w.metric)[0]
        by_start.setdefault((round(x, 1), round(y, 1)), []).append(k)
    used: set[int] = set()
    for k, w in enumerate(ways):
        if k in used:
            continue
        chain, coords = [k], shapely.get_coordinates(w.metric)
        while len(chain) < 3:
            x, y = coords[-1]
            following = [j for j in by_start.get((round(x, 1), round(y, 1)), []) if j not in used]
            following = [j for j in following if j not in chain]
            if not following:
                break
            nxt = following[0]
            chain.append(nxt)
            coords = np.vstack([coords, shapely.get_coordinates(ways[nxt].metric)[1:]])
        if len(chain) < 2:
            continue
        used.update(chain)
        ranges: dict[int, tuple[float, float]] = {}
        for j in chain:
            ranges.update(whole(ways[j], network).ranges)
        merge_lines.append(shapely.LineString(coords))
        merge_names.append(w.name)
        merge_oneway.append(w.oneway if all(ways[j].oneway == w.oneway for j in chain) else 0)
        merge_truths.append(Truth(ranges=ranges))
    cases["merge"] = Case(
        lines=merge_lines, names=merge_names, oneway=merge_oneway, truths=merge_truths
    )
    cases["combined"] = Case(
        lines=combined_lines, names=combined_names, oneway=split_oneway, truths=combined_truths
    )

    return {kind: (case, network) for kind, case in cases.items()}


def dropped_case(
    release: Release, network: RoadNetwork, ways: list[Way], rng: np.random.Generator
) -> tuple[Case, RoadNetwork]:
    """Offset copies of 10% of the ways, against a network without them."""
    chosen = rng.choice(len(ways), size=max(len(ways) // 10, 1), replace=False)
    gone = np.concatenate([ways[k].segments for k in chosen])
    segments = release.table("segments")
    keep = np.ones(segments.num_rows, dtype=bool)
    keep[gone] = False
    reduced = RoadNetwork.from_tables(
        segments.filter(pa.array(keep)), release.table("connectors").sort_by("node")
    )
    lines = [offset(ways[k].metric, rng) for k in chosen]
    dropped = set(chosen.tolist())
    rest = shapely.STRtree([way.metric for k, way in enumerate(ways) if k not in dropped])
    away = []
    for line in lines:
        points = shapely.points(shapely.get_coordinates(shapely.segmentize(line, 5.0)))
        _, distance = rest.query_nearest(points, return_distance=True, all_matches=False)
        away.append(float(np.median(distance)) > AWAY_M)
    return (
        Case(
            lines=lines,
            names=[ways[k].name for k in chosen],
            oneway=[ways[k].oneway for k in chosen],
            truths=[Truth(ranges={})] * len(lines),
            away=away,
        ),
        reduced,
    )


@dataclass
class Score:
    """Sums over a case's roads."""

    roads: int = 0
    km: float = 0.0
    seconds: float = 0.0
    ids_matched: int = 0
    ids_true: int = 0
    ids_hit: int = 0
    m_matched: float = 0.0
    m_true: float = 0.0
    m_hit: float = 0.0
    full: int = 0
    partial: int = 0
    unmatched: int = 0
    away: int = 0  # dropped roads far from every remaining road, and how many of them matched
    away_matched: int = 0

    def add(
        self, match: RoadMatch, truth: Truth, index_of: dict[str, int], lengths: np.ndarray
    ) -> None:
        self.roads += 1
        self.km += match.length_m / 1000.0
        if match.status == "full":
            self.full += 1
        elif match.status == "partial":
            self.partial += 1
        else:
            self.unmatched += 1
        self.ids_true += len(truth.ranges)
        self.m_true += sum(b - a for a, b in truth.ranges.values())
        for seg in match.segments:
            k = index_of[seg.segment_id]
            lo, hi = seg.from_fraction * lengths[k], seg.to_fraction * lengths[k]
            self.ids_matched += 1
            self.m_matched += hi - lo
            if k in truth.ranges:
                self.ids_hit += 1
                a, b = truth.ranges[k]
                self.m_hit += max(0.0, min(b, hi) - max(a, lo))


def evaluate(case: Case, network: RoadNetwork, params: MatchParams) -> Score:
    projection = network.projection
    lonlat = shapely.transform(
        np.asarray(case.lines, dtype=object),
        lambda xy: np.column_stack(projection.inverse(xy[:, 0], xy[:, 1])),
    )
    started = time.perf_counter()
    matches = match_lines(list(lonlat), case.names, network, params, oneway=case.oneway)
    seconds = time.perf_counter() - started
    index_of = {sid: k for k, sid in enumerate(network.segment_ids.tolist())}
    score = Score(seconds=seconds)
    for match, truth in zip(matches, case.truths, strict=True):
        score.add(match, truth, index_of, network.length_m)
    for match, away in zip(matches, case.away, strict=False):
        score.away += away
        score.away_matched += away and match.status != "unmatched"
    return score


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "-"


def releases(root: Path) -> list[Release]:
    store = ReleaseStore(root)
    found = [store.load(ensure_default_release(store).id)]
    for name in EXTRACTS:
        pbf = SHARED_OSM / f"{name}.osm.pbf"
        if not pbf.is_file():
            continue
        existing = [m for m in store.list() if m.name == f"osm-{name}" or name in m.id]
        manifest = existing[0] if existing else import_osm(pbf, store, gazetteer=False)
        found.append(store.load(manifest.id))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=Path, help="release folder to build into and reuse")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console(width=160)
    params = MatchParams()
    with tempfile.TemporaryDirectory(prefix="geobatch-eval-") as scratch:
        root = args.releases or Path(scratch)
        table = Table(title=f"road matching against perturbed reference roads (seed {args.seed})")
        notes: list[str] = []
        for column in (
            "release",
            "kind",
            "roads",
            "km",
            "id P",
            "id R",
            "len P",
            "len R",
            "full",
            "partial",
            "unmatched",
            "roads/s",
            "km/s",
        ):
            table.add_column(column, justify="left" if column in ("release", "kind") else "right")
        for release in releases(root):
            network = RoadNetwork.from_release(release)
            ways = ways_of(network, release.table("segments"))
            rng = np.random.default_rng(args.seed)
            cases = build_cases(network, ways, rng)
            cases["dropped"] = dropped_case(release, network, ways, rng)
            for kind, (case, against) in cases.items():
                s = evaluate(case, against, params)
                if s.away:
                    notes.append(
                        f"{release.manifest.name}, dropped: of the {s.away} roads more than "
                        f"{AWAY_M:.0f} m (median) from every remaining road, "
                        f"{s.away_matched} matched ({s.away_matched / s.away:.3f})"
                    )
                table.add_row(
                    release.manifest.name,
                    kind,
                    str(s.roads),
                    f"{s.km:.1f}",
                    _ratio(s.ids_hit, s.ids_matched),
                    _ratio(s.ids_hit, s.ids_true),
                    _ratio(s.m_hit, s.m_matched),
                    _ratio(s.m_hit, s.m_true),
                    _ratio(s.full, s.roads),
                    _ratio(s.partial, s.roads),
                    _ratio(s.unmatched, s.roads),
                    f"{s.roads / s.seconds:.0f}",
                    f"{s.km / s.seconds:.0f}",
                )
        console.print(table)
        for note in notes:
            console.print(note)


if __name__ == "__main__":
    main()
