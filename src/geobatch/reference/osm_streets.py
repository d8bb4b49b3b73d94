"""Streets: named road segments grouped by (normalised name, locality) into one row each.

A street's locality is what a person would write after the street name. For each segment
(at the midpoint of its end connectors) it is, in order:

1. the innermost municipal admin area containing it (``admin_level`` 7 or 8: communes,
   municipalities, Andorran parishes);
2. else the ``addr:city`` of the nearest address within 500 m that has one (with a letter);
3. else the nearest ``place=city|town|village|hamlet`` node within 10 km;
4. else none (the id then has an empty locality: ``street::<name>``).

Geometries are assembled without parsing: a MultiLineString WKB is a 9-byte header followed
by the member LineString WKBs, which the segments table already holds.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geobatch.reference import osm_tags
from geobatch.reference.osm_features import AdminIndex, Locality
from geobatch.reference.osm_roads import Network
from geobatch.reference.release import ReleaseBuilder

MUNICIPAL_LEVELS = (7, 8)
ADDRESS_RADIUS_M = 500.0
PLACE_RADIUS_M = 10_000.0
METRES_PER_DEGREE = 111_195.0
STREETS_PER_BATCH = 20_000
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


def build_streets(
    builder: ReleaseBuilder,
    segments: pa.Table,
    network: Network,
    admin: AdminIndex,
    addresses: pa.Table,
    places: list[Locality],
) -> int:
    """Write the ``streets`` table; returns its row count."""
    rows = np.flatnonzero(pc.is_valid(segments["name"]).to_numpy(zero_copy_only=False))
    raw = segments["name"].take(pa.array(rows)).combine_chunks()
    unique = pc.unique(raw)
    normalised = np.array([osm_tags.normalise(s) for s in unique.to_pylist()], dtype=object)
    nname = normalised[pc.index_in(raw, unique).to_numpy()]
    keep = nname != ""
    rows, raw, nname = rows[keep], raw.filter(pa.array(keep)), nname[keep]

    start = segments["from_node"].take(pa.array(rows)).to_numpy()
    end = segments["to_node"].take(pa.array(rows)).to_numpy()
    lon = (network.lon[start] + network.lon[end]) / 2
    lat = (network.lat[start] + network.lat[end]) / 2
    locality = localities(lon, lat, admin, addresses, places)
    nloc = np.array([osm_tags.normalise(x) if x else "" for x in locality], dtype=object)
    spelling = _spellings(nloc, locality)

    order = np.arange(len(rows))
    groups = (
        pa.table({"nname": nname, "nloc": nloc, "i": order})
        .group_by(["nname", "nloc"], use_threads=False)
        .aggregate([("i", "list")])
    )
    raw_names = np.array(raw.to_pylist(), dtype=object)
    written = 0
    with builder.table_writer("streets") as writer:
        for batch in groups.to_batches(max_chunksize=STREETS_PER_BATCH):
            members = batch.column("i_list")
            flat, offsets = members.flatten().to_numpy(), members.offsets.to_numpy()
            offsets = offsets - offsets[0]
            display, first = [], []
            for lo, hi in itertools.pairwise(offsets):
                group = flat[lo:hi]
                name = Counter(raw_names[group]).most_common(1)[0][0]
                display.append(name)
                first.append(rows[group[np.argmax(raw_names[group] == name)]])
            group_loc = [spelling.get(key) for key in batch.column("nloc").to_pylist()]
            ids = [
                f"street:{loc.replace(' ', '-')}:{name.replace(' ', '-')}"
                for name, loc in zip(
                    batch.column("nname").to_pylist(), batch.column("nloc").to_pylist(), strict=True
                )
            ]
            members_rows = pa.array(rows[flat])
            writer.write(
                pa.table(
                    {
                        "id": ids,
                        "name": display,
                        "names": segments["names"].take(pa.array(first)),
                        "locality": pa.array(group_loc, pa.string()),
                        "segment_ids": pa.ListArray.from_arrays(
                            pa.array(offsets, pa.int32()),
                            segments["id"].take(members_rows).combine_chunks(),
                        ),
                        "geometry": _multilinestrings(
                            segments["geometry"].take(members_rows).combine_chunks(), offsets
                        ),
                    }
                )
            )
            written += batch.num_rows
    return written
