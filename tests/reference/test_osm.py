"""import_osm on real extracts, checked against counts made independently with a plain handler."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import osmium
import pyarrow as pa
import pytest
import shapely

from geobatch.reference import TABLES, ReleaseError, ReleaseStore, gazetteer_table, import_osm
from geobatch.reference.osm import DEFAULT_MEMORY_BUDGET, plan_import, source_timestamp
from geobatch.reference.osm_tags import is_bridge, is_tunnel, layer, normalise, oneway
from geobatch.reference.release import Release

ROAD_CLASSES = {
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
    "secondary", "secondary_link", "tertiary", "tertiary_link", "unclassified",
    "residential", "living_street", "service", "road", "track", "pedestrian", "busway",
}  # fmt: skip
SEGMENT_ID = re.compile(r"osm:way/(\d+):(\d+)")


@dataclass
class Reference:
    """What the importer should produce, worked out way by way in plain Python."""

    runs: dict[int, list[list[tuple[int, float, float]]]] = field(default_factory=dict)
    tags: dict[int, dict[str, str]] = field(default_factory=dict)
    aliases: dict[int, int] = field(default_factory=dict)
    address_nodes: set[str] = field(default_factory=set)
    address_ways: set[str] = field(default_factory=set)
    address_relations: set[str] = field(default_factory=set)
    place_nodes: set[str] = field(default_factory=set)
    lengths: dict[int, float] = field(default_factory=dict)


class _Reader(osmium.SimpleHandler):
    def __init__(self) -> None:
        super().__init__()
        self.ref = Reference()

    def node(self, n: osmium.osm.Node) -> None:
        tags = n.tags
        if "addr:housenumber" in tags and ("addr:street" in tags or "addr:place" in tags):
            self.ref.address_nodes.add(f"osm:node/{n.id}")
        if "place" in tags and "name" in tags:
            self.ref.place_nodes.add(f"osm:node/{n.id}")

    def way(self, w: osmium.osm.Way) -> None:
        tags = w.tags
        if "addr:housenumber" in tags and ("addr:street" in tags or "addr:place" in tags):
            located = all(n.location.valid() for n in w.nodes)
            if w.is_closed() and len(w.nodes) >= 4 and located:  # else no polygon can be built
                self.ref.address_ways.add(f"osm:way/{w.id}")
        if tags.get("highway") not in ROAD_CLASSES or tags.get("area") == "yes":
            return
        runs: list[list[tuple[int, float, float]]] = [[]]
        for n in w.nodes:
            if not n.location.valid():
                runs.append([])
                continue
            node = (n.ref, n.location.lon, n.location.lat)
            run = runs[-1]
            if run and run[-1][1:] == node[1:]:
                if run[-1][0] != node[0]:
                    keep, drop = sorted((run[-1][0], node[0]))
                    self.ref.aliases[drop] = keep
                    run[-1] = (keep, *node[1:])
                continue
            run.append(node)
        runs = [run for run in runs if len(run) >= 2]
        if runs:
            self.ref.runs[w.id] = runs
            self.ref.tags[w.id] = {t.k: t.v for t in tags}
            if len(runs) == 1 and sum(len(r) for r in runs) == len(w.nodes):
                self.ref.lengths[w.id] = osmium.geom.haversine_distance(w.nodes)

    def relation(self, r: osmium.osm.Relation) -> None:
        tags = r.tags
        if tags.get("type") != "multipolygon" or "addr:housenumber" not in tags:
            return
        if "addr:street" in tags or "addr:place" in tags:
            self.ref.address_relations.add(f"osm:relation/{r.id}")


_REFERENCES: dict[Path, Reference] = {}


def reference(path: Path) -> Reference:
    if path not in _REFERENCES:
        reader = _Reader()
        reader.apply_file(str(path), locations=True)
        _REFERENCES[path] = reader.ref
    return _REFERENCES[path]


def expected_network(ref: Reference) -> tuple[dict[int, int], set[int]]:
    """Segments per way and connector node ids: split at nodes used twice, and at run ends."""

    def root(node: int) -> int:
        while node in ref.aliases:
            node = ref.aliases[node]
        return node

    runs = {w: [[root(n[0]) for n in run] for run in rs] for w, rs in ref.runs.items()}
    uses = Counter(node for rs in runs.values() for run in rs for node in run)
    pieces, connectors = {}, set()
    for way, rs in runs.items():
        pieces[way] = 0
        for run in rs:
            connectors.update((run[0], run[-1]))
            inner = [node for node in run[1:-1] if uses[node] >= 2]
            connectors.update(inner)
            pieces[way] += 1 + len(inner)
    return pieces, connectors


def source_of(release: Release) -> Path:
    return Path(release.manifest.sources[0].path)


def test_manifest_describes_the_build(monaco: Release) -> None:
    manifest = monaco.manifest
    assert manifest.id == "osm-monaco-2016-03-05"  # the PBF header's replication timestamp
    assert manifest.name == "osm-monaco"
    (source,) = manifest.sources
    data = Path(source.path).read_bytes()
    assert source.kind == "osm-pbf"
    assert source.sha256 == hashlib.sha256(data).hexdigest()
    assert source.size_bytes == len(data)
    assert set(manifest.counts) == set(TABLES)
    for name, count in manifest.counts.items():
        assert monaco.table(name).num_rows == count
    assert manifest.counts["gazetteer"] == gazetteer_table().num_rows


def test_every_road_way_becomes_segments(release: Release) -> None:
    ref = reference(source_of(release))
    segments = release.table("segments")
    ways = {int(s.removeprefix("osm:way/")) for s in segments["source_id"].to_pylist()}
    assert ways == set(ref.runs)
    assert len(ways) > 300


def test_ways_are_split_exactly_at_junctions(release: Release) -> None:
    ref = reference(source_of(release))
    pieces, connectors = expected_network(ref)
    segments = release.table("segments")
    found = Counter(int(s.removeprefix("osm:way/")) for s in segments["source_id"].to_pylist())
    assert found == pieces
    ids = {int(s.removeprefix("osm:node/")) for s in release.table("connectors")["id"].to_pylist()}
    assert ids == connectors


def test_segment_ids_are_unique_and_numbered_per_way(release: Release) -> None:
    segments = release.table("segments")
    ids = segments["id"].to_pylist()
    assert len(set(ids)) == len(ids)
    by_way: dict[str, list[int]] = defaultdict(list)
    for seg_id, source in zip(ids, segments["source_id"].to_pylist(), strict=True):
        match = SEGMENT_ID.fullmatch(seg_id)
        assert match, seg_id
        assert source == f"osm:way/{match[1]}"
        by_way[source].append(int(match[2]))
    assert all(sorted(ks) == list(range(len(ks))) for ks in by_way.values())


def test_segment_geometries_are_valid_and_inside_the_bbox(release: Release) -> None:
    segments = release.table("segments")
    lines = shapely.from_wkb(segments["geometry"].to_numpy(zero_copy_only=False))
    assert set(shapely.get_type_id(lines)) == {1}  # LineString
    assert shapely.is_valid(lines).all()
    assert (segments["length_m"].to_numpy() > 0).all()
    xy = shapely.get_coordinates(lines)
    west, south, east, north = release.manifest.bbox or (0, 0, 0, 0)
    assert (xy[:, 0] >= west).all()
    assert (xy[:, 0] <= east).all()
    assert (xy[:, 1] >= south).all()
    assert (xy[:, 1] <= north).all()
    for table in ("addresses", "places", "connectors"):
        lon, lat = release.table(table)["lon"].to_numpy(), release.table(table)["lat"].to_numpy()
        assert ((lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)).all(), table


def test_lengths_add_up_to_the_way_length(release: Release) -> None:
    """Per way, the segment lengths sum to osmium's own haversine length of the whole way."""
    ref = reference(source_of(release))
    segments = release.table("segments")
    totals: dict[int, float] = defaultdict(float)
    for source, length in zip(
        segments["source_id"].to_pylist(), segments["length_m"].to_pylist(), strict=True
    ):
        totals[int(source.removeprefix("osm:way/"))] += length
    checked = [w for w in ref.lengths if not any(n[0] in ref.aliases for n in ref.runs[w][0])]
    assert len(checked) > 100
    for way in checked:
        assert totals[way] == pytest.approx(ref.lengths[way], rel=1e-3, abs=1e-3)


def test_segment_ends_are_their_connectors(release: Release) -> None:
    segments, connectors = release.table("segments"), release.table("connectors")
    assert connectors["node"].to_pylist() == list(range(connectors.num_rows))
    lines = shapely.from_wkb(segments["geometry"].to_numpy(zero_copy_only=False))
    first = shapely.get_coordinates(shapely.get_point(lines, 0))
    last = shapely.get_coordinates(shapely.get_point(lines, -1))
    lon, lat = connectors["lon"].to_numpy(), connectors["lat"].to_numpy()
    start, end = segments["from_node"].to_numpy(), segments["to_node"].to_numpy()
    np.testing.assert_array_equal(first, np.column_stack([lon[start], lat[start]]))
    np.testing.assert_array_equal(last, np.column_stack([lon[end], lat[end]]))
    used = np.zeros(connectors.num_rows, dtype=bool)
    used[start] = used[end] = True
    assert used.all()  # no connector is left dangling


def _components(start: np.ndarray, end: np.ndarray, nodes: int) -> np.ndarray:
    parent = np.arange(nodes)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(start.tolist(), end.tolist(), strict=True):
        parent[find(a)] = find(b)
    return np.array([find(x) for x in range(nodes)])


def test_the_network_is_connected(release: Release) -> None:
    segments = release.table("segments")
    start, end = segments["from_node"].to_numpy(), segments["to_node"].to_numpy()
    component = _components(start, end, release.table("connectors").num_rows)[start]
    largest = Counter(component.tolist()).most_common(1)[0][1]
    assert largest / segments.num_rows > 0.9


def test_oneway_follows_the_tags(release: Release) -> None:
    ref = reference(source_of(release))
    segments = release.table("segments")
    seen = Counter()
    for source, road_class, value in zip(
        segments["source_id"].to_pylist(),
        segments["road_class"].to_pylist(),
        segments["oneway"].to_pylist(),
        strict=True,
    ):
        tags = ref.tags[int(source.removeprefix("osm:way/"))]
        assert road_class == tags["highway"]
        assert value == oneway(tags, road_class)
        seen[value] += 1
    assert seen[1] > 0
    assert seen[0] > 0


def test_layer_tunnel_and_bridge_follow_the_tags(release: Release) -> None:
    ref = reference(source_of(release))
    segments = release.table("segments")
    seen = Counter()
    for source, level, tunnel, bridge in zip(
        segments["source_id"].to_pylist(),
        segments["layer"].to_pylist(),
        segments["tunnel"].to_pylist(),
        segments["bridge"].to_pylist(),
        strict=True,
    ):
        tags = ref.tags[int(source.removeprefix("osm:way/"))]
        assert (level, tunnel, bridge) == (layer(tags), is_tunnel(tags), is_bridge(tags))
        seen["tunnel"] += tunnel
        seen["bridge"] += bridge
        seen["layer"] += level != 0
    assert min(seen.values()) > 0


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, (0, False, False)),
        ({"tunnel": "yes", "layer": "-1"}, (-1, True, False)),
        ({"tunnel": "building_passage"}, (0, True, False)),
        ({"bridge": "viaduct", "layer": "2"}, (2, False, True)),
        ({"bridge": "no", "tunnel": "no", "layer": "0"}, (0, False, False)),
        ({"layer": "-9"}, (-5, False, False)),
        ({"layer": "1;2"}, (0, False, False)),
    ],
)
def test_layer_and_structure_rules(tags: dict[str, str], expected: tuple[int, bool, bool]) -> None:
    assert (layer(tags), is_tunnel(tags), is_bridge(tags)) == expected


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"oneway": "yes"}, 1),
        ({"oneway": "1"}, 1),
        ({"oneway": "true"}, 1),
        ({"oneway": "-1"}, -1),
        ({"oneway": "reverse"}, -1),
        ({"junction": "roundabout"}, 1),
        ({"junction": "roundabout", "oneway": "no"}, 0),
        ({"highway": "motorway"}, 1),
        ({"oneway": "reversible"}, 0),
        ({}, 0),
    ],
)
def test_oneway_rules(tags: dict[str, str], expected: int) -> None:
    assert oneway(tags, tags.get("highway", "residential")) == expected


def test_names_keep_every_variant(helsinki: Release) -> None:
    segments = helsinki.table("segments")
    names = [dict(n or []) for n in segments["names"].to_pylist()]
    assert any({"default", "fi", "sv"} <= set(n) for n in names)
    for name, variants in zip(segments["name"].to_pylist(), names, strict=True):
        assert variants.get("default") == name


def test_node_addresses_match_the_tags(release: Release) -> None:
    ref = reference(source_of(release))
    addresses = release.table("addresses")
    ids = addresses["id"].to_pylist()
    assert len(set(ids)) == len(ids)
    assert {i for i in ids if i.startswith("osm:node/")} == ref.address_nodes
    assert {i for i in ids if i.startswith("osm:way/")} == ref.address_ways
    assert {i for i in ids if i.startswith("osm:relation/")} <= ref.address_relations
    assert addresses["housenumber"].null_count == addresses["street"].null_count == 0


def test_area_addresses_lie_inside_their_building(helsinki: Release) -> None:
    addresses = helsinki.table("addresses").to_pylist()
    ways = {int(a["id"].removeprefix("osm:way/")): a for a in addresses if "way/" in a["id"]}
    assert len(ways) > 50
    inside = 0
    for w in osmium.FileProcessor(source_of(helsinki)).with_locations().with_areas():
        if w.is_area() and w.from_way() and w.orig_id() in ways:
            polygon = shapely.from_wkb(osmium.geom.WKBFactory().create_multipolygon(w))
            address = ways[w.orig_id()]
            inside += polygon.contains(shapely.Point(address["lon"], address["lat"]))
    assert inside == len(ways)


def test_helsinki_has_its_addresses(helsinki: Release) -> None:
    addresses = helsinki.table("addresses")
    assert addresses.num_rows > 1_300
    cities = Counter(addresses["city"].to_pylist())
    assert cities.most_common(1)[0][0] == "Helsinki"


def test_places_pois_and_admin_areas(release: Release) -> None:
    ref = reference(source_of(release))
    places = release.table("places")
    ids = places["id"].to_pylist()
    assert len(set(ids)) == len(ids)
    kinds = places["kind"].to_pylist()
    assert {i for i, k in zip(ids, kinds, strict=True) if k == "place" and "node/" in i} == (
        ref.place_nodes
    )
    assert set(kinds) <= {"place", "poi", "admin"}
    assert places["name"].null_count == 0
    geometries = places["geometry"].drop_null().to_numpy(zero_copy_only=False)
    polygons = shapely.from_wkb(geometries)
    assert shapely.is_valid(polygons).all()
    assert set(shapely.get_type_id(polygons)) <= {3, 6}


def test_parents_are_containing_admin_areas_innermost_first(release: Release) -> None:
    places = release.table("places").to_pylist()
    admins = {p["id"]: p for p in places if p["kind"] == "admin"}
    shapes = {i: shapely.from_wkb(p["geometry"]) for i, p in admins.items()}
    with_parents = 0
    for place in places:
        point = shapely.Point(place["lon"], place["lat"])
        levels = [admins[parent]["admin_level"] for parent in place["parents"]]
        assert levels == sorted(levels, reverse=True)
        for parent in place["parents"]:
            assert shapes[parent].contains(point) or shapes[parent].touches(point)
        if place["kind"] == "admin":
            assert all(level < place["admin_level"] for level in levels)
        with_parents += bool(place["parents"])
    if admins:
        assert with_parents > len(places) / 2


def test_monaco_knows_its_quarters(monaco: Release) -> None:
    places = {p["id"]: p for p in monaco.table("places").to_pylist()}
    assert places["osm:relation/2220322"]["kind"] == "admin"
    assert places["osm:relation/2220322"]["admin_level"] == 8
    (bank,) = [p for p in places.values() if p["name"] == "UBS"]  # in Monte-Carlo, Monaco
    assert bank["kind"] == "poi"
    assert bank["category"] == "bank"
    assert bank["parents"] == ["osm:relation/5986438", "osm:relation/2220322"]


def test_streets_group_the_named_segments(release: Release) -> None:
    segments, streets = release.table("segments"), release.table("streets")
    named = {
        s["id"]: s["name"]
        for s in segments.select(["id", "name"]).to_pylist()
        if s["name"] and normalise(s["name"])
    }
    members = [i for ids in streets["segment_ids"].to_pylist() for i in ids]
    assert len(members) == len(set(members))
    assert set(members) == set(named)
    ids = streets["id"].to_pylist()
    assert len(ids) == len(set(ids))
    geometries = shapely.from_wkb(streets["geometry"].to_numpy(zero_copy_only=False))
    assert set(shapely.get_type_id(geometries)) == {5}  # MultiLineString
    assert shapely.is_valid(geometries).all()
    counts = [len(ids) for ids in streets["segment_ids"].to_pylist()]
    assert shapely.get_num_geometries(geometries).tolist() == counts
    for street in streets.to_pylist():
        assert {normalise(named[i]) for i in street["segment_ids"]} == {normalise(street["name"])}
        locality = normalise(street["locality"] or "").replace(" ", "-")
        assert street["id"] == f"street:{locality}:{normalise(street['name']).replace(' ', '-')}"


def test_street_localities(monaco: Release, andorra: Release, helsinki: Release) -> None:
    assert set(helsinki.table("streets")["locality"].to_pylist()) == {"Helsinki"}
    parishes = {"Andorra la Vella", "Canillo", "Encamp", "Escaldes-Engordany", "La Massana"}
    parishes |= {"Ordino", "Sant Julià de Lòria"}
    localities = Counter(andorra.table("streets")["locality"].to_pylist())
    assert sum(n for loc, n in localities.items() if loc in parishes) > 0.9 * localities.total()
    localities = Counter(monaco.table("streets")["locality"].to_pylist())
    assert localities.most_common(1)[0][0] == "Monaco"


def test_gazetteer_is_optional(andorra: Release) -> None:
    assert andorra.manifest.counts["gazetteer"] == 0
    assert andorra.table("gazetteer").schema.equals(TABLES["gazetteer"])
    assert not (andorra.path / "gazetteer.arrow").exists()


def test_a_small_memory_budget_gives_the_same_release(monaco: Release, tmp_path: Path) -> None:
    """Node locations on disk and junctions found in parts, as a country under a budget is."""
    budget = 1024**2
    source = source_of(monaco)
    assert plan_import([source], budget).node_cache == "disk"
    assert plan_import([source], DEFAULT_MEMORY_BUDGET).node_cache == "memory"
    store = ReleaseStore(tmp_path)
    phases: list[tuple[str, int | None]] = []

    class Phases:
        def phase(self, name: str, total: int | None = None) -> None:
            phases.append((name, total))

        def advance(self, steps: int = 1, detail: str = "") -> None:
            pass

    manifest = import_osm(source, store, gazetteer=False, memory_budget=budget, progress=Phases())
    assert [name for name, _ in phases] == [
        "reading monaco.osm.pbf", "junctions", "segments", "addresses and places", "streets",
        "indexes",
    ]  # fmt: skip
    assert dict(phases)["junctions"] >= 2  # type: ignore[operator]
    rebuilt = store.load(manifest.id)
    for table in ("segments", "connectors", "streets", "addresses", "places"):
        assert rebuilt.table(table).equals(monaco.table(table)), table


def test_taken_ids_get_a_suffix(andorra: Release, tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path)
    first = import_osm(source_of(andorra), store, gazetteer=False)
    second = import_osm(source_of(andorra), store, gazetteer=False, name="osm-andorra")
    assert (first.id, second.id) == ("osm-andorra-2013-05-28", "osm-andorra-2013-05-28-2")


def test_dated_by_newest_object_without_a_header_timestamp(helsinki: Release) -> None:
    assert source_timestamp(source_of(helsinki)).date().isoformat() == "2019-04-21"


def test_osm_xml_is_read_too(osm_data: Path, tmp_path: Path) -> None:
    dc = osm_data.parent / "dc-roads" / "DcOsmRoads.osm"
    store = ReleaseStore(tmp_path)
    manifest = import_osm(dc, store, gazetteer=False)
    assert manifest.sources[0].kind == "osm-xml"
    assert manifest.counts["segments"] > 150  # from 145 road ways


def _assert_refused(store: ReleaseStore, path: Path, message: str) -> None:
    before = store.list()
    with pytest.raises(ReleaseError, match=message):
        import_osm(path, store)
    assert store.list() == before
    assert not list(store.root.glob(".building-*"))


@pytest.fixture
def store_with_a_release(tmp_path: Path) -> ReleaseStore:
    store = ReleaseStore(tmp_path / "releases")
    with store.building("kept-2020-01-01", "kept") as builder:
        builder.write_table(
            "places", pa.table({"id": ["x"], "name": ["X"], "lon": [1.0], "lat": [2.0]})
        )
    return store


def test_truncated_file_is_refused(
    osm_data: Path, store_with_a_release: ReleaseStore, tmp_path: Path
) -> None:
    data = (osm_data / "monaco.osm.pbf").read_bytes()
    truncated = tmp_path / "monaco.osm.pbf"
    truncated.write_bytes(data[: len(data) // 2])
    _assert_refused(store_with_a_release, truncated, "monaco.osm.pbf is truncated or corrupt")


def test_text_file_is_refused(store_with_a_release: ReleaseStore, tmp_path: Path) -> None:
    text = tmp_path / "notes.pbf"
    text.write_text("these are not the roads you are looking for\n" * 100)
    _assert_refused(store_with_a_release, text, "notes.pbf is not a readable OSM file")


def test_empty_extract_is_refused(store_with_a_release: ReleaseStore, tmp_path: Path) -> None:
    empty = tmp_path / "empty.osm.pbf"
    writer = osmium.SimpleWriter(str(empty))
    writer.add_node(osmium.osm.mutable.Node(id=1, location=(7.42, 43.73)))
    writer.close()
    _assert_refused(
        store_with_a_release, empty, "empty.osm.pbf holds no roads, addresses or places"
    )


def test_missing_and_unsorted_files_are_refused(
    osm_data: Path, store_with_a_release: ReleaseStore, tmp_path: Path
) -> None:
    _assert_refused(store_with_a_release, tmp_path / "nowhere.osm.pbf", "does not exist")
    unsorted = tmp_path / "issue-70.osm.gz"
    shutil.copy(osm_data / "issue-70.osm.gz", unsorted)
    _assert_refused(store_with_a_release, unsorted, "issue-70.osm.gz is not sorted")


def test_helsinki_builds_within_a_minute(
    helsinki: Release, build_seconds: dict[str, float]
) -> None:
    assert helsinki.manifest.build_seconds < 60
    print(f"build seconds: {build_seconds}")
