"""Which locality, city, district, county, region and country a point lies in: the release's
mapped area and subdivisions indexes.

The indexes and how they answer live in ``reference.indexes.areas`` and
``reference.indexes.subdivisions`` (the reverse-geocoding index is built from them at import);
here a worker opens them once per release.
"""

from __future__ import annotations

from geobatch.engines.geocode.cache import cached
from geobatch.reference import Release
from geobatch.reference.indexes.areas import NULL, AreaHits, AreaIndex
from geobatch.reference.indexes.subdivisions import Subdivisions


def area_index(release: Release) -> AreaIndex:
    """The release's area index, mapped from its files (opened once per process)."""
    return cached("areas", release, lambda r: AreaIndex.open(r.path))


def subdivisions_index(release: Release) -> Subdivisions:
    """The release's districts and counties, mapped from its files (opened once per process)."""
    return cached("subdivisions", release, lambda r: Subdivisions.open(r.path))


__all__ = ["NULL", "AreaHits", "AreaIndex", "Subdivisions", "area_index", "subdivisions_index"]
