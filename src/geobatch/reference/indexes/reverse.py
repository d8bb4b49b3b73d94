"""The indexes reverse geocoding searches, built once at import and mapped by every worker.

Address points go into a point grid (``SpherePoints``). Named road segments are cut into short
straight edges (at most ``EDGE_MAX_DEG`` long) whose midpoints go into another: the nearest
edge is among the few nearest midpoints, and projecting onto a handful of candidate edges is
cheap vector arithmetic. Numbered address points, coded by street name, go into a third, for
interpolating house numbers. What each address and segment says about its area (city, region,
country) is resolved here too, so answering a point needs no area search unless it is far from
any street.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference.indexes.areas import NULL, AreaIndex
from geobatch.reference.indexes.files import open_array, open_table, write_array, write_table
from geobatch.reference.indexes.keys import single_array
from geobatch.reference.indexes.labels import house_label, join, text
from geobatch.reference.indexes.sphere import SpherePoints, sphere_latlon, sphere_xyz
from geobatch.reference.indexes.subdivisions import Subdivisions

PREFIX = "reverse"
EDGE_MAX_DEG = 0.0002
"""Longest edge, in degrees (about 22 m north-south, less east-west)."""
ADDRESS_CELL_M = 25.0
EDGE_CELL_M = 40.0
NUMBER_CELL_M = 40.0
"""The finest grid cells: about the distance to a point's nearest neighbours in a town."""
ADDRESS_REACH_M = 1_000.0
EDGE_REACH_M = 5_000.0
NUMBER_REACH_M = 150.0
"""The widest searches (the largest radius a request may ask for)."""
SEGMENTS_PER_BATCH = 100_000
"""Segments cut into edges at a time."""


@dataclass(frozen=True, kw_only=True)
class AddressPoints:
    points: SpherePoints
    lat: np.ndarray
    lon: np.ndarray
    rows: pa.Table
    """Per address: label, houseNumber, street, postalCode, city, district, county, state,
    country, ref_id."""
    key: np.ndarray
    """Per address point: a code of its street and house number; points of one address (two
    entrances) share it, so the nearest *other* address can be told apart."""


@dataclass(frozen=True, kw_only=True)
class NumberedPoints:
    """Address points with a numeric house number, by street name code."""

    points: SpherePoints
    number: np.ndarray
    street: np.ndarray  # street name code (shared with ``StreetEdges.street``)


@dataclass(frozen=True, kw_only=True)
class StreetEdges:
    middles: SpherePoints  # edge midpoints
    starts: np.ndarray  # (m, 3)
    ends: np.ndarray
    along: np.ndarray  # ends - starts
    inverse_length2: np.ndarray  # 1 / |along|², 0 for a zero-length edge
    segment: np.ndarray  # named-segment row of each edge
    street: np.ndarray  # street name code of each named segment
    reach_m: float  # half the longest edge: how much farther a midpoint may be
    rows: pa.Table
    """Per named segment: street, city, district, county, state, country, ref_id."""
    numbered: NumberedPoints


def street_key(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Street names as compared between addresses and segments: trimmed and case-folded."""
    return pc.utf8_lower(pc.utf8_trim_whitespace(column))


def _fill(rows: np.ndarray, areas: AreaIndex) -> pa.Array:
    """The names of candidate ``rows`` (null where -1)."""
    return pa.array(areas.places.labels_at("name", rows), pa.string())


def _addresses(table: pa.Table, areas: AreaIndex, subdivisions: Subdivisions) -> AddressPoints:
    lat = table.column("lat").to_numpy()
    lon = table.column("lon").to_numpy()
    hits = areas.resolve(lat, lon)
    district, county = subdivisions.resolve(lat, lon)
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
            "district": pa.array(district, pa.string()),
            "county": pa.array(county, pa.string()),
            "state": state,
            "country": country,
            "ref_id": table.column("id").combine_chunks(),
        }
    )
    codes: dict[tuple[str, str], int] = {}
    key = np.array(
        [
            codes.setdefault((str(s).casefold(), str(n).casefold()), len(codes))
            for s, n in zip(street.to_pylist(), number.to_pylist(), strict=True)
        ],
        dtype=np.int64,
    )
    return AddressPoints(
        points=SpherePoints.build(lat, lon, ADDRESS_CELL_M, ADDRESS_REACH_M),
        lat=lat,
        lon=lon,
        rows=rows,
        key=key,
    )


def _edges(segments: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts, ends and owning segment row of every short straight edge (segments are cut
    ``SEGMENTS_PER_BATCH`` at a time, so only the edges themselves take memory)."""
    wkb = segments.column("geometry")
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, max(segments.num_rows, 1), SEGMENTS_PER_BATCH):
        batch = wkb.slice(start, SEGMENTS_PER_BATCH).to_numpy(zero_copy_only=False)
        lines = shapely.segmentize(shapely.from_wkb(batch), EDGE_MAX_DEG)
        coordinates, owner = shapely.get_coordinates(lines, return_index=True)
        del lines
        xyz = sphere_xyz(coordinates[:, 1], coordinates[:, 0]).reshape(len(coordinates), 3)
        same = owner[1:] == owner[:-1]
        parts.append((xyz[:-1][same], xyz[1:][same], owner[1:][same] + start))
    starts, ends, owners = zip(*parts, strict=True)
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(owners)


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
    return NumberedPoints(
        points=SpherePoints.build(
            addresses.column("lat").to_numpy()[keep],
            addresses.column("lon").to_numpy()[keep],
            NUMBER_CELL_M,
            NUMBER_REACH_M,
        ),
        number=numbers[keep],
        street=street[keep],
    )


def _streets(
    segments: pa.Table, addresses: pa.Table, areas: AreaIndex, subdivisions: Subdivisions
) -> StreetEdges:
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
    district, county = subdivisions.resolve(seg_lat, seg_lon)
    rows = pa.table(
        {
            "street": text(named.column("name")),
            "city": _fill(hits.city, areas),
            "district": pa.array(district, pa.string()),
            "county": pa.array(county, pa.string()),
            "state": pa.array(hits.state, pa.string()),
            "country": pa.array(hits.country, pa.string()),
            "ref_id": named.column("id").combine_chunks(),
        }
    )
    names = street_key(named.column("name")).to_pylist()
    codes: dict[str, int] = {}
    street = np.array([codes.setdefault(name, len(codes)) for name in names], dtype=np.int64)
    along = ends - starts
    length2 = np.einsum("ij,ij->i", along, along)
    length = np.sqrt(length2)
    mid_lat, mid_lon = sphere_latlon(middle)
    return StreetEdges(
        middles=SpherePoints.build(mid_lat, mid_lon, EDGE_CELL_M, EDGE_REACH_M),
        starts=starts,
        ends=ends,
        along=along,
        inverse_length2=np.divide(1.0, length2, out=np.zeros_like(length2), where=length2 > 0),
        segment=segment,
        street=street,
        reach_m=float(length.max(initial=0.0)) / 2,
        rows=rows,
        numbered=_numbered(addresses, codes),
    )


def _single(table: pa.Table) -> pa.Table:
    return pa.table({name: single_array(table.column(name)) for name in table.column_names})


def save_addresses(folder: Path, points: AddressPoints) -> None:
    points.points.save(folder, f"{PREFIX}/addresses")
    write_array(folder, f"{PREFIX}/addresses/lat", points.lat)
    write_array(folder, f"{PREFIX}/addresses/lon", points.lon)
    write_array(folder, f"{PREFIX}/addresses/key", points.key)
    write_table(folder, f"{PREFIX}/addresses/rows", points.rows)


def open_addresses(folder: Path) -> AddressPoints:
    return AddressPoints(
        points=SpherePoints.open(folder, f"{PREFIX}/addresses"),
        lat=open_array(folder, f"{PREFIX}/addresses/lat"),
        lon=open_array(folder, f"{PREFIX}/addresses/lon"),
        key=open_array(folder, f"{PREFIX}/addresses/key"),
        rows=_single(open_table(folder, f"{PREFIX}/addresses/rows")),
    )


_EDGE_ARRAYS = ("starts", "ends", "along", "inverse_length2", "segment", "street")


def save_streets(folder: Path, edges: StreetEdges) -> None:
    edges.middles.save(folder, f"{PREFIX}/edges")
    for name in _EDGE_ARRAYS:
        write_array(folder, f"{PREFIX}/edges/{name}", getattr(edges, name))
    write_array(folder, f"{PREFIX}/edges/reach_m", np.array([edges.reach_m]))
    write_table(folder, f"{PREFIX}/edges/rows", edges.rows)
    numbered = edges.numbered
    numbered.points.save(folder, f"{PREFIX}/numbered")
    write_array(folder, f"{PREFIX}/numbered/number", numbered.number)
    write_array(folder, f"{PREFIX}/numbered/street", numbered.street)


def open_streets(folder: Path) -> StreetEdges:
    arrays = {name: open_array(folder, f"{PREFIX}/edges/{name}") for name in _EDGE_ARRAYS}
    return StreetEdges(
        middles=SpherePoints.open(folder, f"{PREFIX}/edges"),
        reach_m=float(open_array(folder, f"{PREFIX}/edges/reach_m")[0]),
        rows=_single(open_table(folder, f"{PREFIX}/edges/rows")),
        numbered=NumberedPoints(
            points=SpherePoints.open(folder, f"{PREFIX}/numbered"),
            number=open_array(folder, f"{PREFIX}/numbered/number"),
            street=open_array(folder, f"{PREFIX}/numbered/street"),
        ),
        **arrays,
    )


def build_reverse_index(
    folder: Path, addresses: pa.Table, segments: pa.Table, places: pa.Table, gazetteer: pa.Table
) -> None:
    """The area index, then the address and street indexes that name their areas from it and
    from the subdivisions index (built before this one)."""
    areas = AreaIndex.build(places, gazetteer)
    areas.save(folder)
    subdivisions = Subdivisions.open(folder)
    save_addresses(folder, _addresses(addresses, areas, subdivisions))
    save_streets(folder, _streets(segments, addresses, areas, subdivisions))


__all__ = ["NULL", "AddressPoints", "NumberedPoints", "StreetEdges", "build_reverse_index"]
