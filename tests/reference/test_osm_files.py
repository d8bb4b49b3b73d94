"""Several OSM extracts into one release: shared objects kept once, roads joined across files."""

from __future__ import annotations

import shutil
from pathlib import Path

from geobatch.reference import ReleaseStore, import_osm
from geobatch.reference.release import Release
from tests.reference.osm_samples import border_extracts

TABLES = ("segments", "connectors", "addresses", "places", "streets")


def _segments(release: Release) -> dict[str, tuple[str, str]]:
    """Segment id -> (from, to) as OSM node ids."""
    nodes = release.table("connectors").column("id").to_pylist()
    segments = release.table("segments")
    return {
        sid: (nodes[a], nodes[b])
        for sid, a, b in zip(
            segments.column("id").to_pylist(),
            segments.column("from_node").to_pylist(),
            segments.column("to_node").to_pylist(),
            strict=True,
        )
    }


def test_overlapping_extracts_make_one_network(tmp_path: Path) -> None:
    west, east = border_extracts(tmp_path)
    store = ReleaseStore(tmp_path / "releases")
    manifest = import_osm([west, east], store, name="border", gazetteer=False)
    assert manifest.id == "border-2024-05-01"
    assert [Path(source.path).name for source in manifest.sources] == [
        "west.osm.pbf",
        "east.osm.pbf",
    ]
    release = store.load(manifest.id)
    assert _segments(release) == {
        "osm:way/100:0": ("osm:node/1", "osm:node/2"),
        "osm:way/100:1": ("osm:node/2", "osm:node/3"),  # way 100 once, though in both files
        "osm:way/101:0": ("osm:node/3", "osm:node/6"),  # meets way 100 at node 3, across files
        "osm:way/102:0": ("osm:node/2", "osm:node/7"),  # the whole way, not west's stump
    }
    assert release.table("places").column("id").to_pylist() == ["osm:node/10"]

    reverse = store.load(import_osm([east, west], store, name="border", gazetteer=False).id)
    for table in TABLES:
        assert reverse.table(table).equals(release.table(table)), table


def test_an_extract_twice_is_the_extract_once(monaco: Release, tmp_path: Path) -> None:
    source = Path(monaco.manifest.sources[0].path)
    again = tmp_path / "monaco-again.osm.pbf"
    shutil.copyfile(source, again)
    store = ReleaseStore(tmp_path / "releases")
    manifest = import_osm([source, again], store, gazetteer=False)
    assert manifest.id == "osm-monaco-monaco-again-2016-03-05"
    assert len(manifest.sources) == 2
    twice = store.load(manifest.id)
    for table in TABLES:
        assert twice.table(table).equals(monaco.table(table)), table
