"""The reverse-geocoding index of a release as a worker uses it: mapped, then searched.

The address points, street edges and numbered points are built at import
(``reference.indexes.reverse``) and opened here from the release's files; a worker keeps only
the mapping and the few hundred country names. House numbers are interpolated from the
numbered address points of the same street near the projected point: on the same side of the
street, the nearest one behind and the nearest one ahead along the street's local direction.
That needs no linear referencing of whole streets, which OSM splits into many ways and
segments of either direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geobatch.engines.geocode.areas import Subdivisions, area_index, subdivisions_index
from geobatch.engines.geocode.cache import cached
from geobatch.engines.geocode.spatial import closest_on_edges, side_of_edge
from geobatch.reference import Release
from geobatch.reference.indexes.areas import AreaIndex
from geobatch.reference.indexes.labels import NUMBER_FIRST, house_label, join, text
from geobatch.reference.indexes.reverse import (
    AddressPoints,
    StreetEdges,
    open_addresses,
    open_streets,
)

EDGE_NEIGHBOURS = 6
ADDRESS_TO_STREET_M = 150.0
"""How far from the projected point numbered addresses still bound its house number."""
NUMBER_NEIGHBOURS = 6


@dataclass(frozen=True, kw_only=True)
class ReverseIndex:
    release_id: str
    addresses: AddressPoints
    streets: StreetEdges
    areas: AreaIndex
    subdivisions: Subdivisions
    country_names: dict[str, str]

    def country_name(self, codes: np.ndarray) -> np.ndarray:
        names = self.country_names
        known = codes != None  # noqa: E711 (element-wise)
        result = np.full(len(codes), None, dtype=object)
        if known.any():
            unique, inverse = np.unique(codes[known].astype(str), return_inverse=True)
            result[known] = np.array([names.get(c, c) for c in unique], dtype=object)[inverse]
        return result


def nearest_edges(
    edges: StreetEdges, xyz: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: the nearest edge (-1 for none within ``max_distance``), the distance and
    the projected position."""
    size = len(xyz)
    if not len(edges.segment) or not size:
        return np.full(size, -1, dtype=np.int64), np.full(size, np.inf), np.zeros((size, 3))
    k = min(EDGE_NEIGHBOURS, len(edges.segment))
    _, index = edges.middles.query(xyz, k=k, distance_upper_bound=max_distance + edges.reach_m)
    usable = index < len(edges.segment)
    index[~usable] = 0
    pick, distance, projected = closest_on_edges(
        xyz, edges.starts[index], edges.along[index], edges.inverse_length2[index], usable
    )
    found = distance <= max_distance
    return (
        np.where(found, index[np.arange(size), pick], -1),
        np.where(found, distance, np.inf),
        projected,
    )


def interpolate(
    edges: StreetEdges, xyz: np.ndarray, edge: np.ndarray, projected: np.ndarray
) -> np.ndarray:
    """House numbers for points projected onto their street edges; -1 where there is none.

    The numbered addresses of the same street on the point's side, nearest behind and ahead
    along the edge's direction (within ``ADDRESS_TO_STREET_M``), bound the number; it is
    placed between them by distance along the street, and when both share a parity (odd on
    one side, even on the other, as is usual) so does the result.
    """
    result = np.full(len(edge), -1, dtype=np.int64)
    found = np.flatnonzero(edge >= 0)
    points = edges.numbered
    if not len(found) or not len(points.number):
        return result
    k = min(NUMBER_NEIGHBOURS, len(points.number))
    _, index = points.points.query(projected[found], k=k, distance_upper_bound=ADDRESS_TO_STREET_M)
    missing = index >= len(points.number)
    index[missing] = 0
    e = edge[found]
    same_street = ~missing & (points.street[index] == edges.street[edges.segment[e]][:, None])
    # a number needs two neighbours of the street: the rest are done with here
    enough = np.count_nonzero(same_street, axis=1) >= 2
    found, index, same_street, e = found[enough], index[enough], same_street[enough], e[enough]
    here = projected[found]
    start, end = edges.starts[e][:, None, :], edges.ends[e][:, None, :]
    query_side = side_of_edge(xyz[found], edges.starts[e], edges.ends[e])[:, None]
    usable = same_street & (side_of_edge(points.points.xyz[index], start, end) == query_side)
    direction = edges.along[e] * np.sqrt(edges.inverse_length2[e])[:, None]
    along = np.einsum("nki,ni->nk", points.points.xyz[index] - here[:, None, :], direction)
    behind = np.where(usable & (along <= 0), along, -np.inf)
    ahead = np.where(usable & (along > 0), along, np.inf)
    b, a = np.argmax(behind, axis=1), np.argmin(ahead, axis=1)
    rows = np.arange(len(found))
    ok = np.isfinite(behind[rows, b]) & np.isfinite(ahead[rows, a])
    low, high = points.number[index[rows, b]], points.number[index[rows, a]]
    before, after = behind[rows, b], ahead[rows, a]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(ok, -before / (after - before), 0.0)
    guess = low + share * (high - low)
    paired = (low % 2) == (high % 2)
    snapped = np.where(paired, low + 2 * np.round((guess - low) / 2), np.round(guess))
    result[found[ok]] = snapped[ok].astype(np.int64)
    return result


def _open(release: Release) -> ReverseIndex:
    areas = area_index(release)
    return ReverseIndex(
        release_id=release.manifest.id,
        addresses=open_addresses(release.path),
        streets=open_streets(release.path),
        areas=areas,
        subdivisions=subdivisions_index(release),
        country_names=areas.country_names(),
    )


def reverse_index(release: Release) -> ReverseIndex:
    """The release's indexes, mapped from its files (opened once per process)."""
    return cached("reverse", release, _open)


__all__ = [
    "NUMBER_FIRST",
    "ReverseIndex",
    "house_label",
    "interpolate",
    "join",
    "nearest_edges",
    "reverse_index",
    "text",
]
