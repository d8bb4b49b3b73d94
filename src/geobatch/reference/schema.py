"""The tables of a reference release: names, columns and types, shared by every importer.

A release is a folder of uncompressed Arrow IPC files (memory-mapped on load) plus a
``manifest.json``. Geometries are WKB in EPSG:4326 (lon, lat). Every row keeps its source's
own identifier in ``id`` (``osm:way/123:0``, ``osm:node/42``, an Overture GERS id,
``geonames:2988507``).
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

NAMES = pa.map_(pa.string(), pa.string())
"""Name variants by key: ``default``, ``en``, ``fi``, ``sv``, ``alt``, ``old`` ... (``name:*``)."""

SEGMENTS = pa.schema(
    [
        # osm:way/{way}:{k}, the k-th piece of the way between junctions
        pa.field("id", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),  # osm:way/{way} or the GERS id
        pa.field("from_node", pa.int64(), nullable=False),  # index into connectors
        pa.field("to_node", pa.int64(), nullable=False),
        pa.field("road_class", pa.string()),  # motorway, trunk, primary, ..., residential, service
        pa.field("name", pa.string()),
        pa.field("names", NAMES),
        pa.field("oneway", pa.int8(), nullable=False),  # 0 both ways, 1 along, -1 against
        # Where the road runs: OSM ``layer`` (-5..5, 0 at ground level), in a tunnel, on a
        # bridge; what tells stacked or side-by-side carriageways apart
        pa.field("layer", pa.int8(), nullable=False),
        pa.field("tunnel", pa.bool_(), nullable=False),
        pa.field("bridge", pa.bool_(), nullable=False),
        pa.field("length_m", pa.float64(), nullable=False),
        pa.field("geometry", pa.binary(), nullable=False),  # LineString WKB
    ]
)

CONNECTORS = pa.schema(
    [
        pa.field("node", pa.int64(), nullable=False),  # dense index 0..n-1 used by segments
        pa.field("id", pa.string(), nullable=False),  # osm:node/{id} or the Overture connector id
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
    ]
)

ADDRESSES = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # osm:node/1, osm:way/2, osm:relation/3, GERS
        pa.field("housenumber", pa.string()),
        pa.field("street", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("postcode", pa.string()),
        pa.field("city", pa.string()),
        pa.field("state", pa.string()),
        pa.field("country", pa.string()),  # ISO 3166-1 alpha-2 where known
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
    ]
)

STREETS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # street:{locality}:{normalised name}
        pa.field("name", pa.string(), nullable=False),
        pa.field("names", NAMES),
        pa.field("locality", pa.string()),
        pa.field("segment_ids", pa.list_(pa.string())),
        pa.field("geometry", pa.binary(), nullable=False),  # MultiLineString WKB
    ]
)

PLACES = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("names", NAMES),
        pa.field("category", pa.string()),  # city, town, suburb, restaurant, museum, ...
        pa.field("kind", pa.string()),  # place | poi | admin
        pa.field("admin_level", pa.int8()),
        pa.field("population", pa.int64()),
        # ids of the containing admin areas, innermost first
        pa.field("parents", pa.list_(pa.string())),
        pa.field("country", pa.string()),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("geometry", pa.binary()),  # polygon for areas where known, else null
    ]
)

GAZETTEER = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # geonames:{geonameid}
        pa.field("name", pa.string(), nullable=False),
        pa.field("alternate_names", pa.list_(pa.string())),
        pa.field("feature", pa.string(), nullable=False),  # city | admin1 | country
        pa.field("country", pa.string()),  # ISO alpha-2
        pa.field("admin1", pa.string()),  # admin1 code within the country
        pa.field("population", pa.int64()),
        pa.field("lon", pa.float64()),
        pa.field("lat", pa.float64()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "segments": SEGMENTS,
    "connectors": CONNECTORS,
    "addresses": ADDRESSES,
    "streets": STREETS,
    "places": PLACES,
    "gazetteer": GAZETTEER,
}
