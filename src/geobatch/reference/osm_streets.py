"""Streets: named road segments grouped by (normalised name, locality) into one row each.

A street's locality is what a person would write after the street name. For each segment
(at the midpoint of its end connectors) it is, in order:

1. the innermost municipal admin area containing it (``admin_level`` 7 or 8: communes,
   municipalities, Andorran parishes);
2. else the ``addr:city`` of the nearest address within 500 m that has one (with a letter);
3. else the nearest ``place=city|town|village|hamlet`` node within 10 km;
4. else none (the id then has an empty locality: ``street::<name>``).

Streets are written sorted by normalised name and locality, grouped in parts of contiguous
names small enough for the import's memory budget (the file is the same whatever the budget).
Geometries are assembled without parsing: a MultiLineString WKB is a 9-byte header followed
by the member LineString WKBs, which the segments table already holds.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference import osm_tags
from geobatch.reference.osm_features import AdminIndex, Locality
from geobatch.reference.osm_roads import Network
from geobatch.reference.release import ReleaseBuilder, TableWriter

MUNICIPAL_LEVELS = (7, 8)
ADDRESS_RADIUS_M = 500.0
PLACE_RADIUS_M = 10_000.0
METRES_PER_DEGREE = 111_195.0
STREETS_PER_BATCH = 20_000
BYTES_PER_NAMED_SEGMENT = 400
"""Generous: a name as a Python string, its key, its row and locality, and sorting them."""
_WKB_HEADER = np.dtype([("order", "u1"), ("type", "<u4"), ("count", "<u4")])


def _nearest(
    lon: np.ndarray, lat: np.ndarray, to_lon: np.ndarray, to_lat: np.ndarray, radius_m: float
) -> np.ndarray:
    """Per point, the nearest target within ``radius_m`` (equirectangular), -1 where none."""
    found = np.full(len(lon), -1, dtype=np.int64)
    if not len(lon) or not len(to_lon):
        return found
    scale = np.cos(np.radians(np.median(lat)))
    tree = shapely.STRtree(shapely.points(to_lon * scale, to_lat))
    point, target = tree.query_nearest(
        shapely.points(lon * scale, lat), max_distance=radius_m / METRES_PER_DEGREE
    )
    found[point] = target  # ties: any one of the equally near targets
    return found


def localities(
    lon: np.ndarray,
    lat: np.ndarray,
    admin: AdminIndex,
    addresses: pa.Table,
    places: list[Locality],
) -> np.ndarray:
    """The locality name (or None) of each point, by the rules in the module docstring."""
    result = np.full(len(lon), None, dtype=object)
    point, area = admin.containing(lon, lat)
    municipal = np.isin(admin.levels[area], MUNICIPAL_LEVELS)
    found = admin.first(point, area, municipal, len(lon))
    result[found >= 0] = admin.names[found[found >= 0]]

    missing = np.flatnonzero(found < 0)
    with_city = addresses.filter(pc.match_substring_regex(addresses["city"], r"[^\W\d_]"))
    near = _nearest(
        lon[missing],
        lat[missing],
        with_city["lon"].to_numpy(),
        with_city["lat"].to_numpy(),
        ADDRESS_RADIUS_M,
    )
    cities = np.array(with_city["city"].to_pylist(), dtype=object)
    result[missing[near >= 0]] = cities[near[near >= 0]]

    missing = missing[near < 0]
    near = _nearest(
        lon[missing],
        lat[missing],
        np.array([p.lon for p in places]),
        np.array([p.lat for p in places]),
        PLACE_RADIUS_M,
    )
    names = np.array([p.name for p in places], dtype=object)
    result[missing[near >= 0]] = names[near[near >= 0]]
    return result


def _multilinestrings(parts: pa.Array, offsets: np.ndarray) -> pa.Array:
    counts = np.diff(offsets)
    header = np.zeros(len(counts), dtype=_WKB_HEADER)
    header["order"], header["type"], header["count"] = 1, 5, counts
    head = pa.Array.from_buffers(
        pa.binary(_WKB_HEADER.itemsize), len(counts), [None, pa.py_buffer(header.tobytes())]
    ).cast(pa.binary())
    body = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), parts), b"")
    return pc.binary_join_element_wise(head, body, b"")


def _spellings(keys: np.ndarray, values: np.ndarray) -> dict[str, str]:
    """The most used spelling of each normalised locality (``Roquebrune`` over ``roquebrune``)."""
    counts = Counter(zip(keys.tolist(), values.tolist(), strict=True))
    best: dict[str, str] = {}
    for (key, value), _ in counts.most_common():
        if key and key not in best:
            best[key] = value
    return best


def street_parts(named_segments: int, memory_budget: int) -> int:
    """In how many parts to group streets, so one part's names take a quarter of the budget."""
    return max(1, math.ceil(named_segments * BYTES_PER_NAMED_SEGMENT / max(memory_budget // 4, 1)))


@dataclass
class _Named:
    """Every named segment: its row, its normalised name (as a rank) and its locality."""

    rows: np.ndarray
    name_rank: np.ndarray  # index into ``names``, which is sorted
    names: np.ndarray
    locality: np.ndarray  # index into ``localities``; 0 is none
    localities: list[str | None]


def _named_segments(
    segments: pa.Table,
    network: Network,
    admin: AdminIndex,
    addresses: pa.Table,
    places: list[Locality],
    parts: int,
) -> _Named:
    """Locate the named segments; localities are worked out ``parts`` slices at a time."""
    rows = np.flatnonzero(pc.is_valid(segments["name"]).to_numpy(zero_copy_only=False))
    unique = pc.unique(segments["name"].take(pa.array(rows)))
    normalised = np.array([osm_tags.normalise(s) for s in unique.to_pylist()], dtype=object)
    names, rank_of_unique = np.unique(normalised, return_inverse=True)
    rank = rank_of_unique[pc.index_in(segments["name"].take(pa.array(rows)), unique).to_numpy()]
    keep = names[rank] != ""
    rows, rank = rows[keep], rank[keep]
    codes: dict[str | None, int] = {None: 0}
    locality = np.zeros(len(rows), dtype=np.int32)
    for piece in np.array_split(np.arange(len(rows)), parts):
        start = segments["from_node"].take(pa.array(rows[piece])).to_numpy()
        end = segments["to_node"].take(pa.array(rows[piece])).to_numpy()
        lon = (network.lon[start] + network.lon[end]) / 2
        lat = (network.lat[start] + network.lat[end]) / 2
        found = localities(lon, lat, admin, addresses, places)
        locality[piece] = [codes.setdefault(x, len(codes)) for x in found]
    return _Named(rows, rank, names, locality, list(codes))


def build_streets(
    builder: ReleaseBuilder,
    segments: pa.Table,
    network: Network,
    admin: AdminIndex,
    addresses: pa.Table,
    places: list[Locality],
    memory_budget: int,
) -> int:
    """Write the ``streets`` table, ordered by normalised name and locality; returns its rows.

    Named segments are grouped in parts of contiguous names, so the order (and the file) is
    the same whatever the budget.
    """
    rows = pc.sum(pc.is_valid(segments["name"])).as_py() or 0
    parts = street_parts(rows, memory_budget)
    named = _named_segments(segments, network, admin, addresses, places, parts)
    nloc_names, nloc_of_code = np.unique(
        np.array([osm_tags.normalise(x) if x else "" for x in named.localities], dtype=object),
        return_inverse=True,
    )
    nloc = nloc_of_code[named.locality]
    spelling = _spellings(
        nloc_names[nloc], np.array(named.localities, dtype=object)[named.locality]
    )
    order = np.lexsort((nloc, named.name_rank))  # stable: a street's segments in row order
    # Parts hold contiguous ranges of names with about the same number of segments each.
    per_name = np.cumsum(np.bincount(named.name_rank, minlength=len(named.names)))
    cut_names = np.searchsorted(per_name, np.arange(1, parts) * len(order) / parts, side="right")
    bounds = np.searchsorted(
        named.name_rank[order], np.concatenate([[0], cut_names, [len(named.names)]])
    )
    written = 0
    with builder.table_writer("streets") as writer:
        for lo, hi in itertools.pairwise(bounds.tolist()):
            if hi > lo:
                members = order[lo:hi]
                written += _write_streets(
                    writer, segments, named, members, nloc[members], nloc_names, spelling
                )
    return written


def _write_streets(
    writer: TableWriter,
    segments: pa.Table,
    named: _Named,
    members: np.ndarray,
    nloc: np.ndarray,
    nloc_names: np.ndarray,
    spelling: dict[str, str],
) -> int:
    """One part: ``members`` (indexes into ``named``) sorted by name and locality."""
    rows, rank = named.rows[members], named.name_rank[members]
    raw_names = np.array(segments["name"].take(pa.array(rows)).to_pylist(), dtype=object)
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (rank[1:] != rank[:-1]) | (nloc[1:] != nloc[:-1])
    offsets = np.append(np.flatnonzero(new), len(rows))
    for first in range(0, len(offsets) - 1, STREETS_PER_BATCH):
        chunk = offsets[first : first + STREETS_PER_BATCH + 1]
        display, example = [], []
        for a, b in itertools.pairwise(chunk.tolist()):
            name = Counter(raw_names[a:b]).most_common(1)[0][0]
            display.append(name)
            example.append(rows[a + int(np.argmax(raw_names[a:b] == name))])
        heads = chunk[:-1]
        localities = nloc_names[nloc[heads]]
        ids = [
            f"street:{loc.replace(' ', '-')}:{name.replace(' ', '-')}"
            for name, loc in zip(named.names[rank[heads]], localities, strict=True)
        ]
        member_rows = pa.array(rows[chunk[0] : chunk[-1]])
        local = (chunk - chunk[0]).astype(np.int32)
        writer.write(
            pa.table(
                {
                    "id": ids,
                    "name": display,
                    "names": segments["names"].take(pa.array(example)),
                    "locality": pa.array([spelling.get(x) for x in localities], pa.string()),
                    "segment_ids": pa.ListArray.from_arrays(
                        pa.array(local), segments["id"].take(member_rows).combine_chunks()
                    ),
                    "geometry": _multilinestrings(
                        segments["geometry"].take(member_rows).combine_chunks(), local
                    ),
                }
            )
        )
    return len(offsets) - 1
