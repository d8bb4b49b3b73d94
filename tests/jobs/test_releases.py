"""Which reference release a job gets: the one named, the bundled default, else the newest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from geobatch.errors import InvalidInput
from geobatch.jobs import catalog as catalog_module
from geobatch.jobs.catalog import ReleaseCatalog, forget_published, published_manifests
from geobatch.jobs.releases import load_release, resolve_release
from geobatch.reference import SCHEMA_VERSION, Manifest, Release, ReleaseStore, import_osm


def test_default_names_the_bundled_release(session_store: ReleaseStore, helsinki: Release) -> None:
    assert resolve_release(ReleaseCatalog(session_store), "default").id == helsinki.manifest.id


def test_no_name_is_the_newest(session_store: ReleaseStore, helsinki: Release) -> None:
    newest = session_store.newest()
    assert newest is not None
    assert resolve_release(ReleaseCatalog(session_store), None).id == newest.id


def test_a_named_release_and_an_unknown_one(session_store: ReleaseStore, helsinki: Release) -> None:
    assert resolve_release(ReleaseCatalog(session_store), helsinki.manifest.id) == helsinki.manifest
    with pytest.raises(InvalidInput, match=r"options\.release: reference release 'nope'"):
        resolve_release(ReleaseCatalog(session_store), "nope")


def test_a_release_is_loaded_once_per_process(
    session_store: ReleaseStore, helsinki: Release
) -> None:
    first = load_release(str(session_store.root), helsinki.manifest.id)
    assert load_release(str(session_store.root), helsinki.manifest.id) is first
    assert first.table("segments").num_rows == helsinki.table("segments").num_rows


def test_a_release_is_found_by_its_name(tmp_path: Path, andorra: Release) -> None:
    """``release: osm-andorra`` is the newest release imported under that name."""
    store = ReleaseStore(tmp_path)
    older = import_osm(Path(andorra.manifest.sources[0].path), store, gazetteer=False)
    newer = import_osm(Path(andorra.manifest.sources[0].path), store, gazetteer=False)
    assert newer.id != older.id
    assert resolve_release(ReleaseCatalog(store), "osm-andorra").id == newer.id
    assert resolve_release(ReleaseCatalog(store), older.id).id == older.id
    with pytest.raises(InvalidInput, match="'osm-nowhere' does not exist"):
        resolve_release(ReleaseCatalog(store), "osm-nowhere")


def test_the_last_good_listing_stands_while_the_store_is_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/v1/releases`` and job resolution keep the published releases through an outage."""
    published = tmp_path / "published"
    (published / "default-x").mkdir(parents=True)
    manifest = Manifest(
        id="default-x",
        name="default",
        schema_version=SCHEMA_VERSION,
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        sources=(),
    )
    (published / "default-x" / "manifest.json").write_text(json.dumps(manifest.to_json()))
    catalog = ReleaseCatalog(ReleaseStore(tmp_path / "local"), str(published))
    assert [m.id for m in published_manifests(str(published), max_age=0)] == ["default-x"]

    def out(url: str) -> list[Manifest]:
        raise OSError(f"{url}: connection refused")

    monkeypatch.setattr(catalog_module, "read_published", out)
    assert [m.id for m in published_manifests(str(published), max_age=0)] == ["default-x"]
    assert [m.id for m in catalog.list()] == ["default-x"]
    assert catalog.resolve("default").id == "default-x"
    forget_published(str(published))  # nothing read yet: the outage shows
    with pytest.raises(OSError, match="connection refused"):
        published_manifests(str(published), max_age=0)
