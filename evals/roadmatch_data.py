"""Shared pieces of the road matching evaluations: the shared data, OSM ways as road records,
temporary releases and a few measures of a match.

The data lives outside the project (``../shared/data``, see its SOURCES.md); every evaluation
prints one line and exits 0 when it is absent.
"""

from __future__ import annotations

import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import osmium
import pyarrow as pa
import shapely
from rapidfuzz import fuzz

from geobatch.engines.roadmatch.output import RoadAnswer
from geobatch.reference import Release, ReleaseStore, import_osm

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EARTH_M_PER_DEG = 111_320.0


def data_or_exit(*needed: str | Path) -> Path:
    """The shared data folder, or exit 0 with a note when a needed file is missing: a name
    (``str``) is inside the shared data folder, a ``Path`` is taken as given."""
    for name in needed:
        path = name if isinstance(name, Path) else SHARED_DATA / name
        if not path.is_file():
            print(f"skipped: {path} is absent (shared test data not installed)")
            sys.exit(0)
    return SHARED_DATA


@contextmanager
def temporary_release(source: Path) -> Iterator[Release]:
    """A release built from ``source`` (PBF or OSM XML, sorted or not) in a temporary store."""
    with tempfile.TemporaryDirectory(prefix="geobatch-eval-") as folder:
        store = ReleaseStore(Path(folder) / "releases")
        path = _sorted_copy(source, Path(folder))
        manifest = import_osm(path, store, gazetteer=False)
        yield store.load(manifest.id)


def _sorted_copy(source: Path, folder: Path) -> Path:
    """OSM files from editors are often not sorted by type and id; osmium needs them sorted."""
    nodes: list[tuple[int, osmium.osm.mutable.Node]] = []
    ways: list[tuple[int, osmium.osm.mutable.Way]] = []
    relations: list[tuple[int, osmium.osm.mutable.Relation]] = []
    for obj in osmium.FileProcessor(str(source)):
        if isinstance(obj, osmium.osm.Node):
            copy = osmium.osm.mutable.Node(
                id=obj.id,
                location=(obj.lon, obj.lat),
                tags={tag.k: tag.v for tag in obj.tags},
                timestamp=obj.timestamp,
                version=1,
            )
            nodes.append((obj.id, copy))
        elif isinstance(obj, osmium.osm.Way):
            way = osmium.osm.mutable.Way(
                id=obj.id,
                nodes=[node.ref for node in obj.nodes],
                tags={tag.k: tag.v for tag in obj.tags},
                timestamp=obj.timestamp,
                version=1,
            )
            ways.append((obj.id, way))
        elif isinstance(obj, osmium.osm.Relation):
            relation = osmium.osm.mutable.Relation(
                id=obj.id,
                members=[(m.type, m.ref, m.role) for m in obj.members],
                tags={tag.k: tag.v for tag in obj.tags},
                timestamp=obj.timestamp,
                version=1,
            )
            relations.append((obj.id, relation))
    target = folder / (re.sub(r"\.osm(\.\w+)?$|\.osm\.pbf$", "", source.name) + ".osm.pbf")
    with osmium.SimpleWriter(str(target)) as writer:
        for _, node in sorted(nodes, key=lambda item: item[0]):
            writer.add_node(node)
        for _, way in sorted(ways, key=lambda item: item[0]):
            writer.add_way(way)
        for _, relation in sorted(relations, key=lambda item: item[0]):
            writer.add_relation(relation)
    return target


@dataclass(frozen=True, kw_only=True)
class OsmRoads:
    ids: list[str]
    names: list[str | None]
    highway: list[str]
    lines: list[shapely.LineString]

    def records(self) -> pa.Table:
        """The roads as a chunk of ``road_match`` records (WKB geometry, as GeoJSON gives)."""
        size = len(self.ids)
        return pa.table(
            {
                "_ordinal": pa.array(np.arange(1, size + 1), pa.int64()),
                "recId": pa.array(self.ids, pa.string()),
                "id": pa.array(self.ids, pa.string()),
                "name": pa.array(self.names, pa.string()),
                "geometry": pa.array(shapely.to_wkb(np.asarray(self.lines)), pa.binary()),
            }
        )


def osm_roads(path: Path) -> OsmRoads:
    """Every way with a ``highway`` tag of an OSM XML file, as a LineString.

    Read with ElementTree rather than osmium: conflation tools write negative ids, which
    osmium's node location indexes do not take.
    """
    root = ET.parse(path).getroot()
    nodes = {
        node.attrib["id"]: (float(node.attrib["lon"]), float(node.attrib["lat"]))
        for node in root.iter("node")
    }
    roads = OsmRoads(ids=[], names=[], highway=[], lines=[])
    for way in root.iter("way"):
        tags = {tag.attrib["k"]: tag.attrib["v"] for tag in way.iter("tag")}
        coords = [nodes[nd.attrib["ref"]] for nd in way.iter("nd") if nd.attrib["ref"] in nodes]
        if "highway" not in tags or len(coords) < 2:
            continue
        roads.ids.append(f"way/{way.attrib['id']}")
        roads.names.append(tags.get("name"))
        roads.highway.append(tags["highway"])
        roads.lines.append(shapely.LineString(coords))
    return roads


_ABBREVIATIONS = {
    "st": "street",
    "ave": "avenue",
    "av": "avenue",
    "rd": "road",
    "dr": "drive",
    "pl": "place",
    "blvd": "boulevard",
    "pkwy": "parkway",
    "ct": "court",
    "ln": "lane",
    "hwy": "highway",
    "expy": "expressway",
    "fwy": "freeway",
    "nw": "northwest",
    "ne": "northeast",
    "sw": "southwest",
    "se": "southeast",
}
_GENERIC = frozenset(_ABBREVIATIONS.values()) | {"north", "south", "east", "west"}


def normalise_name(name: str) -> list[str]:
    """Lower-case words, abbreviations spelled out, ordinals bare (``14TH ST NW`` and ``14th
    Street Northwest`` give the same words)."""
    text = name.lower().replace("½", " 1/2")
    text = re.sub(r"\b(\d+(?: 1/2)?)(?:st|nd|rd|th)\b", r"\1", text)
    return [_ABBREVIATIONS.get(word, word) for word in re.findall(r"[a-z0-9/]+", text)]


def names_agree(left: str, right: str) -> bool:
    """The distinctive words (not street types or directions) of one name are all in the
    other's, or nearly so: ``E ST EXPY NW`` agrees with ``E Street Expressway``, ``F ST NW``
    does not with ``E Street Northwest``."""
    mine, theirs = normalise_name(left), normalise_name(right)
    a = {word for word in mine if word not in _GENERIC}
    b = {word for word in theirs if word not in _GENERIC}
    if not a or not b:
        return mine == theirs
    if a <= b or b <= a:
        return True
    return bool(fuzz.token_sort_ratio(" ".join(sorted(a)), " ".join(sorted(b))) >= 90)


def main_segment(answer: RoadAnswer) -> str | None:
    """The segment id covering the most of the input road."""
    if not answer.segments:
        return None
    best = max(answer.segments, key=lambda s: abs(s.input_to_m - s.input_from_m))
    return best.segment_id


def metres(dlon: np.ndarray, dlat: np.ndarray, lat: float) -> np.ndarray:
    """Local equirectangular distances, fine over a few kilometres."""
    scale = np.cos(np.radians(lat))
    return np.asarray(np.hypot(dlon * scale, dlat) * EARTH_M_PER_DEG)
