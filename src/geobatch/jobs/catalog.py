"""The releases an installation can use: those built here and those published to object storage.

Every caller that lists or names releases (``/v1/releases``, HERE's ``/v7/version``, the
console, ``geobatch releases list|show`` and job resolution) asks one ``ReleaseCatalog``, so
they agree on what exists. With ``releases_url`` the local folder is also the cache that
workers mirror published releases into (``io.mirror``): a mirrored copy is not listed as a
release of its own, since its published manifest stands for it. A release built here and
published under the same id is listed once, from the local manifest (the original).

The published manifests are read with one listing and one concurrent fetch, and reused for
``PUBLISHED_MAX_AGE`` seconds, so a page of the console or a burst of job submissions costs
the store a request now and then rather than one per call. A publish from this process is
seen at once; one from elsewhere within that age. While the store cannot be read, the last
listing read from it stands.
"""

from __future__ import annotations

import json
import logging
import posixpath
import threading
import time
from dataclasses import dataclass

import fsspec

from geobatch.config import Settings
from geobatch.io.mirror import LISTING
from geobatch.reference import Manifest, ReleaseError, ReleaseNotFound, ReleaseStore
from geobatch.reference.release import MANIFEST, find_release

log = logging.getLogger(__name__)

PUBLISHED_MAX_AGE = 10.0
"""Seconds a listing of the published manifests is reused."""

_listings: dict[str, tuple[float, list[Manifest]]] = {}
_listings_lock = threading.Lock()


def _newest_first(manifests: list[Manifest]) -> list[Manifest]:
    return sorted(manifests, key=lambda m: (m.created_at, m.id), reverse=True)


def read_published(url: str) -> list[Manifest]:
    """The manifests of the releases published under ``url``, newest first, read now.

    A manifest that is unreadable or names another id than its folder is skipped, as
    ``ReleaseStore.list`` skips such folders on disk.
    """
    fs, found_root = fsspec.core.url_to_fs(url)
    root: str = found_root.rstrip("/")
    fs.invalidate_cache(root)
    paths = fs.glob(posixpath.join(root, "*", MANIFEST))
    found = fs.cat(paths, on_error="omit") if paths else {}
    manifests = []
    for path, data in found.items():
        try:
            manifest = Manifest.from_json(json.loads(data))
        except (ValueError, ReleaseError):
            continue
        if manifest.id == posixpath.basename(posixpath.dirname(path)):
            manifests.append(manifest)
    return _newest_first(manifests)


def published_manifests(url: str, max_age: float = PUBLISHED_MAX_AGE) -> list[Manifest]:
    """``read_published``, reused while younger than ``max_age`` seconds."""
    key = url.rstrip("/")
    with _listings_lock:
        cached = _listings.get(key)
    if cached is not None and time.monotonic() - cached[0] < max_age:
        return list(cached[1])
    read_at = time.monotonic()
    try:
        manifests = read_published(key)
    except Exception:
        # Any failure of the store (unreachable, refusing, timing out): the releases did not
        # change because it is out, so the last good listing stands, asked again after max_age.
        if cached is None:
            raise
        log.warning("published releases at %s unreadable; listing the last read", key)
        manifests = cached[1]
    with _listings_lock:
        _listings[key] = (read_at, manifests)
    return list(manifests)


def forget_published(url: str) -> None:
    """Drop the reused listing of ``url`` (after publishing there), so the next read is fresh."""
    with _listings_lock:
        _listings.pop(url.rstrip("/"), None)


@dataclass(frozen=True)
class ReleaseCatalog:
    """The local releases folder merged with the releases published at ``url`` (if any)."""

    store: ReleaseStore
    url: str = ""

    @classmethod
    def for_settings(cls, settings: Settings) -> ReleaseCatalog:
        return cls(ReleaseStore(settings.releases_path), settings.releases_url)

    def _is_copy(self, release_id: str) -> bool:
        return (self.store.path(release_id) / LISTING).exists()

    def built_here(self) -> list[Manifest]:
        """The releases of the local folder, less the copies mirrored from ``url``."""
        local = self.store.list()
        if not self.url:
            return local
        return [manifest for manifest in local if not self._is_copy(manifest.id)]

    def published(self) -> list[Manifest]:
        return published_manifests(self.url) if self.url else []

    def is_built_here(self, release_id: str) -> bool:
        """Whether the release is a local original (loaded from the folder, not mirrored)."""
        try:
            self.store.get(release_id)
        except ReleaseNotFound:
            return False
        return not (self.url and self._is_copy(release_id))

    def list(self) -> list[Manifest]:
        """Every release, newest first (the newest is what jobs use by default)."""
        local = self.built_here()
        ids = {manifest.id for manifest in local}
        return _newest_first(local + [m for m in self.published() if m.id not in ids])

    def resolve(self, name_or_id: str) -> Manifest:
        """A release by its id, else the newest release of that name."""
        return find_release(self.list(), name_or_id)

    def newest(self) -> Manifest | None:
        releases = self.list()
        return releases[0] if releases else None
