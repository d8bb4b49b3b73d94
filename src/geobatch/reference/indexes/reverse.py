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

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference.indexes.areas import NULL, AreaIndex
from geobatch.reference.indexes.files import (
    ArrayWriter,
    open_array,
    open_table,
    write_array,
    write_table,
)
from geobatch.reference.indexes.keys import single_array
from geobatch.reference.indexes.labels import house_label, join, text
from geobatch.reference.indexes.sphere import (
    SpherePoints,
    sphere_latlon,
    sphere_xyz,
    write_sphere_points,
)
from geobatch.reference.indexes.subdivisions import Subdivisions
from geobatch.reference.memory import release_memory

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


def _edges(segments: pa.Table) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Starts, ends and owning segment row of the short straight edges, ``SEGMENTS_PER_BATCH``
    segments at a time (a segment's edges all come in one batch)."""
    wkb = segments.column("geometry")
    for start in range(0, segments.num_rows, SEGMENTS_PER_BATCH):
        batch = wkb.slice(start, SEGMENTS_PER_BATCH).to_numpy(zero_copy_only=False)
        lines = shapely.segmentize(shapely.from_wkb(batch), EDGE_MAX_DEG)
        coordinates, owner = shapely.get_coordinates(lines, return_index=True)
        del lines
        xyz = sphere_xyz(coordinates[:, 1], coordinates[:, 0]).reshape(len(coordinates), 3)
        same = owner[1:] == owner[:-1]
        yield xyz[:-1][same], xyz[1:][same], owner[1:][same] + start


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


def write_streets(
    folder: Path,
    segments: pa.Table,
    addresses: pa.Table,
    areas: AreaIndex,
    subdivisions: Subdivisions,
) -> None:
    """Write the street edges (what ``open_streets`` reads), batch by batch: only the edges'
    midpoints are held whole, for their point grid; every per-edge array is appended to its
    file as each batch of segments is cut."""
    named = segments.filter(pc.fill_null(pc.is_valid(text(segments.column("name"))), False))
    # what each segment says about its area: resolved at the middle of its first edge
    seg_lat = np.zeros(named.num_rows)
    seg_lon = np.zeros(named.num_rows)
    mid_lat: list[np.ndarray] = []
    mid_lon: list[np.ndarray] = []
    longest = 0.0
    edges = f"{PREFIX}/edges"
    with (
        ArrayWriter(folder, f"{edges}/starts", np.float64, 3) as starts_file,
        ArrayWriter(folder, f"{edges}/ends", np.float64, 3) as ends_file,
        ArrayWriter(folder, f"{edges}/along", np.float64, 3) as along_file,
        ArrayWriter(folder, f"{edges}/inverse_length2", np.float64) as inverse_file,
        ArrayWriter(folder, f"{edges}/segment", np.int64) as segment_file,
    ):
        for starts, ends, segment in _edges(named):
            middle = (starts + ends) / 2
            first = np.unique(segment, return_index=True)[1]
            if len(first):
                lat, lon = sphere_latlon(middle[first])
                seg_lat[segment[first]] = lat
                seg_lon[segment[first]] = lon
            lat, lon = sphere_latlon(middle)
            mid_lat.append(lat)
            mid_lon.append(lon)
            del middle
            along = ends - starts
            length2 = np.einsum("ij,ij->i", along, along)
            longest = max(longest, float(np.sqrt(length2).max(initial=0.0)))
            starts_file.append(starts)
            ends_file.append(ends)
            along_file.append(along)
            inverse_file.append(
                np.divide(1.0, length2, out=np.zeros_like(length2), where=length2 > 0)
            )
            segment_file.append(segment)
    write_array(folder, f"{edges}/reach_m", np.array([longest / 2]))
    hits = areas.resolve(seg_lat, seg_lon)
    district, county = subdivisions.resolve(seg_lat, seg_lon)
    del seg_lat, seg_lon
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
    write_table(folder, f"{edges}/rows", rows)
    del rows, hits
    names = street_key(named.column("name")).to_pylist()
    codes: dict[str, int] = {}
    street = np.array([codes.setdefault(name, len(codes)) for name in names], dtype=np.int64)
    del names, named
    write_array(folder, f"{edges}/street", street)
    numbered = _numbered(addresses, codes)
    numbered.points.save(folder, f"{PREFIX}/numbered")
    write_array(folder, f"{PREFIX}/numbered/number", numbered.number)
    write_array(folder, f"{PREFIX}/numbered/street", numbered.street)
    del numbered
    lat = np.concatenate(mid_lat) if mid_lat else np.zeros(0)
    del mid_lat
    lon = np.concatenate(mid_lon) if mid_lon else np.zeros(0)
    del mid_lon
    release_memory()
    write_sphere_points(folder, edges, lat, lon, EDGE_CELL_M, EDGE_REACH_M)


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
    write_streets(folder, segments, addresses, areas, subdivisions)


__all__ = ["NULL", "AddressPoints", "NumberedPoints", "StreetEdges", "build_reverse_index"]
