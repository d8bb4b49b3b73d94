"""Which reference release a job matches against, and loading it once per process."""

from __future__ import annotations

import functools
from pathlib import Path

from geobatch.errors import InvalidInput
from geobatch.reference import Manifest, Release, ReleaseNotFound, ReleaseStore

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


@functools.lru_cache(maxsize=4)
def load_release(releases_dir: str, release_id: str) -> Release:
    """The release opened once per process; its tables are memory-mapped and shared."""
    return ReleaseStore(Path(releases_dir)).load(release_id)
