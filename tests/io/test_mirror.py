"""Mirroring a directory from storage (a folder, or S3 on moto) into a local cache."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from geobatch.io.mirror import LISTING, MirrorError, mirror
from geobatch.io.storage import BlobStorage

FILES = {
    "manifest.json": b'{"id": "r1"}',
    "roads/graph.bin": os.urandom(300_000),
    "index/text.idx": b"\x00\x01" * 1000,
}


@pytest.fixture(params=["local", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a release-like directory, written through blob storage."""
    base = (
        str(tmp_path / "store") if request.param == "local" else request.getfixturevalue("s3_url")
    )
    storage = BlobStorage(base)
    for name, data in FILES.items():
        storage.write_bytes(f"releases/r1/{name}", data)
    return f"{base}/releases/r1"


def contents(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and path.name != LISTING
    }


def test_a_directory_is_copied_whole_and_reused_while_unchanged(
    remote: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    copy = mirror(remote, cache)
    assert copy == cache / "r1"
    assert contents(copy) == FILES
    stamp = (copy / "roads/graph.bin").stat().st_mtime_ns

    again = mirror(remote, cache)
    assert again == copy
    assert (copy / "roads/graph.bin").stat().st_mtime_ns == stamp  # not copied again
    assert sorted(p.name for p in cache.iterdir()) == ["r1"]  # no staging folder left


def test_a_changed_directory_is_copied_again(remote: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mirror(remote, cache)
    BlobStorage(remote).write_bytes("index/text.idx", b"rebuilt")

    copy = mirror(remote, cache)

    assert contents(copy) == {**FILES, "index/text.idx": b"rebuilt"}
    assert sorted(p.name for p in cache.iterdir()) == ["r1"]


def test_workers_mirroring_at_once_share_one_whole_copy(remote: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    copies: list[Path] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        copies.append(mirror(remote, cache))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert copies == [cache / "r1"] * 4
    assert contents(cache / "r1") == FILES
    assert sorted(p.name for p in cache.iterdir()) == ["r1"]


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    with pytest.raises(MirrorError, match="nothing to mirror"):
        mirror(str(tmp_path / "store" / "absent"), tmp_path / "cache")
