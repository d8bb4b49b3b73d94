"""ReleaseStore, ReleaseBuilder and Release: atomic publishing, validation, memory-mapped loads."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from geobatch.errors import Conflict, InvalidInput, NotFound
from geobatch.reference import (
    SCHEMA_VERSION,
    TABLES,
    Manifest,
    ReleaseError,
    ReleaseNotFound,
    ReleaseStore,
)
from geobatch.reference.indexes import INDEX_VERSION
from geobatch.reference.release import Release, conform

PLACE = {"id": ["osm:node/1"], "name": ["Kamppi"], "lon": [24.93], "lat": [60.17]}


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    return ReleaseStore(tmp_path / "releases")


def build(store: ReleaseStore, release_id: str, **tables: pa.Table) -> Manifest:
    with store.building(release_id, release_id.rsplit("-", 3)[0]) as builder:
        for name, table in tables.items():
            builder.write_table(name, table)
        builder.bbox = (24.9, 60.1, 25.0, 60.2)
    return builder.manifest


def test_build_publishes_tables_and_manifest(store: ReleaseStore) -> None:
    manifest = build(store, "test-2024-01-01", places=pa.table(PLACE))
    assert manifest.counts == {**dict.fromkeys(TABLES, 0), "places": 1}
    assert manifest.schema_version == SCHEMA_VERSION
    folder = store.path("test-2024-01-01")
    assert sorted(p.name for p in folder.iterdir()) == ["indexes", "manifest.json", "places.arrow"]
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert Manifest.from_json(on_disk) == manifest == store.get("test-2024-01-01")
    release = store.load("test-2024-01-01")
    assert release.table("places")["name"].to_pylist() == ["Kamppi"]
    assert release.table("places").schema.equals(TABLES["places"])


def test_absent_tables_load_empty(store: ReleaseStore) -> None:
    build(store, "test-2024-01-01")
    release = store.load("test-2024-01-01")
    for name, schema in TABLES.items():
        table = release.table(name)
        assert table.num_rows == 0
        assert table.schema.equals(schema)
    assert release.table("segments") is release.table("segments")  # cached


def test_manifest_round_trips_through_json(store: ReleaseStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 3_000_000)
    with store.building("test-2024-01-01", "test") as builder:
        added = builder.add_source(source, "geonames")
    assert added.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert added.size_bytes == 3_000_000
    manifest = builder.manifest
    assert manifest.sources == (added,)
    assert Manifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest
    with pytest.raises(ReleaseError, match="malformed"):
        Manifest.from_json({"id": "x"})


def test_list_is_newest_first_and_skips_incomplete_folders(store: ReleaseStore) -> None:
    assert store.list() == []
    assert store.newest() is None
    build(store, "a-2024-01-01")
    time.sleep(0.01)
    build(store, "b-2023-01-01")
    (store.root / ".building-123").mkdir()
    (store.root / "half-2024-01-01").mkdir()  # no manifest: not a release
    (store.root / "bad-2024-01-01").mkdir()
    (store.root / "bad-2024-01-01" / "manifest.json").write_text("{")
    assert [m.id for m in store.list()] == ["b-2023-01-01", "a-2024-01-01"]
    newest = store.newest()
    assert newest is not None
    assert newest.id == "b-2023-01-01"
    with pytest.raises(ReleaseError, match="unreadable"):
        store.get("bad-2024-01-01")


def test_unknown_release(store: ReleaseStore) -> None:
    for release_id in ("nope-2024-01-01", "../etc", ".building-1", "half"):
        with pytest.raises(ReleaseNotFound):
            store.get(release_id)
        with pytest.raises(NotFound):
            store.load(release_id)
    with pytest.raises(ReleaseNotFound):
        store.delete("nope-2024-01-01")


def test_invalid_ids_are_refused(store: ReleaseStore) -> None:
    for release_id in ("../escape", "Upper", ".hidden", "", "a/b"):
        with pytest.raises(InvalidInput):
            store.path(release_id)
        with pytest.raises(InvalidInput), store.building(release_id, "x"):
            pass
    assert not store.root.exists() or not list(store.root.iterdir())


def test_existing_id_conflicts_unless_suffixed(store: ReleaseStore) -> None:
    build(store, "test-2024-01-01")
    with pytest.raises(Conflict), store.building("test-2024-01-01", "test"):
        pass
    assert store.free_id("test-2024-01-01") == "test-2024-01-01-2"
    with store.building("test-2024-01-01", "test", auto_suffix=True) as builder:
        pass
    assert builder.manifest.id == "test-2024-01-01-2"
    with store.building("test-2024-01-01", "test", auto_suffix=True) as builder:
        build(store, "test-2024-01-01-3")  # taken while this one was building
    assert builder.manifest.id == "test-2024-01-01-4"
    assert not list(store.root.glob(".building-*"))


def test_failed_build_leaves_nothing(store: ReleaseStore) -> None:
    def fail() -> None:
        with store.building("test-2024-01-01", "test") as builder:
            builder.write_table("places", pa.table(PLACE))
            (builder.scratch / "tmp").write_bytes(b"x")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert store.list() == []
    assert list(store.root.iterdir()) == []


def test_delete(store: ReleaseStore) -> None:
    build(store, "test-2024-01-01", places=pa.table(PLACE))
    release = store.load("test-2024-01-01")
    places = release.table("places")
    store.delete("test-2024-01-01")
    assert store.list() == []
    assert [p.name for p in store.root.iterdir()] == [".verified"]
    assert list((store.root / ".verified").iterdir()) == []
    assert places["name"].to_pylist() == ["Kamppi"]  # still mapped


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"colour": ["red"]}, "unknown columns"),
        ({"name": pa.array([None], pa.string())}, "may not be null"),
        ({"lon": ["east"]}, "does not convert"),
    ],
)
def test_write_refuses_what_the_schema_does_not_allow(
    store: ReleaseStore, columns: dict[str, object], message: str
) -> None:
    table = pa.table({**PLACE, **columns})
    with (
        store.building("test-2024-01-01", "test") as builder,
        pytest.raises(ReleaseError, match=message),
    ):
        builder.write_table("places", table)


def test_write_conforms_to_the_schema(store: ReleaseStore) -> None:
    with store.building("test-2024-01-01", "test") as builder:
        with pytest.raises(ValueError, match="unknown table"):
            builder.write_table("roads", pa.table(PLACE))
        builder.write_table("places", pa.table({**PLACE, "population": pa.array([5], pa.int32())}))
        with pytest.raises(ValueError, match="already written"):
            builder.write_table("places", pa.table(PLACE))
    table = store.load("test-2024-01-01").table("places")
    assert table.schema.equals(TABLES["places"])  # reordered, cast, missing columns null
    assert table.to_pylist()[0]["population"] == 5


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"colour": ["red"]}, "unknown columns"),
        ({"lon": ["far east"]}, "column lon of type string does not convert to double"),
        ({"lat": pa.array([None], pa.float64())}, "column lat has 1 nulls"),
    ],
)
def test_rows_that_do_not_fit_the_schema_are_refused(
    columns: dict[str, object], message: str
) -> None:
    data = pa.RecordBatch.from_pydict({**PLACE, **columns})
    with pytest.raises(ReleaseError, match=message):
        conform(data, "places")


def test_tables_are_streamed_in_batches(store: ReleaseStore) -> None:
    batches = (
        pa.RecordBatch.from_pydict(
            {"id": [f"n{i}"], "name": ["x"], "lon": [float(i)], "lat": [0.0]}
        )
        for i in range(5)
    )
    with store.building("test-2024-01-01", "test") as builder:
        assert builder.write_table("places", batches) == 5
    reader = pa.ipc.open_file(str(store.path("test-2024-01-01") / "places.arrow"))
    assert reader.num_record_batches == 5
    assert builder.manifest.counts["places"] == 5


def test_other_schema_versions_are_refused(store: ReleaseStore) -> None:
    build(store, "test-2024-01-01")
    path = store.path("test-2024-01-01") / "manifest.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ReleaseError, match="rebuild it"):
        store.load("test-2024-01-01")


def test_releases_of_the_previous_index_version_are_refused(store: ReleaseStore) -> None:
    build(store, "test-2024-01-01")
    path = store.path("test-2024-01-01") / "manifest.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "index_version": INDEX_VERSION - 1}))
    message = f"index version {INDEX_VERSION - 1} but this geobatch reads version {INDEX_VERSION}"
    with pytest.raises(ReleaseError, match=f"{message}: rebuild it"):
        store.load("test-2024-01-01")


def test_loading_maps_instead_of_copying(monaco: Release) -> None:
    release = ReleaseStore(monaco.path.parent).load(monaco.manifest.id)
    before = pa.total_allocated_bytes()
    rows = sum(release.table(name).num_rows for name in TABLES)
    assert rows > 1000
    assert pa.total_allocated_bytes() - before < 64 * 1024


LOAD_SCRIPT = """
import json, sys, time
started = time.perf_counter()
import pyarrow as pa
from geobatch.reference import TABLES, ReleaseStore
release = ReleaseStore(sys.argv[1]).load(sys.argv[2])
rows = {name: release.table(name).num_rows for name in TABLES}
print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows,
                  "allocated": pa.total_allocated_bytes()}))
"""


def test_a_fresh_process_loads_a_release_quickly(monaco: Release) -> None:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(monaco.path.parent), monaco.manifest.id],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    wall = time.perf_counter() - started
    result = json.loads(out.stdout)
    assert result["rows"] == monaco.manifest.counts
    assert result["allocated"] < 64 * 1024  # memory-mapped, not read into memory
    assert wall < 5  # loosely: benchmarks/reference.py holds the < 1 s target
