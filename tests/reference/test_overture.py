"""The Overture importer on schema-true sample GeoParquet files around Monaco.

Covers kind detection, every mapped field of segments, connectors, addresses and places, the
split of segments at their connectors (ends on the connectors, lengths adding up, shared
nodes), oneway from access restrictions, releases before 2024-06 (``connector_ids``),
streaming in small batches, and refused inputs leaving no release and no temp folder behind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from geobatch.reference import overture
from geobatch.reference.overture import detect_kind, import_overture, release_day
from geobatch.reference.overture_points import CONNECTOR_ROWS
from geobatch.reference.overture_roads import number_nodes, road_pieces
from geobatch.reference.release import Release, ReleaseError, ReleaseStore
from tests.reference.overture_samples import (
    ADDRESSES,
    CONNECTORS,
    EXPECTED_ONEWAY,
    PLACES,
    ROAD_FLAGS,
    ROADS,
    SEGMENT_CONNECTORS,
    SEGMENTS,
    Place,
    Segment,
    gers,
    path_length_m,
    write_addresses,
    write_all,
    write_geoparquet,
    write_places,
    write_segments,
)

CONNECTOR_BY_ID = {gers(key): xy for key, xy in CONNECTORS.items()}


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    return ReleaseStore(tmp_path / "releases")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_all(tmp_path / "overture")


@pytest.fixture
def imported(files: dict[str, Path], store: ReleaseStore) -> Release:
    """The four sample files imported together into one release."""
    manifest = import_overture(list(files.values()), store, kind=None)
    return store.load(manifest.id)


def rows(release: Release, table: str) -> list[dict[str, Any]]:
    return list(release.table(table).to_pylist())


def pieces_of(release: Release, segment: Segment) -> list[dict[str, Any]]:
    found = [r for r in rows(release, "segments") if r["source_id"] == segment.id]
    return sorted(found, key=lambda r: int(r["id"].rsplit(":", 1)[1]))


def coords(wkb: bytes) -> list[tuple[float, float]]:
    return [(x, y) for x, y in shapely.get_coordinates(shapely.from_wkb(wkb)).tolist()]


def assert_nothing_built(store: ReleaseStore, before: list[str]) -> None:
    assert [m.id for m in store.list()] == before
    if store.root.exists():
        assert not [p.name for p in store.root.iterdir() if p.name.startswith(".building-")]


# -- kinds and manifest ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "kind"),
    [
        ("segments", "overture-segments"),
        ("connectors", "overture-connectors"),
        ("addresses", "overture-addresses"),
        ("places", "overture-places"),
    ],
)
def test_kind_is_detected_from_the_columns(files: dict[str, Path], sample: str, kind: str) -> None:
    assert detect_kind(pq.read_schema(files[sample]).names) == kind


def test_kind_detection_of_pre_2024_06_segments(tmp_path: Path) -> None:
    path = write_segments(tmp_path / "legacy.parquet", legacy=True)
    assert detect_kind(pq.read_schema(path).names) == "overture-segments"


def test_kind_detection_refuses_ambiguous_columns() -> None:
    columns = ["id", "geometry", "names", "categories", "country", "street", "number"]
    with pytest.raises(ReleaseError, match="several Overture kinds"):
        detect_kind(columns)


def test_manifest_records_sources_counts_and_bbox(
    files: dict[str, Path], imported: Release
) -> None:
    manifest = imported.manifest
    assert manifest.name == "overture"
    assert manifest.id.startswith("overture-")
    assert len(manifest.sources) == 4
    for path in files.values():
        [source] = [s for s in manifest.sources if Path(s.path) == path.resolve()]
        assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert source.size_bytes == path.stat().st_size
    assert {s.kind for s in manifest.sources} == {
        "overture-segments",
        "overture-connectors",
        "overture-addresses",
        "overture-places",
    }
    assert manifest.counts["segments"] == 7  # 6 roads, one split in two; the railway dropped
    assert manifest.counts["connectors"] == 9
    assert manifest.counts["addresses"] == len(ADDRESSES)
    assert manifest.counts["places"] == len(PLACES)
    points = [xy for s in ROADS for xy in s.coords] + list(CONNECTORS.values())
    points += [(a.lon, a.lat) for a in ADDRESSES] + [(p.lon, p.lat) for p in PLACES]
    lons, lats = zip(*points, strict=True)
    assert manifest.bbox == pytest.approx((min(lons), min(lats), max(lons), max(lats)))


def test_release_id_is_dated_by_the_overture_release_in_the_path(
    tmp_path: Path, store: ReleaseStore
) -> None:
    folder = tmp_path / "release" / "2024-09-18.0" / "theme=addresses" / "type=address"
    path = write_addresses(folder / "part-00000.parquet")
    assert release_day([path]) == "2024-09-18"
    manifest = import_overture([path], store, kind="overture-addresses", name="monaco")
    assert (manifest.id, manifest.name) == ("monaco-2024-09-18", "monaco")
    again = import_overture([path], store, kind=None, name="monaco")
    assert again.id == "monaco-2024-09-18-2"


# -- segments and connectors -----------------------------------------------------------------


def test_segment_fields(imported: Release) -> None:
    for segment in ROADS:
        for piece in pieces_of(imported, segment):
            assert piece["road_class"] == segment.road_class
            assert piece["name"] == segment.primary
            expected_names = None
            if segment.primary is not None:
                expected_names = [("default", segment.primary), *(segment.common or {}).items()]
            assert piece["names"] == expected_names
            assert piece["oneway"] == EXPECTED_ONEWAY[segment.key]
    sources = {r["source_id"] for r in rows(imported, "segments")}
    assert sources == {s.id for s in ROADS}  # rail (and water) segments are not roads


def test_segments_are_split_at_their_connectors(imported: Release) -> None:
    nodes = rows(imported, "connectors")
    for segment in ROADS:
        pieces = pieces_of(imported, segment)
        refs = [key for key, _ in segment.connector_refs]
        assert len(pieces) == len(refs) - 1
        assert [p["id"] for p in pieces] == [f"{segment.id}:{k}" for k in range(len(pieces))]
        for k, piece in enumerate(pieces):
            line = coords(piece["geometry"])
            start, end = nodes[piece["from_node"]], nodes[piece["to_node"]]
            assert (start["id"], end["id"]) == (gers(refs[k]), gers(refs[k + 1]))
            assert line[0] == CONNECTORS[refs[k]] == (start["lon"], start["lat"])
            assert line[-1] == CONNECTORS[refs[k + 1]] == (end["lon"], end["lat"])
            assert piece["length_m"] == pytest.approx(path_length_m(line), rel=1e-9)
        total = sum(p["length_m"] for p in pieces)
        assert total == pytest.approx(path_length_m(segment.coords), rel=1e-9)
    first, second = pieces_of(imported, SEGMENTS[0])
    assert coords(first["geometry"]) == SEGMENTS[0].coords[:3]  # keeps its shape point
    assert coords(second["geometry"]) == SEGMENTS[0].coords[2:]


def test_segments_connect_through_shared_nodes(imported: Release) -> None:
    nodes = rows(imported, "connectors")
    assert [n["node"] for n in nodes] == list(range(len(nodes)))
    assert {n["id"] for n in nodes} == {gers(k) for k in CONNECTORS}  # all of the file's
    for node in nodes:
        assert (node["lon"], node["lat"]) == CONNECTOR_BY_ID[node["id"]]
    node_of = {n["id"]: n["node"] for n in nodes}
    ends: dict[int, set[str]] = {}
    for piece in rows(imported, "segments"):
        ends.setdefault(piece["from_node"], set()).add(piece["source_id"])
        ends.setdefault(piece["to_node"], set()).add(piece["source_id"])
    by_key = {s.key: s.id for s in SEGMENTS}
    assert ends[node_of[gers("C11")]] == {by_key["S2"], by_key["S3"], by_key["S5"]}
    assert ends[node_of[gers("C00")]] == {by_key["S1"], by_key["S4"]}
    assert ends[node_of[gers("C01")]] == {by_key["S1"]}  # the split point of S1
    assert node_of[gers("C22")] not in ends  # reached by the railway only


def test_connectors_come_from_the_segments_without_a_connector_file(
    files: dict[str, Path], store: ReleaseStore
) -> None:
    manifest = import_overture([files["segments"]], store, kind="overture-segments")
    release = store.load(manifest.id)
    nodes = rows(release, "connectors")
    referenced = {key for s in ROADS for key, _ in s.connector_refs}
    assert referenced == set(CONNECTORS) - {"C22"}  # C22 is reached by the railway only
    assert {n["id"] for n in nodes} == {gers(key) for key in referenced}
    for node in nodes:
        assert node["lon"] == pytest.approx(CONNECTOR_BY_ID[node["id"]][0], abs=1e-9)
        assert node["lat"] == pytest.approx(CONNECTOR_BY_ID[node["id"]][1], abs=1e-9)
    for piece in rows(release, "segments"):
        line = coords(piece["geometry"])
        assert line[0] == (nodes[piece["from_node"]]["lon"], nodes[piece["from_node"]]["lat"])
        assert line[-1] == (nodes[piece["to_node"]]["lon"], nodes[piece["to_node"]]["lat"])


def test_pre_2024_06_connector_ids_are_placed_by_the_connector_file(
    tmp_path: Path, files: dict[str, Path], imported: Release, store: ReleaseStore
) -> None:
    legacy = write_segments(tmp_path / "legacy" / "segments.parquet", legacy=True)
    manifest = import_overture([legacy, files["connectors"]], store, kind=None, name="legacy")
    old = store.load(manifest.id)
    assert rows(old, "segments") == rows(imported, "segments")
    assert rows(old, "connectors") == rows(imported, "connectors")


def test_pre_2024_06_connector_ids_need_the_connector_file(
    tmp_path: Path, store: ReleaseStore
) -> None:
    legacy = write_segments(tmp_path / "segments.parquet", legacy=True)
    with pytest.raises(ReleaseError, match="connector files must be imported"):
        import_overture([legacy], store, kind=None)
    assert_nothing_built(store, [])


def test_segment_ends_without_a_connector_get_synthetic_nodes(
    tmp_path: Path, store: ReleaseStore
) -> None:
    dangling = Segment("D1", "road", "footway", ("C00", (7.4195, 43.7295)), "Escalier")
    middle = Segment("D2", "road", "path", ((7.4190, 43.7300), "C01", (7.4190, 43.7310)))
    path = write_segments(tmp_path / "segments.parquet", [dangling, middle])
    release = store.load(import_overture([path], store, kind=None).id)
    nodes = {n["node"]: n for n in rows(release, "connectors")}
    [piece] = pieces_of(release, dangling)
    assert nodes[piece["to_node"]]["id"] == f"{dangling.id}@1"
    assert (nodes[piece["to_node"]]["lon"], nodes[piece["to_node"]]["lat"]) == (7.4195, 43.7295)
    first, second = pieces_of(release, middle)
    assert nodes[first["from_node"]]["id"] == f"{middle.id}@0"
    assert nodes[first["to_node"]]["id"] == nodes[second["from_node"]]["id"] == gers("C01")
    assert nodes[second["to_node"]]["id"] == f"{middle.id}@1"
    assert first["length_m"] + second["length_m"] == pytest.approx(
        path_length_m(middle.coords), rel=1e-9
    )


def test_coincident_connectors_are_kept_and_repeated_ones_dropped(tmp_path: Path) -> None:
    """A distinct connector at the same place still joins the network; a repeated one is one."""
    segment = SEGMENTS[1]  # C10 -> C11
    table = pq.read_table(write_segments(tmp_path / "segments.parquet", [segment]))
    refs = [("C10", 0.0), ("X", 0.0), ("C11", 1.0), ("C11", 1.0)]
    table = table.set_column(
        table.schema.get_field_index("connectors"),
        "connectors",
        pa.array([[{"connector_id": gers(k), "at": at} for k, at in refs]], SEGMENT_CONNECTORS),
    )
    segments, nodes = number_nodes(road_pieces(table), CONNECTOR_ROWS.empty_table())
    ids = nodes.column("id").to_pylist()
    pairs = zip(segments["from_node"].to_pylist(), segments["to_node"].to_pylist(), strict=True)
    ends = [(ids[f], ids[t]) for f, t in pairs]
    assert ends == [(gers("C10"), gers("X")), (gers("X"), gers("C11"))]
    assert segments["length_m"].to_pylist()[0] == 0.0
    assert sum(segments["length_m"].to_pylist()) == pytest.approx(path_length_m(segment.coords))


def test_oneway_rules_apply_to_the_pieces_they_cover(tmp_path: Path, store: ReleaseStore) -> None:
    split_at = SEGMENTS[0].connector_refs[1][1]
    rules = (
        {"access_type": "denied", "when": {"heading": "backward"}, "between": [0.0, split_at]},
        {"access_type": "denied", "when": {"heading": "forward", "during": "Mo-Fr 07:00-09:00"}},
    )
    segment = Segment("S1", "road", "primary", SEGMENTS[0].path, access=rules)
    path = write_segments(tmp_path / "segments.parquet", [segment])
    release = store.load(import_overture([path], store, kind=None).id)
    assert [p["oneway"] for p in pieces_of(release, segment)] == [1, 0]


def test_level_rules_and_road_flags_apply_to_the_pieces_they_cover(tmp_path: Path) -> None:
    split_at = SEGMENTS[0].connector_refs[1][1]
    table = pq.read_table(write_segments(tmp_path / "segments.parquet", [SEGMENTS[0]]))
    flags = [
        {"values": ["is_tunnel"], "between": [0.0, split_at]},
        {"values": ["is_bridge", "is_link"], "between": None},
    ]
    table = table.set_column(
        table.schema.get_field_index("road_flags"), "road_flags", pa.array([flags], ROAD_FLAGS)
    )
    levels = pa.list_(pa.struct([("value", pa.int32()), ("between", pa.list_(pa.float64()))]))
    rules = [{"value": -1, "between": [0.0, split_at]}, {"value": 9, "between": [split_at, 1.0]}]
    table = table.append_column("level_rules", pa.array([rules], levels))
    pieces = road_pieces(table).table
    assert pieces["tunnel"].to_pylist() == [True, False]
    assert pieces["bridge"].to_pylist() == [True, True]
    assert pieces["layer"].to_pylist() == [-1, 5]
    plain = road_pieces(pq.read_table(tmp_path / "segments.parquet")).table
    assert plain["layer"].to_pylist() == [0, 0]
    assert not any(plain["tunnel"].to_pylist() + plain["bridge"].to_pylist())


def test_small_batches_give_the_same_release(
    files: dict[str, Path], imported: Release, store: ReleaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overture, "READ_ROWS", 2)
    manifest = import_overture(list(files.values()), store, kind=None, name="batched")
    batched = store.load(manifest.id)
    for table in ("segments", "connectors", "addresses", "places"):
        assert rows(batched, table) == rows(imported, table)


# -- addresses and places --------------------------------------------------------------------


def test_address_fields(imported: Release) -> None:
    found = {r["id"]: r for r in rows(imported, "addresses")}
    assert len(found) == len(ADDRESSES)
    for address in ADDRESSES:
        assert found[gers(address.key)] == {
            "id": gers(address.key),
            "housenumber": address.number,
            "street": address.street,
            "unit": address.unit,
            "postcode": address.postcode,
            "city": address.expected_city,
            "state": address.expected_state,
            "country": address.country.upper() if address.country else None,
            "lon": address.lon,
            "lat": address.lat,
        }


def test_addresses_of_several_files_make_one_table(tmp_path: Path, store: ReleaseStore) -> None:
    paths = [
        write_addresses(tmp_path / "a.parquet", ADDRESSES[:2]),
        write_addresses(tmp_path / "b.parquet", ADDRESSES[2:]),
    ]
    release = store.load(import_overture(paths, store, kind="overture-addresses").id)
    assert [r["id"] for r in rows(release, "addresses")] == [gers(a.key) for a in ADDRESSES]


def test_place_fields(imported: Release) -> None:
    found = {r["id"]: r for r in rows(imported, "places")}
    assert len(found) == len(PLACES)
    for place in PLACES:
        assert found[gers(place.key)] == {
            "id": gers(place.key),
            "name": place.primary,
            "names": [("default", place.primary), *(place.common or {}).items()],
            "category": place.category,
            "kind": "poi",
            "admin_level": None,
            "population": None,
            "parents": None,
            "country": place.countries[0] if place.countries else None,
            "lon": place.lon,
            "lat": place.lat,
            "geometry": None,
        }


def test_places_without_a_name_are_dropped(tmp_path: Path, store: ReleaseStore) -> None:
    nameless = Place("P9", 7.4200, 43.7300, None, {"en": "Somewhere"}, category="bench")
    path = write_places(tmp_path / "places.parquet", [*PLACES, nameless])
    release = store.load(import_overture([path], store, kind=None).id)
    assert {r["id"] for r in rows(release, "places")} == {gers(p.key) for p in PLACES}


# -- refused inputs --------------------------------------------------------------------------


def _not_parquet(folder: Path) -> Path:
    path = folder / "segments.parquet"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    return path


def _no_connectors_column(folder: Path) -> Path:
    table = pq.read_table(write_segments(folder / "full.parquet")).drop_columns(["connectors"])
    return write_geoparquet(folder / "segments.parquet", dict(zip(table.column_names,
                            table.columns, strict=True)), "LineString")  # fmt: skip


def _not_overture(folder: Path) -> Path:
    path = folder / "table.parquet"
    pq.write_table(pa.table({"id": ["a"], "name": ["Monaco"]}), path)
    return path


def _empty(folder: Path) -> Path:
    return write_addresses(folder / "addresses.parquet", [])


def _wkt_geometry(folder: Path) -> Path:
    columns = {"id": pa.array(["a"]), "geometry": pa.array(["POINT (7.42 43.73)"])}
    return write_geoparquet(folder / "connectors.parquet", columns, "Point", metadata=False)


def _missing(folder: Path) -> Path:
    return folder / "nowhere.parquet"


@pytest.mark.parametrize(
    ("make", "kind", "message"),
    [
        (_not_parquet, None, "is not a readable Parquet file"),
        (_no_connectors_column, None,
         r"not an Overture transportation/segment file \(wrong schema\): it lacks the columns "
         "connectors or connector_ids"),
        (_not_overture, None,
         r"not an Overture GeoParquet file \(wrong schema\): it lacks the columns geometry"),
        (_empty, None, "has no rows"),
        (_wkt_geometry, None, "has a geometry column of type string, not WKB"),
        (_missing, None, "does not exist"),
        (lambda folder: write_places(folder / "places.parquet"), "overture-addresses",
         "not an Overture addresses/address file .*lacks the columns country, street, number"),
        (lambda folder: write_places(folder / "places.parquet"), "overture-buildings",
         "unknown Overture kind 'overture-buildings'"),
    ],
)  # fmt: skip
def test_refused_inputs_leave_nothing_behind(
    tmp_path: Path,
    files: dict[str, Path],
    store: ReleaseStore,
    make: Any,
    kind: str | None,
    message: str,
) -> None:
    existing = import_overture([files["addresses"]], store, kind=None, name="existing")
    bad = make(tmp_path)
    with pytest.raises(ReleaseError, match=message) as raised:
        import_overture([files["places"], bad], store, kind=kind)
    assert "\n" not in str(raised.value)
    assert_nothing_built(store, [existing.id])


def test_a_file_of_another_kind_given_as_connectors_is_refused(
    files: dict[str, Path], store: ReleaseStore
) -> None:
    with pytest.raises(ReleaseError, match="LINESTRING geometries where points are expected"):
        import_overture([files["segments"]], store, kind="overture-connectors")
    assert_nothing_built(store, [])


def test_a_bad_row_found_while_building_leaves_nothing_behind(
    tmp_path: Path, files: dict[str, Path], store: ReleaseStore
) -> None:
    table = pq.read_table(files["addresses"])
    broken = table.set_column(
        table.schema.get_field_index("geometry"),
        "geometry",
        pa.array([b"\x01\x01\x00\x00\x00"] * table.num_rows, pa.binary()),  # truncated WKB
    )
    path = tmp_path / "broken.parquet"
    pq.write_table(broken, path)
    with pytest.raises(ReleaseError, match=r"broken\.parquet could not be imported"):
        import_overture([files["segments"], files["connectors"], path], store, kind=None)
    assert_nothing_built(store, [])
