"""Which reference release a job matches against, and loading it once per process.

Releases live in a local folder (``releases_dir``) and, for a cluster, in object storage
(``releases_url``, e.g. ``s3://bucket/releases``): jobs are resolved against both
(``catalog.ReleaseCatalog``) and every worker mirrors the published release it needs into its
own ``releases_dir`` (``io.mirror``), because the tables and indexes are memory-mapped and
mapping needs a local file. A release changed in storage is copied again on its next use.
"""

from __future__ import annotations

import functools
import posixpath
from pathlib import Path
from typing import Any

import fsspec

from geobatch.config import Settings
from geobatch.errors import InvalidInput
from geobatch.io.mirror import LISTING, mirror
from geobatch.jobs.catalog import ReleaseCatalog, forget_published
from geobatch.reference import Manifest, Release, ReleaseNotFound, ReleaseStore
from geobatch.reference.indexes import INDEX_VERSION
from geobatch.reference.release import MANIFEST, check_readable, check_release_id
from geobatch.reference.schema import SCHEMA_VERSION

DEFAULT_ALIAS = "default"
"""``release: "default"`` names the bundled default release, whatever else is installed."""


def _default(catalog: ReleaseCatalog) -> Manifest:
    """The newest readable release named ``default``; built here (once, a few seconds) when
    there is none and no object store: a cluster's releases are built once and published."""
    from geobatch.reference import ensure_default_release  # the importer loads osmium

    for manifest in catalog.list():
        if (
            manifest.name == DEFAULT_ALIAS
            and manifest.schema_version == SCHEMA_VERSION
            and manifest.index_version == INDEX_VERSION
        ):
            return manifest
    if catalog.url:
        raise InvalidInput(
            "options.release: no release named 'default' is built here or published "
            "(publish one with `geobatch releases publish`)",
            field="options.release",
        )
    return ensure_default_release(catalog.store)


def resolve_release(catalog: ReleaseCatalog, requested: str | None) -> Manifest:
    """The release a new job will use: the one asked for (by id, or by name for the newest
    release of that name), else the newest.

    With no release at all, the bundled default is built first, so a fresh installation can
    match records without any import. A release built here has its files checked now; a
    published one is checked by each worker that mirrors it.
    """
    if requested == DEFAULT_ALIAS:
        return _default(catalog)
    if requested is None:
        newest = catalog.newest()
        return newest if newest is not None else _default(catalog)
    try:
        manifest = catalog.resolve(requested)
    except ReleaseNotFound:
        known = ", ".join(m.id for m in catalog.list()) or "none"
        raise InvalidInput(
            f"options.release: reference release {requested!r} does not exist; known: {known}",
            field="options.release",
        ) from None
    if catalog.is_built_here(manifest.id):
        return catalog.store.load(manifest.id).manifest
    return check_readable(manifest)


def resolve_for(settings: Settings, requested: str | None) -> Manifest:
    """The release a new job will use, wherever this installation keeps its releases."""
    return resolve_release(ReleaseCatalog.for_settings(settings), requested)


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
    forget_published(url)
    return f"{url.rstrip('/')}/{release_id}"


@functools.lru_cache(maxsize=4)
def _open(releases_dir: str, release_id: str, version: str) -> Release:
    """One opened release per local copy (``version``: what the copy was mirrored from)."""
    return ReleaseStore(Path(releases_dir)).load(release_id)


def load_release(releases_dir: str, release_id: str, releases_url: str = "") -> Release:
    """The release opened once per process; its tables are memory-mapped and shared.

    With ``releases_url`` a published release is first mirrored into ``releases_dir`` (one
    listing request when the local copy is current), and opened again when the copy was
    refreshed; a release built in ``releases_dir`` itself is opened where it is.
    """
    if releases_url:
        local = Path(releases_dir) / check_release_id(release_id)
        if not (local / MANIFEST).is_file() or (local / LISTING).exists():
            remote = f"{releases_url.rstrip('/')}/{release_id}"
            copy = mirror(remote, Path(releases_dir))
            return _open(releases_dir, release_id, (copy / LISTING).read_text())
    return _open(releases_dir, release_id, "")
