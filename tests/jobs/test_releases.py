"""Which reference release a job gets: the one named, the bundled default, else the newest."""

from __future__ import annotations

from pathlib import Path

import pytest

from geobatch.errors import InvalidInput
from geobatch.jobs.catalog import ReleaseCatalog
from geobatch.jobs.releases import load_release, resolve_release
from geobatch.reference import Release, ReleaseStore, import_osm


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
