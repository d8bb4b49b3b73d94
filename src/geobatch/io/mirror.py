"""Mirror a directory from blob storage (``s3://bucket/releases/<id>``) into a local cache.

Workers memory-map release files, which needs them on a local disk: each worker machine
keeps one verified copy per release directory and reuses it while the remote directory is
unchanged. Nothing here knows what a release contains; every file under the URL is copied.

A copy is made in a temporary folder beside the target, each file checked against the size
the store reported, and the folder renamed into place in one step: a reader sees no copy or a
whole one. Workers that mirror the same directory at once each make a copy; one rename wins
and the others use the winner's.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any

import fsspec

LISTING = ".mirror.json"
"""Written into each copy: the remote files (name, size, version tag) it was made from."""


class MirrorError(Exception):
    """The remote directory is missing or changed while it was copied."""


def _remote_listing(fs: Any, root: str) -> dict[str, dict[str, Any]]:
    fs.invalidate_cache(root)
    found = fs.find(root, detail=True)
    listing = {}
    for path, info in found.items():
        name = posixpath.relpath(path, root)
        tag = info.get("ETag") or info.get("mtime") or info.get("created")
        listing[name] = {"size": int(info["size"]), "tag": str(tag) if tag else None}
    if not listing:
        raise MirrorError(f"nothing to mirror at {root}")
    return listing


def _local_listing(copy: Path) -> dict[str, Any] | None:
    try:
        recorded: dict[str, Any] = json.loads((copy / LISTING).read_text())
    except (OSError, ValueError):
        return None
    return recorded


def mirror(url: str, cache_dir: Path, **options: Any) -> Path:
    """The local copy of the directory at ``url`` under ``cache_dir``, made or refreshed."""
    fs, found_root = fsspec.core.url_to_fs(url, **options)
    root: str = found_root.rstrip("/")
    listing = _remote_listing(fs, root)
    target = cache_dir / posixpath.basename(root)
    if _local_listing(target) == listing:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    try:
        for name, expected in listing.items():
            local = staging / name
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(posixpath.join(root, name), str(local))
            if local.stat().st_size != expected["size"]:
                raise MirrorError(f"{name} changed while it was copied from {url}")
        (staging / LISTING).write_text(json.dumps(listing, sort_keys=True))
        if _local_listing(target) is not None:
            # A stale copy: move it aside first (a directory cannot be renamed onto another);
            # another worker may have moved it already.
            stale = cache_dir / f"{staging.name}.stale"
            with contextlib.suppress(FileNotFoundError):
                target.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            if _local_listing(target) != listing:  # not another worker's identical copy
                raise
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
