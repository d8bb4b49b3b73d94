"""Road matching on real data: Washington DC city GIS and Census TIGER roads onto OpenStreetMap.

Run with ``.venv/bin/python evals/roadmatch_dc.py [--sample N]``.

The three datasets of ``../shared/data/dc-roads`` cover one area of Washington DC. The OSM one
is imported as a release (OSM XML, as ``geobatch releases import`` does); each way of the city
GIS and of TIGER is then a road record matched onto it, with and without names. There is no
ground truth, so the script prints what a reviewer checks: the fully / partially / unmatched
shares, a sample of matches to inspect (input name → reference segments and their names) and,
as a proxy for correctness, how often the name of the reference segment covering most of a
matched road agrees with the input's name (abbreviations spelled out: ``G ST NW`` = ``G Street
Northwest``). Roads the OSM extract lacks (its footways, ramps cut at the edge) are expected
among the unmatched.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import shapely
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from roadmatch_data import (
    EARTH_M_PER_DEG,
    OsmRoads,
    data_or_exit,
    main_segment,
    names_agree,
    osm_roads,
    temporary_release,
)

from geobatch.engines.roadmatch import MatchParams, RoadNetwork, network_for
from geobatch.engines.roadmatch.chunk import BatchMatch, match_records
from geobatch.engines.roadmatch.output import RoadAnswer
from geobatch.reference import Release

INPUTS = {"city GIS": "DcGisRoads.osm", "TIGER": "DcTigerRoads.osm"}


def _segment_names(release: Release) -> dict[str, str]:
    segments = release.table("segments").select(["id", "name"])
    return {
        sid: name or ""
        for sid, name in zip(
            segments.column("id").to_pylist(), segments.column("name").to_pylist(), strict=True
        )
    }


def _coverage(roads: OsmRoads, release: Release, radius_m: float) -> float:
    """Share of the input roads' length within ``radius_m`` of any reference segment: the
    most a matcher could match (roads the OSM extract lacks cannot be)."""
    segments = shapely.from_wkb(release.table("segments").column("geometry").to_numpy(False))
    lat = float(np.mean(shapely.get_coordinates(segments)[:, 1]))
    scale = np.array([np.cos(np.radians(lat)) * EARTH_M_PER_DEG, EARTH_M_PER_DEG])
    area = shapely.union_all(
        shapely.buffer(shapely.transform(segments, lambda xy: xy * scale), radius_m)
    )
    lines = shapely.transform(np.asarray(roads.lines), lambda xy: xy * scale)
    return float(
        shapely.length(shapely.intersection(lines, area)).sum() / shapely.length(lines).sum()
    )


def _name_agreement(roads: OsmRoads, batch: BatchMatch, names: dict[str, str]) -> tuple[int, int]:
    """(roads whose main segment's name agrees, roads where both sides have a name)."""
    agree = both = 0
    for row, answer in zip(batch.rows, batch.answers, strict=True):
        mine = roads.names[row]
        segment = main_segment(answer)
        theirs = names.get(segment or "", "")
        if answer.status == "unmatched" or not mine or not theirs:
            continue
        both += 1
        agree += names_agree(mine, theirs)
    return agree, both


def _row(
    label: str,
    roads: OsmRoads,
    batch: BatchMatch,
    names: dict[str, str],
    seconds: float,
    coverage: float,
) -> list[str]:
    statuses = Counter(answer.status for answer in batch.answers)
    total = max(len(batch.answers), 1)
    agree, both = _name_agreement(roads, batch, names)
    km = sum(answer.length_m for answer in batch.answers) / 1000
    matched = sum(a.matched_ratio * a.length_m for a in batch.answers) / 1000
    confidence = [a.confidence for a in batch.answers if a.status != "unmatched"]
    return [
        label,
        str(len(roads.ids)),
        str(batch.errors.num_rows),
        f"{km:.1f}",
        f"{coverage:.3f}",
        f"{matched / km:.3f}" if km else "-",
        f"{statuses['full'] / total:.3f}",
        f"{statuses['partial'] / total:.3f}",
        f"{statuses['unmatched'] / total:.3f}",
        f"{np.mean(confidence):.1f}" if confidence else "-",
        f"{agree}/{both} = {agree / both:.3f}" if both else "-",
        f"{len(roads.ids) / seconds:,.0f}",
    ]


def _show(
    console: Console,
    title: str,
    roads: OsmRoads,
    picks: list[tuple[int, RoadAnswer]],
    names: dict[str, str],
) -> None:
    table = Table(title=title)
    for column in ("input id", "input name", "status", "conf", "ratio", "segments → names"):
        table.add_column(column)
    for row, answer in picks:
        shown = [f"{s.segment_id} ({names.get(s.segment_id) or '-'})" for s in answer.segments[:3]]
        more = f" +{len(answer.segments) - 3}" if len(answer.segments) > 3 else ""
        table.add_row(
            roads.ids[row],
            roads.names[row] or "-",
            answer.status,
            f"{answer.confidence:.0f}",
            f"{answer.matched_ratio:.2f}",
            "; ".join(shown) + more or "-",
        )
    console.print(table)


def _samples(
    console: Console,
    label: str,
    roads: OsmRoads,
    batch: BatchMatch,
    names: dict[str, str],
    size: int,
) -> None:
    """Every n-th matched road, then the matched roads whose names disagree."""
    matched = [
        (int(row), answer)
        for row, answer in zip(batch.rows, batch.answers, strict=True)
        if answer.status != "unmatched"
    ]
    step = max(len(matched) // size, 1)
    _show(console, f"{label}: every {step}th matched road", roads, matched[::step][:size], names)
    disagree = [
        (row, answer)
        for row, answer in matched
        if roads.names[row]
        and names.get(main_segment(answer) or "")
        and not names_agree(str(roads.names[row]), names[main_segment(answer) or ""])
    ]
    _show(console, f"{label}: matched roads whose names disagree", roads, disagree[:size], names)


def _match(roads: OsmRoads, network: RoadNetwork, params: MatchParams) -> tuple[BatchMatch, float]:
    records = roads.records()
    started = time.perf_counter()
    batch = match_records(records, network, params)
    return batch, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=8, help="matches shown per input")
    args = parser.parse_args()
    data = data_or_exit(*(f"dc-roads/{name}" for name in [*INPUTS.values(), "DcOsmRoads.osm"]))
    console = Console(width=200)
    with temporary_release(data / "dc-roads" / "DcOsmRoads.osm") as release:
        network = network_for(release)
        names = _segment_names(release)
        console.print(
            f"reference: {release.manifest.id}, {len(names)} segments (OSM roads of the area)"
        )
        summary = Table(title="DC roads matched onto OSM")
        for column in (
            "input",
            "roads",
            "rejected",
            "km",
            "length near OSM",
            "length matched",
            "full",
            "partial",
            "unmatched",
            "mean conf (matched)",
            "name agrees",
            "roads/s",
        ):
            summary.add_column(column, justify="right")
        samples = []
        for label, file_name in INPUTS.items():
            roads = osm_roads(data / "dc-roads" / file_name)
            coverage = _coverage(roads, release, MatchParams().search_radius_m)
            for use_names in (True, False):
                batch, seconds = _match(roads, network, MatchParams(use_names=use_names))
                tag = f"{label}{'' if use_names else ' (no names)'}"
                summary.add_row(*_row(tag, roads, batch, names, seconds, coverage))
                if use_names:
                    samples.append((label, roads, batch))
        console.print(summary)
        for label, roads, batch in samples:
            _samples(console, label, roads, batch, names, args.sample)


if __name__ == "__main__":
    main()
