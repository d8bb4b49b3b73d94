"""The indexes reverse geocoding searches, built from a release once per process.

Address points go into a k-d tree. Named road segments are cut into short straight edges
(at most ``EDGE_MAX_DEG`` long) whose midpoints go into a k-d tree: the nearest edge is among
the few nearest midpoints, and projecting onto a handful of candidate edges is cheap vector
arithmetic, so a whole chunk costs two tree queries instead of one geometry search per point.
House numbers are interpolated from the numbered address points of the same street near the
projected point: on the same side of the street, the nearest one behind and the nearest one
ahead along the street's local direction. That needs no linear referencing of whole streets,
which OSM splits into many ways and segments of either direction.
What each address and segment says about its area (city, region, country) is resolved here
too, so answering a point needs no area search unless it is far from any street.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from scipy.spatial import cKDTree

from geobatch.engines.geocode.areas import NULL, AreaIndex
from geobatch.engines.geocode.spatial import (
    closest_on_edges,
    side_of_edge,
    sphere_latlon,
    sphere_xyz,
)
from geobatch.reference import Release

EDGE_MAX_DEG = 0.0002
"""Longest edge, in degrees (about 22 m north-south, less east-west)."""
EDGE_NEIGHBOURS = 6
ADDRESS_TO_STREET_M = 150.0
"""How far from the projected point numbered addresses still bound its house number."""
NUMBER_NEIGHBOURS = 6
NUMBER_FIRST = frozenset({"US", "CA", "GB", "IE", "AU", "NZ", "FR", "MC", "LU", "BE", "ZA"})
"""Countries that write the house number before the street name."""


@dataclass(frozen=True, kw_only=True)
class AddressPoints:
    tree: cKDTree | None
    lat: np.ndarray
    lon: np.ndarray
    rows: pa.Table
    """Per address: label, houseNumber, street, postalCode, city, state, country, ref_id."""
    key: np.ndarray
    """Per address point: a code of its street and house number; points of one address (two
    entrances) share it, so the nearest *other* address can be told apart."""


@dataclass(frozen=True, kw_only=True)
class NumberedPoints:
    """Address points with a numeric house number, by street name code."""

    tree: cKDTree | None
    xyz: np.ndarray
    number: np.ndarray
    street: np.ndarray  # street name code (shared with ``StreetEdges.street``)


@dataclass(frozen=True, kw_only=True)
class StreetEdges:
    tree: cKDTree | None  # over edge midpoints
    starts: np.ndarray  # (m, 3)
    ends: np.ndarray
    along: np.ndarray  # ends - starts
    inverse_length2: np.ndarray  # 1 / |along|², 0 for a zero-length edge
    segment: np.ndarray  # named-segment row of each edge
    street: np.ndarray  # street name code of each named segment
    reach_m: float  # half the longest edge: how much farther a midpoint may be
    rows: pa.Table
    """Per named segment: street, city, state, country, ref_id."""
    numbered: NumberedPoints


@dataclass(frozen=True, kw_only=True)
class ReverseIndex:
    release_id: str
    addresses: AddressPoints
    streets: StreetEdges
    areas: AreaIndex

    def country_name(self, codes: np.ndarray) -> np.ndarray:
        names = self.areas.gazetteer.country_names
        known = codes != None  # noqa: E711 (element-wise)
        result = np.full(len(codes), None, dtype=object)
        if known.any():
            unique, inverse = np.unique(codes[known].astype(str), return_inverse=True)
            result[known] = np.array([names.get(c, c) for c in unique], dtype=object)[inverse]
        return result


def flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array: element-wise kernels over several chunked arrays need the same
    chunk layout in all of them, which columns of different tables do not have."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Trimmed strings, null where blank."""
    trimmed = pc.utf8_trim_whitespace(flat(column))
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def street_key(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Street names as compared between addresses and segments: trimmed and case-folded."""
    return pc.utf8_lower(pc.utf8_trim_whitespace(column))


def house_label(
    street: pa.Array | pa.ChunkedArray,
    number: pa.Array | pa.ChunkedArray,
    country: pa.Array | pa.ChunkedArray,
) -> pa.ChunkedArray:
    """``Mannerheimintie 12`` or ``12 Rue Grimaldi``, as the country writes it."""
    street, number, country = flat(street), flat(number), flat(country)
    first = pc.fill_null(pc.is_in(country, pa.array(sorted(NUMBER_FIRST))), False)
    return pc.if_else(
        first, join(number, street, separator=" "), join(street, number, separator=" ")
    )


def join(*parts: pa.Array | pa.ChunkedArray, separator: str = ", ") -> pa.Array:
    """The non-null parts joined, element-wise; null where all are null.

    (``binary_join_element_wise`` with ``null_handling="skip"`` drops the rows where every
    part is null, so the skipping is done here.)
    """
    result = flat(parts[0])
    for part in parts[1:]:
        part = flat(part)
        both = pc.binary_join_element_wise(result, part, separator)
        result = pc.coalesce(both, result, part)
    return result


def _addresses(release: Release, areas: AreaIndex) -> AddressPoints:
    table = release.table("addresses")
    lat = table.column("lat").to_numpy()
    lon = table.column("lon").to_numpy()
    hits = areas.resolve(lat, lon)
    city = pc.coalesce(text(table.column("city")), _fill(hits.city, areas))
    country = pc.coalesce(text(table.column("country")), pa.array(hits.country, pa.string()))
    state = pc.coalesce(text(table.column("state")), pa.array(hits.state, pa.string()))
    street = text(table.column("street"))
    number = text(table.column("housenumber"))
    postcode = text(table.column("postcode"))
    place = join(postcode, city, separator=" ")
    rows = pa.table(
        {
            "label": join(house_label(street, number, country), place),
            "houseNumber": number,
            "street": street,
            "postalCode": postcode,
            "city": city,
            "state": state,
            "country": country,
            "ref_id": table.column("id"),
        }
    )
    tree = cKDTree(sphere_xyz(lat, lon)) if table.num_rows else None
    codes: dict[tuple[str, str], int] = {}
    key = np.array(
        [
            codes.setdefault((str(s).casefold(), str(n).casefold()), len(codes))
            for s, n in zip(street.to_pylist(), number.to_pylist(), strict=True)
        ],
        dtype=np.int64,
    )
    return AddressPoints(tree=tree, lat=lat, lon=lon, rows=rows, key=key)


def _fill(rows: np.ndarray, areas: AreaIndex) -> pa.Array:
    """The names of candidate ``rows`` (null where -1)."""
    names = areas.places.names[np.maximum(rows, 0)]
    return pa.array(np.where(rows >= 0, names, NULL), pa.string())


def _edges(segments: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts, ends and owning segment row of every short straight edge."""
    lines = shapely.segmentize(
        shapely.from_wkb(segments.column("geometry").to_numpy(zero_copy_only=False)),
        EDGE_MAX_DEG,
    )
    coordinates, owner = shapely.get_coordinates(lines, return_index=True)
    xyz = sphere_xyz(coordinates[:, 1], coordinates[:, 0])
    same = owner[1:] == owner[:-1]
    return xyz[:-1][same], xyz[1:][same], owner[1:][same]


def nearest_edges(
    edges: StreetEdges, xyz: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: the nearest edge (-1 for none within ``max_distance``), the distance and
    the projected position."""
    size = len(xyz)
    if edges.tree is None or not size:
        return np.full(size, -1, dtype=np.int64), np.full(size, np.inf), np.zeros((size, 3))
    k = min(EDGE_NEIGHBOURS, len(edges.segment))
    _, index = edges.tree.query(xyz, k=k, distance_upper_bound=max_distance + edges.reach_m)
    index = index.reshape(size, k)
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


def _house_numbers(column: pa.ChunkedArray) -> np.ndarray:
    """The leading integer of each house number (``12b`` → 12), -1 where there is none."""
    digits = pc.extract_regex(column, r"^\s*(?P<n>\d{1,6})")
    values = pc.struct_field(digits, "n")
    return np.asarray(pc.fill_null(pc.cast(values, pa.int64()), -1))


def _numbered(addresses: pa.Table, codes: dict[str, int]) -> NumberedPoints:
    numbers = _house_numbers(addresses.column("housenumber"))
    names = street_key(addresses.column("street")).to_pylist()
    street = np.array([codes.get(name, -1) if name else -1 for name in names], dtype=np.int64)
    keep = (numbers >= 0) & (street >= 0)
    xyz = sphere_xyz(
        addresses.column("lat").to_numpy()[keep], addresses.column("lon").to_numpy()[keep]
    )
    return NumberedPoints(
        tree=cKDTree(xyz) if len(xyz) else None,
        xyz=xyz,
        number=numbers[keep],
        street=street[keep],
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
    if not len(found) or points.tree is None:
        return result
    k = min(NUMBER_NEIGHBOURS, len(points.number))
    _, index = points.tree.query(projected[found], k=k, distance_upper_bound=ADDRESS_TO_STREET_M)
    index = index.reshape(len(found), k)
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
    usable = same_street & (side_of_edge(points.xyz[index], start, end) == query_side)
    direction = edges.along[e] * np.sqrt(edges.inverse_length2[e])[:, None]
    along = np.einsum("nki,ni->nk", points.xyz[index] - here[:, None, :], direction)
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


def _streets(release: Release, areas: AreaIndex) -> StreetEdges:
    segments = release.table("segments")
    named = segments.filter(pc.fill_null(pc.is_valid(text(segments.column("name"))), False))
    starts, ends, segment = _edges(named)
    middle = (starts + ends) / 2
    # what each segment says about its area: resolved at the middle of its first edge
    first = np.unique(segment, return_index=True)[1]
    seg_lat = np.zeros(named.num_rows)
    seg_lon = np.zeros(named.num_rows)
    if len(first):
        lat, lon = sphere_latlon(middle[first])
        seg_lat[segment[first]] = lat
        seg_lon[segment[first]] = lon
    hits = areas.resolve(seg_lat, seg_lon)
    rows = pa.table(
        {
            "street": text(named.column("name")),
            "city": _fill(hits.city, areas),
            "state": pa.array(hits.state, pa.string()),
            "country": pa.array(hits.country, pa.string()),
            "ref_id": named.column("id"),
        }
    )
    names = street_key(named.column("name")).to_pylist()
    codes: dict[str, int] = {}
    street = np.array([codes.setdefault(name, len(codes)) for name in names], dtype=np.int64)
    along = ends - starts
    length2 = np.einsum("ij,ij->i", along, along)
    length = np.sqrt(length2)
    return StreetEdges(
        tree=cKDTree(middle) if len(segment) else None,
        starts=starts,
        ends=ends,
        along=along,
        inverse_length2=np.divide(1.0, length2, out=np.zeros_like(length2), where=length2 > 0),
        segment=segment,
        street=street,
        reach_m=float(length.max(initial=0.0)) / 2,
        rows=rows,
        numbered=_numbered(release.table("addresses"), codes),
    )


_CACHE: dict[tuple[str, str], ReverseIndex] = {}
_LOCK = threading.Lock()


def reverse_index(release: Release) -> ReverseIndex:
    """The release's indexes, built on first use and kept for the life of the process."""
    key = (release.manifest.id, str(release.path))
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            areas = AreaIndex.build(release)
            found = ReverseIndex(
                release_id=release.manifest.id,
                addresses=_addresses(release, areas),
                streets=_streets(release, areas),
                areas=areas,
            )
            _CACHE[key] = found
        return found
