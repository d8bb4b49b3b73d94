"""Releases in object storage (S3 on moto): jobs resolve them there, workers map local mirrors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest

from geobatch.errors import InvalidInput
from geobatch.jobs.releases import load_release, remote_manifests, resolve_remote_release
from geobatch.reference import Release

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
    assert [m.id for m in remote_manifests(url)] == [release_id]
    assert resolve_remote_release(url, None).id == release_id
    assert resolve_remote_release(url, "default").id == release_id
    assert resolve_remote_release(url, release_id) == helsinki.manifest

    cache = tmp_path / "cache"
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


def test_a_release_missing_from_storage_is_a_clear_error(s3_url: str) -> None:
    url = f"{s3_url}/releases"
    with pytest.raises(InvalidInput, match="no release is published in s3://"):
        resolve_remote_release(url, None)
    with pytest.raises(InvalidInput, match=r"'nope' is not published in s3://.*known: none"):
        resolve_remote_release(url, "nope")
