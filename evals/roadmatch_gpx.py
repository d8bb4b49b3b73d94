"""Road matching of real GPS tracks: the GPX files of ``../shared/data/gpx`` onto OSM.

Run with ``.venv/bin/python evals/roadmatch_gpx.py``.

Each track is matched as a GPS trace (``input_kind=traces``: its fixes grouped into one line in
time order, as the single-shot endpoint does with Point features) against a release built from
the OSM data of its area: the Andorra extract for the Andorra track, and the small OSM XML
areas that come with the other two. Printed per track and search radius: the matched share of
its length, the confidence, how many reference segments the path uses, and how far the track's
fixes lie from the matched path (mean, 95th percentile, share within 20 m), the usual check of
a map matcher when no ground-truth route is known.
"""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely
from rich.console import Console
from rich.table import Table
from shapely import ops

sys.path.insert(0, str(Path(__file__).resolve().parent))

from roadmatch_data import EARTH_M_PER_DEG, data_or_exit, temporary_release

from geobatch.engines.roadmatch import MatchParams, network_for
from geobatch.engines.roadmatch.chunk import match_records
from geobatch.engines.roadmatch.inputs import traces_from_points
from geobatch.engines.roadmatch.output import RoadAnswer
from geobatch.reference import Release

TRACKS = {
    "andorra_for_map_matching.gpx": "osm/andorra.osm.pbf",
    "issue-13.gpx": "osm/map-issue13.osm.gz",
    "issue-70.gpx": "osm/issue-70.osm.gz",
}
RADII_M = (30.0, 50.0)


def read_gpx(path: Path) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(lons, lats, timestamps) of every track point, in file order."""
    lons, lats, times = [], [], []
    for element in ET.parse(path).getroot().iter():
        if element.tag.rsplit("}", 1)[-1] != "trkpt":
            continue
        lons.append(float(element.attrib["lon"]))
        lats.append(float(element.attrib["lat"]))
        stamp = next((c.text for c in element if c.tag.rsplit("}", 1)[-1] == "time"), None)
        times.append(stamp)
    return np.asarray(lons), np.asarray(lats), times


def path_names(answer: RoadAnswer, release: Release) -> str:
    """The names along the matched path, each once, in order: what a reviewer checks first."""
    segments = release.table("segments").select(["id", "name"])
    names = dict(zip(segments["id"].to_pylist(), segments["name"].to_pylist(), strict=True))
    seen: dict[str, None] = {}
    for segment in answer.segments:
        seen.setdefault(names.get(segment.segment_id) or "(unnamed)", None)
    return " → ".join(seen)


def matched_path(answer: RoadAnswer, release: Release) -> shapely.MultiLineString:
    """The covered ranges of the matched reference segments, as one geometry."""
    segments = release.table("segments").select(["id", "geometry"])
    wanted = {s.segment_id for s in answer.segments}
    ids = segments.column("id").to_pylist()
    rows = [i for i, sid in enumerate(ids) if sid in wanted]
    shapes = dict(
        zip(
            [ids[i] for i in rows],
            shapely.from_wkb(segments.column("geometry").take(pa.array(rows)).to_numpy(False)),
            strict=True,
        )
    )
    pieces = []
    for segment in answer.segments:
        low, high = sorted((segment.from_fraction, segment.to_fraction))
        piece = ops.substring(shapes[segment.segment_id], low, high, normalized=True)
        if piece.geom_type == "LineString":
            pieces.append(piece)
    return shapely.MultiLineString(pieces)


def distances_m(lons: np.ndarray, lats: np.ndarray, path: shapely.Geometry) -> np.ndarray:
    """Each fix's distance to the path, in metres (local equirectangular projection)."""
    scale = np.cos(np.radians(float(np.mean(lats))))

    def metric(coords: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = coords * np.array([scale, 1.0]) * EARTH_M_PER_DEG
        return scaled

    points = shapely.points(metric(np.column_stack([lons, lats])))
    far: np.ndarray = shapely.distance(points, shapely.transform(path, metric))
    return far


def main() -> None:
    data = data_or_exit(*(f"gpx/{name}" for name in TRACKS), *TRACKS.values())
    console = Console(width=220)
    table = Table(title="GPS tracks matched as traces onto OSM")
    for column in (
        "track",
        "fixes",
        "km",
        "radius m",
        "status",
        "matched ratio",
        "confidence",
        "segments",
        "mean dist m",
        "p95 dist m",
        "within 20 m",
        "ms",
        "path",
    ):
        table.add_column(column, justify="right")
    for track, osm in TRACKS.items():
        lons, lats, times = read_gpx(data / "gpx" / track)
        ((trace_id, line),) = traces_from_points([track] * len(lons), lons, lats, times)
        records = pa.table(
            {
                "_ordinal": pa.array([1], pa.int64()),
                "recId": [trace_id],
                "id": [trace_id],
                "geometry": pa.array([shapely.to_wkb(line)], pa.binary()),
            }
        )
        with temporary_release(data / osm) as release:
            network = network_for(release)
            for radius in RADII_M:
                params = MatchParams(search_radius_m=radius, use_names=False)
                started = time.perf_counter()
                batch = match_records(records, network, params, traces=True)
                elapsed = time.perf_counter() - started
                if not batch.answers:
                    code = batch.errors.column("code")[0].as_py()
                    table.add_row(track, str(len(lons)), "-", f"{radius:.0f}", code)
                    continue
                answer = batch.answers[0]
                path = matched_path(answer, release)
                far = distances_m(lons, lats, path) if answer.segments else np.full(1, np.nan)
                table.add_row(
                    track,
                    str(len(lons)),
                    f"{answer.length_m / 1000:.2f}",
                    f"{radius:.0f}",
                    answer.status,
                    f"{answer.matched_ratio:.3f}",
                    f"{answer.confidence:.0f}",
                    str(len(answer.segments)),
                    f"{np.mean(far):.1f}",
                    f"{np.percentile(far, 95):.1f}",
                    f"{np.mean(far <= 20):.3f}",
                    f"{elapsed * 1000:.0f}",
                    path_names(answer, release),
                )
    console.print(table)


if __name__ == "__main__":
    main()
