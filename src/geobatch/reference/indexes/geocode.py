"""The forward-geocoding index of a release's own data: built at import, mapped by workers.

Streets are the release's named lines cut into their pieces and grouped again by folded name,
locality and proximity (pieces of one name and town in the same or neighbouring cells of a
``STREET_GAP_KM`` grid), so same-named streets of towns far apart stay apart. An address point
joins the nearest street of its name within ``ATTACH_KM`` (one of its own town first); the
others make streets of their own, grouped the same way. Streets are ordered by their rank
among the streets of their (name, town) group, then by first row: the first street of every
group comes before any second one, so ties go to the lowest rows. Localities and postcodes
known only from addresses are the centres of such groups of points.

For bounding the scores of many same-named streets at once (``engines.geocode.bounds``),
each street's towns, postcodes and house numbers are also filed the other way round (key ->
streets), with its country as a code and its bounding box (around its pieces, numbered points
and centre).

Keys are folded with the geocoder's own ``street_key`` (imported when building, as the
engines import this package), so an index holds for the normalisation it was built with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geobatch.reference.indexes.files import write_array, write_table
from geobatch.reference.indexes.keys import KeyIndex
from geobatch.reference.indexes.labels import flat, text

PREFIX = "geocode"
KM_PER_DEGREE = 111.195
STREET_GAP_KM = 2.0
"""Grid cell for grouping pieces and points: same or neighbouring cells join (2-6 km)."""
ATTACH_KM = 3.0
"""An address this far from every street line of its name starts a street of its own."""
COUNTRY_REACH_DEG = 0.5
"""The nearest gazetteer city names a point's country within this many degrees."""
REGION_ADMIN_LEVEL = 4
"""OSM admin areas at this level or above (states, provinces) are regions, below localities."""
_SHIFT_DEG = 1000.0
PIECES_PER_BATCH = 200_000
"""Street pieces parsed at a time (about 100 MB of geometries)."""
BYTES_PER_BATCH = 16 << 20
"""Street geometries (WKB) parsed at a time."""
"""Groups are moved this far apart in longitude so one spatial tree searches each alone."""


def _folded(values: pa.Array | pa.ChunkedArray, fold: Callable[[str], str]) -> pa.Array:
    """``fold`` of each trimmed value, computed once per distinct value; null where blank."""
    encoded = pc.dictionary_encode(text(values))
    keys = [fold(v) or None for v in encoded.dictionary.to_pylist()]
    return pa.array(keys, pa.string()).take(encoded.indices)


def _dense(*columns: pa.Array) -> np.ndarray:
    """One id per distinct combination of the columns (-1 where the first is null)."""
    joined = pc.binary_join_element_wise(*[pc.fill_null(c, "") for c in columns], "\x1f")
    ids = np.asarray(pc.dictionary_encode(joined).indices.to_numpy(zero_copy_only=False))
    ids = ids.astype(np.int64)
    ids[~np.asarray(columns[0].is_valid().to_numpy(zero_copy_only=False))] = -1
    return ids


def _strings(column: pa.Array) -> list[str | None]:
    values: list[str | None] = column.to_pylist()
    return values


def clusters(
    group: np.ndarray, lon: np.ndarray, lat: np.ndarray, owner: np.ndarray, items: int
) -> np.ndarray:
    """Label items so that those of one group with points (``owner``) in the same or
    neighbouring ``STREET_GAP_KM`` cells share a label; labels count up in item order."""
    if not items:
        return np.zeros(0, dtype=np.int64)
    x = np.floor(lon * np.cos(np.radians(lat)) * KM_PER_DEGREE / STREET_GAP_KM)
    y = np.floor(lat * KM_PER_DEGREE / STREET_GAP_KM)
    code = (
        (group.astype(np.int64) << 34)
        | ((x.astype(np.int64) + (1 << 16)) << 17)
        | (y.astype(np.int64) + (1 << 16))
    )
    cells, cell_of = np.unique(code, return_inverse=True)
    sources, targets = [owner], [items + cell_of.reshape(-1)]
    for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
        neighbour = cells + (dx << 17) + dy
        position = np.minimum(np.searchsorted(cells, neighbour), len(cells) - 1)
        hit = cells[position] == neighbour
        sources.append(items + np.flatnonzero(hit))
        targets.append(items + position[hit])
    source, target = np.concatenate(sources), np.concatenate(targets)
    size = items + len(cells)
    graph = coo_matrix((np.ones(len(source), np.int32), (source, target)), shape=(size, size))
    labels = connected_components(graph, directed=False)[1][:items]
    first = np.unique(labels, return_index=True)[1]
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    result: np.ndarray = rank[np.searchsorted(np.unique(labels), labels)]
    return result


def _rank_in_group(group: np.ndarray) -> np.ndarray:
    """How many earlier entries share each entry's group."""
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(sorted_group[1:] != sorted_group[:-1]) + 1]
    run = np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = run
    return rank


def _first_of(label: np.ndarray, size: int) -> np.ndarray:
    """The first position of each label 0..size-1 (labels in any order; -1 where absent)."""
    first = np.full(size, -1, dtype=np.int64)
    unique, index = np.unique(label, return_index=True)
    first[unique] = index
    return first


class Countries:
    """A point's country: that of the nearest gazetteer city within ``COUNTRY_REACH_DEG``."""

    def __init__(self, gazetteer: pa.Table) -> None:
        lon = np.asarray(pc.fill_null(gazetteer.column("lon"), np.nan).to_numpy(), np.float64)
        lat = np.asarray(pc.fill_null(gazetteer.column("lat"), np.nan).to_numpy(), np.float64)
        city = np.asarray(
            pc.fill_null(pc.equal(gazetteer.column("feature"), "city"), False).to_numpy(), bool
        )
        rows = np.flatnonzero(city & np.isfinite(lon) & np.isfinite(lat))
        self.codes = np.array(
            flat(gazetteer.column("country")).take(pa.array(rows)).to_pylist(), dtype=object
        )
        self.tree = cKDTree(np.column_stack([lon[rows], lat[rows]])) if len(rows) else None

    def at(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        found = np.full(len(lon), None, dtype=object)
        if self.tree is None or not len(lon):
            return found
        distance, nearest = self.tree.query(np.column_stack([lon, lat]), k=1)
        near = distance < COUNTRY_REACH_DEG
        found[near] = self.codes[nearest[near]]
        return found


def _coalesce(*values: np.ndarray) -> np.ndarray:
    out = values[0].copy()
    for other in values[1:]:
        empty = np.array([v is None for v in out], dtype=bool)
        out[empty] = other[empty]
    return out


def _shifted(geometries: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Each geometry moved ``shift`` degrees east (one array pass over all coordinates)."""
    per_coordinate = np.repeat(shift, shapely.get_num_coordinates(geometries))
    offset = np.column_stack([per_coordinate, np.zeros_like(per_coordinate)])
    moved: np.ndarray = shapely.transform(geometries, lambda xy: xy + offset)
    return moved


def _cuts(sorted_labels: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Runs of about ``size`` entries of a sorted array, never splitting one label."""
    cuts, start = [], 0
    while start < len(sorted_labels):
        end = min(start + size, len(sorted_labels))
        if end < len(sorted_labels):
            end = int(np.searchsorted(sorted_labels, sorted_labels[end - 1], side="right"))
        cuts.append((start, end))
        start = end
    return cuts


def _nearest(
    pieces: pa.Array, piece_group: np.ndarray, lon: np.ndarray, lat: np.ndarray, group: np.ndarray
) -> np.ndarray:
    """For each point, the nearest piece (WKB) of its own group within ``ATTACH_KM`` (-1:
    none), searched a batch of groups at a time so that memory stays bounded."""
    found = np.full(len(lon), -1, dtype=np.int64)
    usable = np.flatnonzero(piece_group >= 0)
    usable = usable[np.argsort(piece_group[usable], kind="stable")]
    asked = np.flatnonzero(group >= 0)
    asked = asked[np.argsort(group[asked], kind="stable")]
    if not len(usable) or not len(asked):
        return found
    for start, end in _cuts(piece_group[usable], PIECES_PER_BATCH):
        batch = usable[start:end]
        low, high = piece_group[batch[0]], piece_group[batch[-1]]
        first, last = np.searchsorted(group[asked], [low, high + 1])
        points = asked[first:last]
        if not len(points):
            continue
        geometry = shapely.from_wkb(pieces.take(pa.array(batch)).to_numpy(zero_copy_only=False))
        tree = shapely.STRtree(_shifted(geometry, (piece_group[batch] - low) * _SHIFT_DEG))
        del geometry
        query, hit = tree.query_nearest(
            shapely.points(lon[points] + (group[points] - low) * _SHIFT_DEG, lat[points]),
            max_distance=ATTACH_KM / KM_PER_DEGREE,
            all_matches=False,
        )
        found[points[query]] = batch[hit]
    return found


def _list_column(owner: np.ndarray, values: pa.Array, size: int) -> pa.Array:
    """A list per owner 0..size-1 of its distinct non-null values, in order of appearance."""
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False)) & (owner >= 0)
    rows = np.flatnonzero(valid)
    pairs = _dense(pa.array(owner[rows].astype(str)), values.take(pa.array(rows)))
    first = np.unique(pairs, return_index=True)[1]
    keep = rows[np.sort(first)]
    order = np.argsort(owner[keep], kind="stable")
    keep = keep[order]
    counts = np.bincount(owner[keep], minlength=size)
    offsets = pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32))
    return pa.ListArray.from_arrays(offsets, values.take(pa.array(keep)).cast(pa.string()))


def _csr(owner: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Entries sorted stably by owner, and each owner's start (len size + 1)."""
    order = np.argsort(owner, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(owner, minlength=size))].astype(np.int64)
    return order, starts


def _area_table(**columns: object) -> pa.Table:
    schema = pa.schema(
        [
            ("name", pa.string()),
            ("level", pa.string()),
            ("lon", pa.float64()),
            ("lat", pa.float64()),
            ("ref_id", pa.string()),
            ("population", pa.int64()),
            ("country", pa.string()),
            ("state", pa.string()),
        ]
    )
    arrays = [pa.array(columns[f.name], f.type, from_pandas=True) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _first_valued(owner: np.ndarray, values: pa.Array, size: int) -> pa.Array:
    """Each owner's first non-null value (null where it has none)."""
    valid = np.flatnonzero(np.asarray(values.is_valid().to_numpy(zero_copy_only=False)))
    first = _first_of(owner[valid], size)
    picked = np.where(first >= 0, valid[np.maximum(first, 0)] if len(valid) else 0, -1)
    return values.take(pa.array(picked, mask=picked < 0))


def _group_means(label: np.ndarray, size: int, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    count = np.bincount(label, minlength=size).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.column_stack(
            [
                np.bincount(label, weights=lon, minlength=size) / count,
                np.bincount(label, weights=lat, minlength=size) / count,
            ]
        )


class _Builder:
    """Streets with their numbers, localities and postcodes, from lines and address points."""

    def __init__(
        self, normalize: object, countries: Countries, streets: pa.Table, addresses: pa.Table
    ) -> None:
        street_key: Callable[[str], str] = normalize.street_key  # type: ignore[attr-defined]
        self.normalize = normalize
        self.street_key = street_key
        self.countries = countries
        self._lines(streets)
        self._addresses(addresses)

    # -- street lines ---------------------------------------------------------------------

    def _lines(self, table: pa.Table) -> None:
        keys = _folded(table.column("name"), self.street_key)
        towns = text(table.column("locality"))
        town_keys = _folded(towns, self.street_key)
        rows = np.flatnonzero(np.asarray(keys.is_valid().to_numpy(zero_copy_only=False)))
        geometry = flat(table.column("geometry"))
        sizes = np.cumsum(np.asarray(pc.binary_length(geometry.take(pa.array(rows)))))
        wkb, piece_rows, ends = [], [], []
        start = 0
        while start < len(rows):
            end = max(start + 1, int(np.searchsorted(sizes, sizes[start] + BYTES_PER_BATCH)))
            batch = rows[start:end]
            lines = shapely.from_wkb(geometry.take(pa.array(batch)).to_numpy(zero_copy_only=False))
            parts, owner = shapely.get_parts(lines, return_index=True)
            wkb.append(pa.array(shapely.to_wkb(parts), pa.binary()))
            piece_rows.append(batch[owner])
            points = shapely.get_point(parts, [[0], [-1]])
            ends.append(np.stack([shapely.get_x(points), shapely.get_y(points)], axis=-1))
            start = end
        pieces = pa.concat_arrays(wkb) if wkb else pa.array([], pa.binary())
        piece_row = np.concatenate(piece_rows) if piece_rows else np.zeros(0, np.int64)
        end_points = np.concatenate(ends, axis=1) if ends else np.zeros((2, 0, 2))
        group_of_row = np.full(table.num_rows, -1, dtype=np.int64)
        group_of_row[rows] = _dense(keys.take(pa.array(rows)), town_keys.take(pa.array(rows)))
        piece_group = group_of_row[piece_row]
        size = len(piece_row)
        label = clusters(
            np.r_[piece_group, piece_group],
            np.r_[end_points[0, :, 0], end_points[1, :, 0]] if size else np.zeros(0),
            np.r_[end_points[0, :, 1], end_points[1, :, 1]] if size else np.zeros(0),
            np.r_[np.arange(size), np.arange(size)],
            size,
        )
        count = int(label.max(initial=-1)) + 1
        first_piece = _first_of(label, count)
        first_row = piece_row[first_piece]
        # the centre: halfway along the street's pieces from its first row
        own = np.flatnonzero(piece_row == first_row[label])
        own = own[np.argsort(label[own], kind="stable")]
        centres = []
        for start, end in _cuts(label[own], PIECES_PER_BATCH):
            batch = own[start:end]
            parts = shapely.from_wkb(pieces.take(pa.array(batch)).to_numpy(zero_copy_only=False))
            indices = label[batch] - label[batch[0]]
            centres.append(
                shapely.line_interpolate_point(
                    shapely.multilinestrings(parts, indices=indices), 0.5, normalized=True
                )
            )
        centre = np.concatenate(centres) if centres else np.zeros(0, dtype=object)
        self.line_count = count
        self.line_row = first_row
        self.line_group = piece_group[first_piece]
        self.line_rank = _rank_in_group(self.line_group)
        self.line_lon = shapely.get_x(centre)
        self.line_lat = shapely.get_y(centre)
        self.line_name = flat(table.column("name")).take(pa.array(first_row))
        self.line_ref = flat(table.column("id")).take(pa.array(first_row))
        self.line_town = towns.take(pa.array(first_row))
        self.line_town_key = town_keys.take(pa.array(first_row))
        self.line_key = keys.take(pa.array(first_row))
        self.pieces = pieces
        self.piece_label = label
        self.piece_key = keys.take(pa.array(piece_row))
        self.piece_town_key = town_keys.take(pa.array(piece_row))

    # -- address points -------------------------------------------------------------------

    def _addresses(self, table: pa.Table) -> None:
        lon = np.asarray(table.column("lon").to_numpy(), np.float64)
        lat = np.asarray(table.column("lat").to_numpy(), np.float64)
        numbers = text(table.column("housenumber"))
        keys = _folded(table.column("street"), self.street_key)
        keys = pc.if_else(pc.is_valid(numbers), keys, pa.scalar(None, pa.string()))
        cities = text(table.column("city"))
        city_keys = _folded(cities, self.street_key)
        size = table.num_rows
        # the nearest line of the same name and town, else of the same name
        with_town = pa.concat_arrays([self.piece_key, keys])
        towns = pa.concat_arrays([self.piece_town_key, city_keys])
        pair = _dense(with_town, towns)
        pair[len(self.pieces) :][~np.asarray(city_keys.is_valid())] = -1
        named = _dense(with_town)
        street = np.full(size, -1, dtype=np.int64)
        for ids in (pair, named):
            missing = np.flatnonzero(street < 0)
            asked = ids[len(self.pieces) :][missing]
            piece = _nearest(
                self.pieces, ids[: len(self.pieces)], lon[missing], lat[missing], asked
            )
            hit = piece >= 0
            street[missing[hit]] = self.piece_label[piece[hit]]
        # the rest: streets of their own, by name, town and proximity
        rest = np.flatnonzero((street < 0) & np.asarray(keys.is_valid()))
        rest_group = _dense(keys.take(pa.array(rest)), city_keys.take(pa.array(rest)))
        own = clusters(rest_group, lon[rest], lat[rest], np.arange(len(rest)), len(rest))
        own_count = int(own.max(initial=-1)) + 1
        own_first = rest[_first_of(own, own_count)]
        street[rest] = self.line_count + own
        total = self.line_count + own_count
        # street order: rank within its (name, town) group, lines first, then first row
        rank = np.r_[self.line_rank, _rank_in_group(rest_group[_first_of(own, own_count)])]
        kind = np.r_[np.zeros(self.line_count, np.int64), np.ones(own_count, np.int64)]
        first_row = np.r_[self.line_row, own_first]
        order = np.lexsort((first_row, kind, rank))
        renumber = np.empty(total, dtype=np.int64)
        renumber[order] = np.arange(total)
        attached = street >= 0
        street[attached] = renumber[street[attached]]
        self.order = order
        self.total = total
        self.own_first = own_first
        self._numbers(table, street, numbers, lon, lat)
        self._street_table(table, street, keys, cities, city_keys, lon, lat)
        self._areas(table, street, cities, city_keys, lon, lat)

    def _numbers(
        self,
        table: pa.Table,
        street: np.ndarray,
        numbers: pa.Array,
        lon: np.ndarray,
        lat: np.ndarray,
    ) -> None:
        """Per street: each house-number key's first address row, and the numeric ones
        sorted by (number, row) for interpolation."""
        number_keys = _folded(numbers, self.normalize.house_number_key)  # type: ignore[attr-defined]
        rows = np.flatnonzero((street >= 0) & np.asarray(number_keys.is_valid()))
        pair = _dense(pa.array(street[rows].astype(str)), number_keys.take(pa.array(rows)))
        rows = rows[np.sort(np.unique(pair, return_index=True)[1])]
        order, starts = _csr(street[rows], self.total)
        rows = rows[order]
        self.number_rows, self.number_starts = rows, starts
        self.number_keys = number_keys.take(pa.array(rows))
        digits = pc.struct_field(pc.extract_regex(self.number_keys, r"^(?P<n>\d{1,15})"), [0])
        value = pc.cast(digits, pa.int64(), safe=False)
        numeric = np.asarray(value.is_valid().to_numpy(zero_copy_only=False))
        values = np.asarray(pc.fill_null(value, 0).to_numpy(zero_copy_only=False))
        owner = street[rows]
        chosen = np.flatnonzero(numeric)
        chosen = chosen[np.lexsort((rows[chosen], values[chosen], owner[chosen]))]
        self.sorted_values = values[chosen].astype(np.int64)
        self.sorted_rows = rows[chosen]
        self.sorted_starts = np.r_[0, np.cumsum(np.bincount(owner[chosen], minlength=self.total))]
        # where a street has no line, it stands at the mean of its numbered points
        self.number_centres = _group_means(owner, self.total, lon[rows], lat[rows])

    def _street_table(
        self,
        table: pa.Table,
        street: np.ndarray,
        keys: pa.Array,
        cities: pa.Array,
        city_keys: pa.Array,
        lon: np.ndarray,
        lat: np.ndarray,
    ) -> None:
        order, lines = self.order, self.line_count
        is_line = order < lines
        source = np.where(is_line, order, lines)  # ``lines``: past the end, never read
        own = np.where(is_line, 0, order - lines)
        pick = self.own_first[own] if len(self.own_first) else np.zeros(len(order), np.int64)
        address_names = text(table.column("street"))

        def either(line: pa.Array, address: pa.Array) -> pa.Array:
            return pc.coalesce(
                line.take(pa.array(source, mask=~is_line)),
                address.take(pa.array(pick, mask=is_line)),
            )

        centre = self.number_centres
        self.street_lon = np.where(is_line, np.r_[self.line_lon, np.nan][source], centre[:, 0])
        self.street_lat = np.where(is_line, np.r_[self.line_lat, np.nan][source], centre[:, 1])
        attached = np.flatnonzero(street >= 0)
        first_city = _first_valued(street[attached], cities.take(pa.array(attached)), self.total)
        line_town = either(self.line_town, pa.nulls(table.num_rows, pa.string()))
        given = np.array(text(table.column("country")).to_pylist(), dtype=object)
        found = self.countries.at(lon, lat)
        row_country = self.row_country = _coalesce(given, found)
        first_country = np.full(self.total, None, dtype=object)
        has = attached[np.array([c is not None for c in row_country[attached]], dtype=bool)]
        firsts = _first_of(street[has], self.total)
        present = firsts >= 0
        first_country[present] = row_country[has[firsts[present]]]
        at_centre = self.countries.at(self.street_lon, self.street_lat)
        at_centre[~is_line] = None
        self.street_country = _coalesce(at_centre, first_country)
        localities = _list_column(
            np.r_[np.arange(self.total), street],
            pa.concat_arrays([either(self.line_town_key, pa.nulls(table.num_rows, pa.string())),
                              city_keys]),
            self.total,
        )  # fmt: skip
        postcode_keys = _folded(table.column("postcode"), self.normalize.postcode_key)  # type: ignore[attr-defined]
        self.postcode_keys = postcode_keys
        self.streets = pa.table(
            {
                "name": either(self.line_name, address_names),
                "ref_id": either(self.line_ref, pa.nulls(table.num_rows, pa.string())),
                "key": either(self.line_key, keys),
                "city": pc.coalesce(line_town, first_city),
                "country": pa.array(self.street_country, pa.string()),
                "lon": self.street_lon,
                "lat": self.street_lat,
                "localities": localities,
                "postcodes": _list_column(street, postcode_keys, self.total),
            }
        )
        # each street's pieces, in the order of its new number
        piece_street = np.empty(len(self.piece_label), dtype=np.int64)
        renumber = np.empty(self.total, dtype=np.int64)
        renumber[order] = np.arange(self.total)
        piece_street = renumber[self.piece_label]
        piece_order, self.piece_starts = _csr(piece_street, self.total)
        self.piece_order = piece_order

    def _areas(
        self,
        table: pa.Table,
        street: np.ndarray,
        cities: pa.Array,
        city_keys: pa.Array,
        lon: np.ndarray,
        lat: np.ndarray,
    ) -> None:
        """Towns named by addresses or streets, and postcodes: centres of nearby points."""
        is_line = self.order < self.line_count
        line_city = np.flatnonzero(
            is_line & np.asarray(self.streets.column("city").is_valid().to_numpy())
        )
        rows = np.flatnonzero(np.asarray(city_keys.is_valid()))
        names = pa.concat_arrays(
            [
                cities.take(pa.array(rows)),
                flat(self.streets.column("city")).take(pa.array(line_city)),
            ]
        )
        key = pa.concat_arrays(
            [city_keys.take(pa.array(rows)), _folded(names.slice(len(rows)), self.street_key)]
        )
        point_lon = np.r_[lon[rows], self.street_lon[line_city]]
        point_lat = np.r_[lat[rows], self.street_lat[line_city]]
        group = _dense(key)
        label = clusters(group, point_lon, point_lat, np.arange(len(group)), len(group))
        count = int(label.max(initial=-1)) + 1
        from_address = np.r_[np.ones(len(rows), bool), np.zeros(len(line_city), bool)]
        centre = _group_means(label[from_address], count, point_lon[from_address],
                              point_lat[from_address])  # fmt: skip
        by_street = _group_means(
            label[~from_address], count, point_lon[~from_address], point_lat[~from_address]
        )
        empty = np.isnan(centre[:, 0])
        centre[empty] = by_street[empty]
        first = _first_of(label, count)
        country = np.r_[
            _coalesce(
                np.array(text(table.column("country")).take(pa.array(rows)).to_pylist(), object),
                self.countries.at(lon[rows], lat[rows]),
            ),
            self.street_country[line_city],
        ]
        known = np.flatnonzero([c is not None for c in country])
        first_known = _first_of(label[known], count)
        area_country = np.full(count, None, dtype=object)
        area_country[first_known >= 0] = country[known[first_known[first_known >= 0]]]
        self.city_areas = _area_table(
            name=names.take(pa.array(first)).to_pylist(),
            level=["locality"] * count,
            lon=centre[:, 0],
            lat=centre[:, 1],
            ref_id=[None] * count,
            population=[0] * count,
            country=area_country.tolist(),
            state=[None] * count,
        )
        self.city_area_keys = key.take(pa.array(first))
        # postcodes
        coded = np.flatnonzero(np.asarray(self.postcode_keys.is_valid()))
        code_group = _dense(self.postcode_keys.take(pa.array(coded)))
        code_label = clusters(code_group, lon[coded], lat[coded], np.arange(len(coded)), len(coded))
        code_count = int(code_label.max(initial=-1)) + 1
        code_first = coded[_first_of(code_label, code_count)]
        code_centre = _group_means(code_label, code_count, lon[coded], lat[coded])
        self.postcode_areas = _area_table(
            name=text(table.column("postcode")).take(pa.array(code_first)).to_pylist(),
            level=["locality"] * code_count,
            lon=code_centre[:, 0],
            lat=code_centre[:, 1],
            ref_id=[None] * code_count,
            population=[0] * code_count,
            country=self.row_country[code_first].tolist(),
            state=cities.take(pa.array(code_first)).to_pylist(),
        )
        self.postcode_area_keys = self.postcode_keys.take(pa.array(code_first))
        self.address_rows = pa.table(
            {
                "id": flat(table.column("id")).cast(pa.string()),
                "number": text(table.column("housenumber")),
                "postcode": text(table.column("postcode")),
                "city": cities,
                "state": text(table.column("state")),
            }
        )
        self.address_lon, self.address_lat = lon, lat

    # -- output ---------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        streets = self.streets
        write_table(folder, f"{PREFIX}/streets", streets.drop_columns(["lon", "lat"]))
        write_array(folder, f"{PREFIX}/streets/lon", np.asarray(self.street_lon, np.float64))
        write_array(folder, f"{PREFIX}/streets/lat", np.asarray(self.street_lat, np.float64))
        pieces = self.pieces.take(pa.array(self.piece_order))
        write_table(folder, f"{PREFIX}/pieces", pa.table({"wkb": pieces}))
        write_array(folder, f"{PREFIX}/pieces/starts", self.piece_starts)
        write_table(folder, f"{PREFIX}/numbers", pa.table({"key": self.number_keys}))
        write_array(folder, f"{PREFIX}/numbers/rows", self.number_rows)
        write_array(folder, f"{PREFIX}/numbers/starts", self.number_starts)
        number_owner = np.repeat(np.arange(self.total), np.diff(self.number_starts))
        KeyIndex.build(self.number_keys, number_owner).save(folder, f"{PREFIX}/streets/by_number")
        for column, name in (("localities", "by_town"), ("postcodes", "by_postcode")):
            lists = flat(streets.column(column))
            owner = np.asarray(pc.list_parent_indices(lists), dtype=np.int64)
            KeyIndex.build(pc.list_flatten(lists), owner).save(folder, f"{PREFIX}/streets/{name}")
        countries = pc.dictionary_encode(flat(streets.column("country")))
        codes = np.asarray(pc.fill_null(countries.indices, -1).to_numpy(zero_copy_only=False))
        write_array(folder, f"{PREFIX}/streets/country", codes.astype(np.int64))
        write_table(folder, f"{PREFIX}/streets/countries", pa.table({"key": countries.dictionary}))
        for side, values in zip(
            ("west", "south", "east", "north"), self._bounds(pieces).T, strict=True
        ):
            write_array(folder, f"{PREFIX}/streets/{side}", np.ascontiguousarray(values))
        write_array(folder, f"{PREFIX}/sorted/values", self.sorted_values)
        write_array(folder, f"{PREFIX}/sorted/rows", self.sorted_rows)
        write_array(folder, f"{PREFIX}/sorted/starts", self.sorted_starts.astype(np.int64))
        keys = flat(streets.column("key"))
        rows = np.arange(streets.num_rows)
        KeyIndex.build(keys, rows).save(folder, f"{PREFIX}/streets/keys")
        save_distinct(folder, f"{PREFIX}/streets/names", keys)
        core_of: Callable[[str], str] = self.normalize.street_core  # type: ignore[attr-defined]
        cores = pa.array([c if (c := core_of(k)) and c != k else None for k in keys.to_pylist()],
                         pa.string())  # fmt: skip
        # streets found by their core name come in the order of their full names' first street
        ids = _dense(keys)
        order = np.lexsort((rows, _first_of(ids, streets.num_rows)[ids]))
        KeyIndex.build(cores.take(pa.array(order)), order).save(folder, f"{PREFIX}/streets/cores")
        plain_of: Callable[[str], str] = self.normalize.plain_umlauts  # type: ignore[attr-defined]
        plains = pa.array([plain_of(k) if k else None for k in keys.to_pylist()], pa.string())
        KeyIndex.build(plains, rows).save(folder, f"{PREFIX}/streets/plain")
        write_table(folder, f"{PREFIX}/addresses", self.address_rows)
        write_array(folder, f"{PREFIX}/addresses/lon", self.address_lon)
        write_array(folder, f"{PREFIX}/addresses/lat", self.address_lat)
        write_table(folder, f"{PREFIX}/postcodes", self.postcode_areas)
        codes = self.postcode_area_keys
        KeyIndex.build(codes, np.arange(len(codes))).save(folder, f"{PREFIX}/postcodes/keys")

    def _bounds(self, pieces: pa.Array) -> np.ndarray:
        """Each street's (west, south, east, north) around every point a candidate of it can
        stand at: its pieces (interpolated numbers snap onto them), its numbered points (and
        what lies between them) and its centre."""
        boxes = [np.column_stack([self.street_lon, self.street_lat] * 2)]
        owners = [np.arange(self.total)]
        piece_owner = np.repeat(np.arange(self.total), np.diff(self.piece_starts))
        for start in range(0, len(pieces), PIECES_PER_BATCH):
            batch = pieces.slice(start, PIECES_PER_BATCH).to_numpy(zero_copy_only=False)
            boxes.append(shapely.bounds(shapely.from_wkb(batch)))
            owners.append(piece_owner[start : start + len(batch)])
        lon, lat = self.address_lon[self.number_rows], self.address_lat[self.number_rows]
        boxes.append(np.column_stack([lon, lat, lon, lat]))
        owners.append(np.repeat(np.arange(self.total), np.diff(self.number_starts)))
        owner = np.concatenate(owners)
        order = np.argsort(owner, kind="stable")
        box = np.concatenate(boxes)[order]
        starts = np.r_[0, np.cumsum(np.bincount(owner, minlength=self.total))[:-1]]
        if not self.total:
            return np.zeros((0, 4))
        with np.errstate(invalid="ignore"):  # a street without any coordinate stays NaN
            return np.column_stack(
                [
                    np.fmin.reduceat(box[:, 0], starts),
                    np.fmin.reduceat(box[:, 1], starts),
                    np.fmax.reduceat(box[:, 2], starts),
                    np.fmax.reduceat(box[:, 3], starts),
                ]
            )


def save_distinct(folder: Path, name: str, keys: pa.Array) -> None:
    """The distinct non-null keys in order of first appearance (for fuzzy search)."""
    valid = keys.filter(keys.is_valid())
    first = np.sort(np.unique(_dense(valid), return_index=True)[1]) if len(valid) else np.zeros(0)
    write_table(folder, name, pa.table({"key": valid.take(pa.array(first, pa.int64()))}))


def _place_countries(table: pa.Table, countries: Countries) -> np.ndarray:
    """Each place's own country, else the gazetteer's there."""
    lon = np.asarray(table.column("lon").to_numpy(), np.float64)
    lat = np.asarray(table.column("lat").to_numpy(), np.float64)
    given = np.array(text(table.column("country")).to_pylist(), dtype=object)
    return _coalesce(given, countries.at(lon, lat))


def _places(
    folder: Path,
    table: pa.Table,
    countries: Countries,
    street_key: Callable[[str], str],
    main_country: str | None,
) -> tuple[pa.Table, pa.Array]:
    """Places and POIs by every name they are known by; their localities and regions."""
    lon = np.asarray(table.column("lon").to_numpy(), np.float64)
    lat = np.asarray(table.column("lat").to_numpy(), np.float64)
    country = _place_countries(table, countries)
    country = _coalesce(country, np.full(len(country), main_country, dtype=object))
    rows = pa.table(
        {
            "id": flat(table.column("id")).cast(pa.string()),
            "name": flat(table.column("name")).cast(pa.string()),
            "kind": pc.fill_null(flat(table.column("kind")), "").cast(pa.string()),
            "country": pa.array(country, pa.string()),
        }
    )
    write_table(folder, f"{PREFIX}/places", rows)
    write_array(folder, f"{PREFIX}/places/lon", lon)
    write_array(folder, f"{PREFIX}/places/lat", lat)
    names = flat(table.column("names"))
    offsets = np.asarray(names.offsets, dtype=np.int64)
    owner = np.r_[np.arange(table.num_rows), np.repeat(np.arange(table.num_rows), np.diff(offsets))]
    aliases = names.items.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    variants = pa.concat_arrays(
        [_folded(flat(table.column("name")), street_key), _folded(aliases, street_key)]
    )
    known = np.flatnonzero(np.asarray(variants.is_valid()))
    pairs = _dense(pa.array(owner[known].astype(str)), variants.take(pa.array(known)))
    known = known[np.sort(np.unique(pairs, return_index=True)[1])]
    known = known[np.argsort(owner[known], kind="stable")]
    keys = variants.take(pa.array(known))
    KeyIndex.build(keys, owner[known]).save(folder, f"{PREFIX}/places/keys")
    save_distinct(folder, f"{PREFIX}/places/names", keys)
    # localities and regions from places and admin areas
    kind = np.array(rows.column("kind").to_pylist(), dtype=object)
    level = np.asarray(pc.fill_null(table.column("admin_level"), 99).to_numpy(), np.int64)
    area = np.flatnonzero((kind == "place") | (kind == "admin"))
    region = (kind[area] == "admin") & (level[area] <= REGION_ADMIN_LEVEL)
    area_keys = _folded(flat(table.column("name")).take(pa.array(area)), street_key)
    area_ids = flat(table.column("id")).take(pa.array(area))
    distinct = _dense(area_keys, area_ids)
    area = area[np.sort(np.unique(distinct, return_index=True)[1])] if len(area) else area
    region = (kind[area] == "admin") & (level[area] <= REGION_ADMIN_LEVEL)
    area_keys = _folded(flat(table.column("name")).take(pa.array(area)), street_key)
    population = pc.fill_null(flat(table.column("population")), 0).take(pa.array(area))
    towns = _area_table(
        name=rows.column("name").take(pa.array(area)).to_pylist(),
        level=np.where(region, "region", "locality").tolist(),
        lon=lon[area],
        lat=lat[area],
        ref_id=rows.column("id").take(pa.array(area)).to_pylist(),
        population=population.to_pylist(),
        country=country[area].tolist(),
        state=[None] * len(area),
    )
    return towns, area_keys


def _main_country(*countries: np.ndarray) -> str | None:
    """The most common country (the alphabetically first of equals)."""
    counts = Counter(str(c) for values in countries for c in values.tolist() if c)
    return min(counts, key=lambda code: (-counts[code], code)) if counts else None


def build_geocode_index(
    folder: Path, streets: pa.Table, addresses: pa.Table, places: pa.Table, gazetteer: pa.Table
) -> None:
    """Write the forward-geocoding index of a release under ``indexes/geocode/``.

    Streets and places in no country the gazetteer knows (farther than
    ``COUNTRY_REACH_DEG`` from its cities) are taken to be in the release's main country, so
    a query naming another country ranks them like the release's other streets.
    """
    from geobatch.engines.geocode import normalize

    countries = Countries(gazetteer)
    built = _Builder(normalize, countries, streets, addresses)
    country = _main_country(built.street_country, _place_countries(places, countries))
    built.street_country = _coalesce(
        built.street_country, np.full(len(built.street_country), country, dtype=object)
    )
    built.streets = built.streets.set_column(
        built.streets.schema.get_field_index("country"),
        "country",
        pa.array(built.street_country, pa.string()),
    )
    built.save(folder)
    towns, keys = _places(folder, places, countries, normalize.street_key, country)
    # towns known only from addresses and streets, where no place has their name
    only = np.flatnonzero(
        ~np.asarray(pc.is_in(built.city_area_keys, value_set=keys).to_numpy(zero_copy_only=False))
    )
    towns = pa.concat_tables([towns, built.city_areas.take(pa.array(only))])
    keys = pa.concat_arrays([keys, built.city_area_keys.take(pa.array(only))])
    write_table(folder, f"{PREFIX}/towns", towns)
    KeyIndex.build(keys, np.arange(len(keys))).save(folder, f"{PREFIX}/towns/keys")
    write_table(
        folder, f"{PREFIX}/country", pa.table({"country": pa.array([country], pa.string())})
    )
