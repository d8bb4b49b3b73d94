"""Overture point features (connectors, addresses, places) as reference-release rows.

Also holds what the road importer shares with them: the ``names`` map and point coordinates.
Every function maps one batch of an Overture GeoParquet file to one batch of rows, so files
of any size stream through in bounded memory.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from numpy.typing import NDArray

from geobatch.reference import schema

Batch: TypeAlias = "pa.RecordBatch | pa.Table"
Floats = NDArray[np.float64]
CONNECTOR_ROWS = pa.schema([f for f in schema.CONNECTORS if f.name != "node"])
"""Connectors as read from the files, before the nodes are numbered."""


class OvertureDataError(ValueError):
    """A file's rows cannot be mapped (bad geometry, missing connector file ...).

    The importer turns it into a ``ReleaseError`` naming the file.
    """


def column(batch: Batch, name: str) -> pa.Array:
    """One column as a single array (tables come chunked), or all nulls if the file lacks it."""
    if name not in batch.schema.names:
        return pa.nulls(batch.num_rows)
    values = batch.column(name)
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def field(values: pa.Array, name: str) -> pa.Array:
    """A struct child, null where the struct is null or has no such child (older releases)."""
    if not pa.types.is_struct(values.type) or values.type.get_field_index(name) < 0:
        return pa.nulls(len(values))
    return pc.struct_field(values, name)


def mask(values: pa.Array) -> NDArray[np.bool_]:
    """A boolean Arrow array as numpy, nulls counting as false."""
    filled = pc.fill_null(values, False) if len(values) else values
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def list_ends(
    lists: pa.Array, child: str | None = None
) -> tuple[pa.Array, pa.Array, NDArray[np.int64]]:
    """The first and last item of each list (or one struct child of it), and the lengths.

    Items are null for null or empty lists, and for a column the file does not have.
    """
    if not pa.types.is_list(lists.type) and not pa.types.is_large_list(lists.type):
        nulls = pa.nulls(len(lists))
        return nulls, nulls, np.zeros(len(lists), np.int64)
    items = pc.list_flatten(lists)
    if child is not None:
        items = field(items, child)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    lengths = lengths.astype(np.int64)
    ends = np.cumsum(lengths)
    empty = lengths == 0
    first = pa.array(ends - lengths, pa.int64(), mask=empty)
    last = pa.array(ends - 1, pa.int64(), mask=empty)
    return items.take(first), items.take(last), lengths


def points_lonlat(wkb: pa.Array) -> tuple[Floats, Floats]:
    """Longitudes and latitudes of WKB points; other shapes mean the file is not of this kind."""
    geometries = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
    kinds = shapely.get_type_id(geometries)
    if len(kinds) and (kinds != shapely.GeometryType.POINT).any():
        found = shapely.GeometryType(int(kinds[kinds != shapely.GeometryType.POINT][0])).name
        raise OvertureDataError(f"it has {found} geometries where points are expected")
    if shapely.is_empty(geometries).any():
        raise OvertureDataError("it has empty points")
    return shapely.get_x(geometries), shapely.get_y(geometries)


def names_map(names: pa.Array) -> pa.Array:
    """``names.common`` (language -> name) plus ``names.primary`` under ``default``.

    ``default`` comes first so that a reader taking the first entry gets the primary name;
    rows without any name get a null map.
    """
    rows = len(names)
    primary = field(names, "primary").cast(pa.string())
    has_primary = np.flatnonzero(mask(pc.is_valid(primary)))
    common = field(names, "common")
    if pa.types.is_map(common.type):
        entry = pa.struct([common.type.key_field, common.type.item_field])
        lists = common.cast(pa.list_(pa.field("entries", entry, nullable=False)))
        entries = pc.list_flatten(lists)
        keys, values = field(entries, "key"), field(entries, "value")
        owners = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    else:
        keys = values = pa.array([], pa.string())
        owners = np.zeros(0, np.int64)
    owner = np.concatenate([has_primary, owners])
    order = pa.array(np.argsort(owner, kind="stable"))
    all_keys = pa.concat_arrays(
        [pa.array(["default"] * len(has_primary), pa.string()), keys.cast(pa.string())]
    )
    all_values = pa.concat_arrays([primary.take(pa.array(has_primary)), values.cast(pa.string())])
    counts = np.bincount(owner, minlength=rows)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
    return pa.MapArray.from_arrays(
        offsets,
        all_keys.take(order),
        all_values.take(order),
        type=schema.NAMES,
        mask=pa.array(counts == 0),
    )


def with_geometry(batch: Batch) -> pa.Table:
    """The rows that have an id and a geometry, as a table (Overture requires both)."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    keep = pc.and_(pc.is_valid(table.column("id")), pc.is_valid(table.column("geometry")))
    return table.filter(keep)


def connector_rows(batch: Batch) -> pa.Table:
    """``id, lon, lat`` of connectors; nodes are numbered once every file has been read."""
    table = with_geometry(batch)
    lon, lat = points_lonlat(column(table, "geometry"))
    return pa.table(
        {"id": column(table, "id").cast(pa.string()), "lon": lon, "lat": lat},
        schema=CONNECTOR_ROWS,
    )


def address_rows(batch: Batch) -> pa.Table:
    """Overture addresses as ``addresses`` rows.

    ``address_levels`` run from the broadest division to the most specific one, so the city
    is the last level and the state the first one when there are at least two (a single
    level is the city: Monaco). Without levels the city is ``postal_city`` where given.
    """
    table = with_geometry(batch)
    lon, lat = points_lonlat(column(table, "geometry"))
    levels = column(table, "address_levels")
    first, last, count = list_ends(levels, "value")
    state = pc.if_else(pa.array(count >= 2), first.cast(pa.string()), None)
    city = pc.coalesce(last.cast(pa.string()), column(table, "postal_city").cast(pa.string()))
    strings = {
        "housenumber": column(table, "number"),
        "street": column(table, "street"),
        "unit": column(table, "unit"),
        "postcode": column(table, "postcode"),
    }
    return pa.table(
        {
            "id": column(table, "id").cast(pa.string()),
            **{k: v.cast(pa.string()) for k, v in strings.items()},
            "city": city,
            "state": state,
            "country": pc.utf8_upper(column(table, "country").cast(pa.string())),
            "lon": lon,
            "lat": lat,
        },
        schema=schema.ADDRESSES,
    )


def place_rows(batch: Batch) -> pa.Table:
    """Overture places as ``places`` rows of kind ``poi``.

    Places without a primary name are dropped: a place is found by its name. The country is
    that of the first of the place's ``addresses``.
    """
    table = with_geometry(batch)
    names = column(table, "names")
    table = table.filter(pc.is_valid(field(names, "primary")))
    names = column(table, "names")
    lon, lat = points_lonlat(column(table, "geometry"))
    country, _, _ = list_ends(column(table, "addresses"), "country")
    rows = table.num_rows
    return pa.table(
        {
            "id": column(table, "id").cast(pa.string()),
            "name": field(names, "primary").cast(pa.string()),
            "names": names_map(names),
            "category": field(column(table, "categories"), "primary").cast(pa.string()),
            "kind": pa.array(["poi"] * rows, pa.string()),
            "admin_level": pa.nulls(rows, pa.int8()),
            "population": pa.nulls(rows, pa.int64()),
            "parents": pa.nulls(rows, pa.list_(pa.string())),
            "country": pc.utf8_upper(country.cast(pa.string())),
            "lon": lon,
            "lat": lat,
            "geometry": pa.nulls(rows, pa.binary()),
        },
        schema=schema.PLACES,
    )
