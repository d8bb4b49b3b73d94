"""Which locality, city, region and country a point lies in: the release's mapped area index.

The index and how it answers live in ``reference.indexes.areas`` (the reverse-geocoding index
is built from it at import); here a worker opens it once per release.
"""

from __future__ import annotations

from geobatch.engines.geocode.cache import cached
from geobatch.reference import Release
from geobatch.reference.indexes.areas import NULL, AreaHits, AreaIndex


def area_index(release: Release) -> AreaIndex:
    """The release's area index, mapped from its files (opened once per process)."""
    return cached("areas", release, lambda r: AreaIndex.open(r.path))


__all__ = ["NULL", "AreaHits", "AreaIndex", "area_index"]
