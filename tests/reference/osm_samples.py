"""Two small overlapping OSM extracts, written with pyosmium, for importing several files.

``west`` and ``east`` both hold way 100 (nodes 1-2-3) and the village node 10, as two
extracts cut from one map do. Way 101 (3-5-6) is only in ``east`` and meets way 100 at node 3.
Way 102 (2-4-7) crosses the border: ``west`` lacks node 7, so its copy is cut short.
"""

from __future__ import annotations

from pathlib import Path

import osmium

NODES = {
    1: (7.4200, 43.7300),
    2: (7.4210, 43.7300),
    3: (7.4220, 43.7300),
    4: (7.4210, 43.7310),
    5: (7.4230, 43.7305),
    6: (7.4240, 43.7310),
    7: (7.4210, 43.7320),
}
VILLAGE = {"place": "village", "name": "Bordeville"}
WAYS = {
    100: ([1, 2, 3], {"highway": "residential", "name": "Rue du Bord"}),
    101: ([3, 5, 6], {"highway": "residential", "name": "Rue de l'Est"}),
    102: ([2, 4, 7], {"highway": "service"}),
}
CONTENTS = {
    "west": ([1, 2, 3, 4], [100, 102]),
    "east": ([1, 2, 3, 4, 5, 6, 7], [100, 101, 102]),
}


def write_extract(path: Path, nodes: list[int], ways: list[int]) -> Path:
    header = osmium.io.Header()
    header.set("osmosis_replication_timestamp", "2024-05-01T00:00:00Z")
    writer = osmium.SimpleWriter(str(path), header=header)
    try:
        for node in nodes:
            writer.add_node(osmium.osm.mutable.Node(id=node, location=NODES[node], version=1))
        writer.add_node(
            osmium.osm.mutable.Node(id=10, location=(7.4215, 43.7302), tags=VILLAGE, version=1)
        )
        for way in ways:
            refs, tags = WAYS[way]
            writer.add_way(osmium.osm.mutable.Way(id=way, nodes=refs, tags=tags, version=1))
    finally:
        writer.close()
    return path


def border_extracts(folder: Path) -> tuple[Path, Path]:
    """``west.osm.pbf`` and ``east.osm.pbf`` in ``folder``."""
    west, east = (
        write_extract(folder / f"{name}.osm.pbf", *CONTENTS[name]) for name in ("west", "east")
    )
    return west, east
