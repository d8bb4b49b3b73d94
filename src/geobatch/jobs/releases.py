"""Which reference release a job matches against, and loading it once per process.

Releases live in a local folder (``releases_dir``) or, for a cluster, in object storage
(``releases_url``, e.g. ``s3://bucket/releases``): then jobs are resolved against the
manifests there and every worker mirrors the release it needs into its own ``releases_dir``
(``io.mirror``), because the tables and indexes are memory-mapped and mapping needs a local
file. A release changed in storage is copied again on its next use.
"""

from __future__ import annotations

import functools
import json
import posixpath
from pathlib import Path
from typing import Any

import fsspec

from geobatch.config import Settings
from geobatch.errors import InvalidInput
from geobatch.io.mirror import LISTING, mirror
from geobatch.reference import Manifest, Release, ReleaseNotFound, ReleaseStore
from geobatch.reference.indexes import INDEX_VERSION
from geobatch.reference.release import MANIFEST, check_release_id
from geobatch.reference.schema import SCHEMA_VERSION

DEFAULT_ALIAS = "default"
"""``release: "default"`` names the bundled default release, whatever else is installed."""


def resolve_release(store: ReleaseStore, requested: str | None) -> Manifest:
    """The release a new job will use: the one asked for (by id, or by name for the newest
    release of that name), else the newest.

    With no release at all, the bundled default is built first (once, a few seconds), so a
    fresh installation can match records without any import.
    """
    from geobatch.reference import ensure_default_release  # the importer loads osmium

    if requested == DEFAULT_ALIAS:
        return ensure_default_release(store)
    if requested is None:
        newest = store.newest()
        return newest if newest is not None else ensure_default_release(store)
    try:
        return store.load(store.resolve(requested).id).manifest
    except ReleaseNotFound:
        known = ", ".join(m.id for m in store.list()) or "none"
        raise InvalidInput(
            f"options.release: reference release {requested!r} does not exist; known: {known}",
            field="options.release",
        ) from None


def remote_manifests(url: str) -> list[Manifest]:
    """The manifests of the releases published under ``url``, newest first."""
    fs, found_root = fsspec.core.url_to_fs(url)
    root: str = found_root.rstrip("/")
    fs.invalidate_cache(root)
    paths = fs.glob(posixpath.join(root, "*", MANIFEST))
    found = fs.cat(paths, on_error="omit") if paths else {}
    manifests = []
    for path, data in found.items():
        try:
            manifest = Manifest.from_json(json.loads(data))
        except (ValueError, KeyError, TypeError):
            continue
        if manifest.id == posixpath.basename(posixpath.dirname(path)):
            manifests.append(manifest)
    return sorted(manifests, key=lambda m: (m.created_at, m.id), reverse=True)


def resolve_remote_release(url: str, requested: str | None) -> Manifest:
    """``resolve_release`` over the releases published in object storage.

    Nothing is built here: a cluster's releases are built once and published
    (``publish_release``), so ``default`` must have been published too.
    """
    manifests = remote_manifests(url)
    if requested == DEFAULT_ALIAS:
        readable = [
            m
            for m in manifests
            if m.name == DEFAULT_ALIAS
            and m.schema_version == SCHEMA_VERSION
            and m.index_version == INDEX_VERSION
        ]
        found = readable[:1]
    elif requested is None:
        found = manifests[:1]
    else:
        found = [m for m in manifests if m.id == requested] or [
            m for m in manifests if m.name == requested
        ][:1]
    if not found:
        known = ", ".join(m.id for m in manifests) or "none"
        missing = (
            "no release is published"
            if requested is None
            else f"reference release {requested!r} is not published"
        )
        raise InvalidInput(
            f"options.release: {missing} in {url}; known: {known}",
            field="options.release",
        )
    return found[0]


def resolve_for(settings: Settings, requested: str | None) -> Manifest:
    """The release a new job will use, wherever this installation keeps its releases."""
    if settings.releases_url:
        return resolve_remote_release(settings.releases_url, requested)
    return resolve_release(ReleaseStore(settings.releases_path), requested)


def publish_release(store: ReleaseStore, release_id: str, url: str, **options: Any) -> str:
    """Upload a local release to ``<url>/<id>``, its manifest last (its presence marks the
    release complete, as on disk); returns the release's URL."""
    folder = store.load(release_id).path
    fs, found_root = fsspec.core.url_to_fs(url, **options)
    target = posixpath.join(found_root.rstrip("/"), check_release_id(release_id))
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name not in (MANIFEST, LISTING)
    )
    for path in [*files, folder / MANIFEST]:
        fs.put_file(str(path), posixpath.join(target, path.relative_to(folder).as_posix()))
    fs.invalidate_cache(target)
    return f"{url.rstrip('/')}/{release_id}"


@functools.lru_cache(maxsize=4)
def _open(releases_dir: str, release_id: str, version: str) -> Release:
    """One opened release per local copy (``version``: what the copy was mirrored from)."""
    return ReleaseStore(Path(releases_dir)).load(release_id)


def load_release(releases_dir: str, release_id: str, releases_url: str = "") -> Release:
    """The release opened once per process; its tables are memory-mapped and shared.

    With ``releases_url`` the release is first mirrored into ``releases_dir`` (one listing
    request when the local copy is current), and opened again when the copy was refreshed.
    """
    if not releases_url:
        return _open(releases_dir, release_id, "")
    remote = f"{releases_url.rstrip('/')}/{check_release_id(release_id)}"
    copy = mirror(remote, Path(releases_dir))
    return _open(releases_dir, release_id, (copy / LISTING).read_text())
