"""Releases in object storage (S3 on moto): one catalogue merges them with the local ones, jobs
resolve them there, workers map local mirrors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import fsspec
import pytest

from geobatch.errors import InvalidInput
from geobatch.io.mirror import LISTING
from geobatch.jobs.catalog import ReleaseCatalog, published_manifests, read_published
from geobatch.jobs.releases import load_release, publish_release, resolve_release
from geobatch.reference import Release, ReleaseNotFound, ReleaseStore

pytest.importorskip("s3fs")


def mapped_files() -> set[str]:
    """The files this process has memory-mapped (Linux)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("/proc/self/maps is Linux only")
    return {line.split(maxsplit=5)[-1] for line in maps.read_text().splitlines() if "/" in line}


def test_a_worker_maps_a_local_mirror_and_mirrors_a_changed_release_again(
    helsinki: Release, releases_root: Path, s3_url: str, tmp_path: Path
) -> None:
    url = f"{s3_url}/releases"
    release_id = helsinki.manifest.id
    done = subprocess.run(
        [sys.executable, "-m", "geobatch", "releases", "publish", "default", "--to", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GEOBATCH_RELEASES_DIR": str(releases_root)},
    )
    assert done.returncode == 0, done.stderr
    assert f"release {release_id} published to {url}/{release_id}" in " ".join(done.stderr.split())
    assert [m.id for m in read_published(url)] == [release_id]
    cache = tmp_path / "cache"
    catalog = ReleaseCatalog(ReleaseStore(cache), url)
    assert resolve_release(catalog, None).id == release_id
    assert resolve_release(catalog, "default").id == release_id
    assert resolve_release(catalog, release_id) == helsinki.manifest

    release = load_release(str(cache), release_id, url)
    assert release.path == cache / release_id
    assert release.manifest == helsinki.manifest
    assert release.table("addresses").equals(helsinki.table("addresses"))
    assert str(cache / release_id / "addresses.arrow") in mapped_files()
    assert load_release(str(cache), release_id, url) is release  # unchanged: not copied again

    # The release is rebuilt in storage under the same id: the next use copies it again.
    fs, _ = fsspec.core.url_to_fs(url)
    manifest = json.loads(fs.cat(f"{url}/{release_id}/manifest.json"))
    fs.pipe(
        f"{url}/{release_id}/manifest.json", json.dumps({**manifest, "name": "rebuilt"}).encode()
    )
    again = load_release(str(cache), release_id, url)
    assert again is not release
    assert again.manifest.name == "rebuilt"
    assert json.loads((cache / release_id / "manifest.json").read_text())["name"] == "rebuilt"
    assert (
        release.table("addresses").num_rows == helsinki.table("addresses").num_rows
    )  # still mapped


def test_a_release_missing_from_storage_is_a_clear_error_without_the_store(
    s3_url: str, tmp_path: Path
) -> None:
    url = f"{s3_url}/releases"
    catalog = ReleaseCatalog(ReleaseStore(tmp_path / "cache"), url)
    with pytest.raises(InvalidInput, match="no release named 'default' is built here or published"):
        resolve_release(catalog, None)  # nothing is built: a cluster's releases are published
    with pytest.raises(InvalidInput, match=r"'nope' does not exist; known: none") as refused:
        resolve_release(catalog, "nope")
    assert s3_url.removeprefix("s3://").split("/")[0] not in str(refused.value)
    assert not (tmp_path / "cache").exists()


def later_copy(release: Release, release_id: str, hours: int) -> bytes:
    """The manifest of ``release`` republished under another id, ``hours`` newer."""
    data = release.manifest.to_json()
    created = release.manifest.created_at + timedelta(hours=hours)
    return json.dumps({**data, "id": release_id, "created_at": created.isoformat()}).encode()


def test_the_catalogue_merges_local_and_published_releases_and_reads_the_store_briefly(
    session_store: ReleaseStore, helsinki: Release, andorra: Release, s3_url: str, tmp_path: Path
) -> None:
    url = f"{s3_url}/releases"
    publish_release(session_store, helsinki.manifest.id, url)
    root = tmp_path / "releases"
    root.mkdir()
    (root / andorra.manifest.id).symlink_to(andorra.path, target_is_directory=True)
    catalog = ReleaseCatalog(ReleaseStore(root), url)
    both = sorted([helsinki.manifest, andorra.manifest], key=lambda m: m.created_at, reverse=True)
    assert catalog.list() == both

    # A published release used here is mirrored into the folder: still listed once, as published.
    mirrored = load_release(str(root), helsinki.manifest.id, url)
    assert (mirrored.path / LISTING).is_file()
    assert catalog.list() == both
    assert [m.id for m in catalog.built_here()] == [andorra.manifest.id]
    assert not catalog.is_built_here(helsinki.manifest.id)
    # The release built here is opened where it is, though it is not published.
    local = load_release(str(root), andorra.manifest.id, url)
    assert local.path == root / andorra.manifest.id
    assert not (local.path / LISTING).exists()
    assert resolve_release(catalog, andorra.manifest.id) == andorra.manifest

    # Another machine publishes a newer "default": seen once the listing has aged.
    fs, _ = fsspec.core.url_to_fs(url)
    assert [m.id for m in catalog.published()] == [helsinki.manifest.id]
    fs.pipe(f"{url}/default-later/manifest.json", later_copy(helsinki, "default-later", 1))
    assert [m.id for m in catalog.published()] == [helsinki.manifest.id]  # the listing, reused
    assert [m.id for m in published_manifests(url, max_age=0)] == [
        "default-later",
        helsinki.manifest.id,
    ]
    assert catalog.resolve("default").id == "default-later"
    assert resolve_release(catalog, "default").id == "default-later"
    assert catalog.newest() is not None
    assert {m.id for m in catalog.list()} == {
        "default-later",
        helsinki.manifest.id,
        andorra.manifest.id,
    }
    with pytest.raises(ReleaseNotFound):
        catalog.resolve("osm-nowhere")
