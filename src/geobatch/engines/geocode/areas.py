"""Which locality, city, region and country a point lies in: the release's mapped area index.

The index and how it answers live in ``reference.indexes.areas`` (the reverse-geocoding index
is built from it at import); here a worker opens it once per release.
"""

from __future__ import annotations

import threading

from geobatch.reference import Release
from geobatch.reference.indexes.areas import NULL, AreaHits, AreaIndex

_CACHE: dict[tuple[str, str], AreaIndex] = {}
_LOCK = threading.Lock()


def area_index(release: Release) -> AreaIndex:
    """The release's area index, mapped from its files (opened once per process)."""
    key = (release.manifest.id, str(release.path))
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = AreaIndex.open(release.path)
        return found


__all__ = ["NULL", "AreaHits", "AreaIndex", "area_index"]
