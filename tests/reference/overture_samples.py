"""Small, schema-true Overture GeoParquet files around Monaco, for the Overture importer tests.

The column types follow the Overture 2024-2025 releases (nested ``names``, ``sources``,
``bbox``, ``connectors``, ``access_restrictions``, ``categories``, ``addresses`` ...) and each
file carries GeoParquet ``geo`` metadata, so the importer is tested against what it will
really read. The sample data is kept in plain module constants that the tests derive their
expectations from.

Road grid around the Monaco harbour: connectors ``C<row><col>`` (rows go north, columns
east), 6 road segments and a railway; arrows show the only direction of travel::

    C20 --S6-- C21          C22
                ^            |
                S5 (-1)      R1 (rail, not a road)
                |            |
    C10 --S2-- C11 --S3--> C12
     |
     S4 (denied backward to hgv only: two-way)
     |
    C00 -------S1------- C01 -------S1------- C02   (one segment, split at C01)
"""

from __future__ import annotations

import itertools
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import Geod

_NS = uuid.UUID("6f1c3a52-2f0e-4c4e-9a51-0d1b7b8f4e10")

LONS = (7.4200, 7.4215, 7.4230)
LATS = (43.7300, 43.7310, 43.7320)
EARTH_RADIUS_M = 6_371_008.8
WGS84 = Geod(ellps="WGS84")


def gers(name: str) -> str:
    """A stable, GERS-looking (UUID) id for a sample feature."""
    return str(uuid.uuid5(_NS, name))


CONNECTORS: dict[str, tuple[float, float]] = {
    f"C{r}{c}": (LONS[c], LATS[r]) for r in range(3) for c in range(3)
}
"""Connector key -> (lon, lat); the connector's id is ``gers(key)``."""

_STRING_MAP = pa.map_(pa.string(), pa.string())
BBOX = pa.struct(
    [("xmin", pa.float32()), ("xmax", pa.float32()), ("ymin", pa.float32()), ("ymax", pa.float32())]
)
SOURCES = pa.list_(
    pa.struct(
        [
            ("property", pa.string()),
            ("dataset", pa.string()),
            ("record_id", pa.string()),
            ("update_time", pa.string()),
            ("confidence", pa.float64()),
            ("between", pa.list_(pa.float64())),
        ]
    )
)
NAMES = pa.struct(
    [
        ("primary", pa.string()),
        ("common", _STRING_MAP),
        (
            "rules",
            pa.list_(
                pa.struct(
                    [
                        ("variant", pa.string()),
                        ("language", pa.string()),
                        ("value", pa.string()),
                        ("between", pa.list_(pa.float64())),
                        ("side", pa.string()),
                    ]
                )
            ),
        ),
    ]
)
SEGMENT_CONNECTORS = pa.list_(pa.struct([("connector_id", pa.string()), ("at", pa.float64())]))
_VEHICLE = pa.struct(
    [
        ("dimension", pa.string()),
        ("comparison", pa.string()),
        ("value", pa.float64()),
        ("unit", pa.string()),
    ]
)
ACCESS_RESTRICTIONS = pa.list_(
    pa.struct(
        [
            ("access_type", pa.string()),
            (
                "when",
                pa.struct(
                    [
                        ("during", pa.string()),
                        ("heading", pa.string()),
                        ("using", pa.list_(pa.string())),
                        ("recognized", pa.list_(pa.string())),
                        ("mode", pa.list_(pa.string())),
                        ("vehicle", pa.list_(_VEHICLE)),
                    ]
                ),
            ),
            ("between", pa.list_(pa.float64())),
        ]
    )
)
_SPEED = pa.struct([("value", pa.int32()), ("unit", pa.string())])
SPEED_LIMITS = pa.list_(
    pa.struct(
        [
            ("min_speed", _SPEED),
            ("max_speed", _SPEED),
            ("is_max_speed_variable", pa.bool_()),
            ("between", pa.list_(pa.float64())),
        ]
    )
)
ROAD_FLAGS = pa.list_(
    pa.struct([("values", pa.list_(pa.string())), ("between", pa.list_(pa.float64()))])
)
VALUE_RULES = pa.list_(pa.struct([("value", pa.string()), ("between", pa.list_(pa.float64()))]))
CATEGORIES = pa.struct([("primary", pa.string()), ("alternate", pa.list_(pa.string()))])
PLACE_ADDRESSES = pa.list_(
    pa.struct(
        [
            ("freeform", pa.string()),
            ("locality", pa.string()),
            ("postcode", pa.string()),
            ("region", pa.string()),
            ("country", pa.string()),
        ]
    )
)
BRAND = pa.struct([("wikidata", pa.string()), ("names", NAMES)])
ADDRESS_LEVELS = pa.list_(pa.struct([("value", pa.string())]))


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def path_length_m(coords: Sequence[tuple[float, float]]) -> float:
    """Haversine length along the vertices (what ``length_m`` holds)."""
    return sum(haversine_m(a, b) for a, b in itertools.pairwise(coords))


def geodesic_length_m(coords: Sequence[tuple[float, float]]) -> float:
    """WGS84 geodesic length along the vertices (what Overture's ``at`` is a fraction of)."""
    if len(coords) < 2:
        return 0.0
    lons, lats = zip(*coords, strict=True)
    return float(WGS84.line_length(lons, lats))


@dataclass(frozen=True)
class Segment:
    """One sample segment; ``path`` items are connector keys or bare shape points."""

    key: str
    subtype: str
    road_class: str | None
    path: tuple[str | tuple[float, float], ...]
    primary: str | None = None
    common: dict[str, str] | None = None
    access: tuple[dict[str, Any], ...] | None = None

    @property
    def id(self) -> str:
        return gers(self.key)

    @property
    def coords(self) -> list[tuple[float, float]]:
        return [CONNECTORS[p] if isinstance(p, str) else p for p in self.path]

    @property
    def connector_refs(self) -> list[tuple[str, float]]:
        """(connector key, ``at``): ``at`` is the geodesic fraction of the length, as Overture's."""
        coords = self.coords
        total = geodesic_length_m(coords)
        return [
            (p, geodesic_length_m(coords[: i + 1]) / total)
            for i, p in enumerate(self.path)
            if isinstance(p, str)
        ]


def _denied(heading: str, mode: list[str] | None = None) -> dict[str, Any]:
    return {"access_type": "denied", "when": {"heading": heading, "mode": mode}}


SEGMENTS: tuple[Segment, ...] = (
    Segment(
        "S1",
        "road",
        "primary",
        ("C00", (7.42075, 43.72985), "C01", "C02"),
        "Boulevard Albert 1er",
        {"en": "Albert I Boulevard", "fr": "Boulevard Albert 1er"},
    ),
    Segment("S2", "road", "residential", ("C10", "C11"), "Rue Grimaldi", {"it": "Via Grimaldi"}),
    Segment(
        "S3",
        "road",
        "residential",
        ("C11", (7.42225, 43.73105), "C12"),
        "Rue Grimaldi",
        None,
        (
            _denied("backward"),
            {"access_type": "allowed", "when": {"heading": "backward", "mode": ["bicycle"]}},
        ),
    ),
    Segment("S4", "road", "service", ("C00", "C10"), access=(_denied("backward", ["hgv"]),)),
    Segment(
        "S5",
        "road",
        "tertiary",
        ("C21", "C11"),
        "Avenue de la Costa",
        access=(_denied("forward"),),
    ),
    Segment("S6", "road", "unclassified", ("C20", "C21")),
    Segment("R1", "rail", "standard_gauge", ("C12", "C22"), "Ligne Marseille-Vintimille"),
)
ROADS = tuple(s for s in SEGMENTS if s.subtype == "road")
EXPECTED_ONEWAY = {"S1": 0, "S2": 0, "S3": 1, "S4": 0, "S5": -1, "S6": 0}


@dataclass(frozen=True)
class Address:
    """One sample address, with the city and state the importer should derive."""

    key: str
    lon: float
    lat: float
    country: str | None
    postcode: str | None
    street: str | None = None
    number: str | None = None
    unit: str | None = None
    levels: tuple[str, ...] | None = None
    postal_city: str | None = None
    expected_city: str | None = None
    expected_state: str | None = None


ADDRESSES: tuple[Address, ...] = (
    Address("A1", 7.42010, 43.73001, "MC", "98000", street="Boulevard Albert 1er", number="12",
            levels=("Monaco",), expected_city="Monaco"),
    Address("A2", 7.42100, 43.73102, "MC", "98000", street="Rue Grimaldi", number="5", unit="B",
            levels=("Monaco",), expected_city="Monaco"),
    # no address_levels: the city comes from postal_city
    Address("A3", 7.42160, 43.73150, "MC", "98000", street="Avenue de la Costa", number="17",
            postal_city="Monte-Carlo", expected_city="Monte-Carlo"),
    # broadest level first: the state is the first level, the city the last one
    Address("A4", 7.42310, 43.73290, country="FR", postcode="06240",
            street="Boulevard de la République", number="8",
            levels=("Provence-Alpes-Côte d'Azur", "Alpes-Maritimes", "Beausoleil"),
            expected_city="Beausoleil", expected_state="Provence-Alpes-Côte d'Azur"),
    Address("A5", 7.42050, 43.73200, country="mc", postcode=None, street="Rue Basse",
            number="1bis", levels=("Monaco",), expected_city="Monaco"),
)  # fmt: skip


@dataclass(frozen=True)
class Place:
    """One sample place; ``countries`` has one entry per item of its ``addresses``."""

    key: str
    lon: float
    lat: float
    primary: str | None
    common: dict[str, str] | None
    category: str | None = None
    alternate: tuple[str, ...] | None = None
    countries: tuple[str, ...] | None = None
    confidence: float = 0.9


PLACES: tuple[Place, ...] = (
    Place("P1", 7.42530, 43.73080, "Musée Océanographique",
          {"en": "Oceanographic Museum", "fr": "Musée Océanographique"},
          category="museum", alternate=("aquarium",), countries=("MC",), confidence=0.97),
    Place("P2", 7.42800, 43.73930, "Casino de Monte-Carlo", {"en": "Monte Carlo Casino"},
          category="casino", countries=("MC", "FR"), confidence=0.95),
    Place("P3", 7.42760, 43.73880, "Café de Paris", None, category="restaurant",
          alternate=("cafe",)),
    Place("P4", 7.41960, 43.73180, "Boulangerie Riviera", None, category="bakery",
          countries=("MC",), confidence=0.6),
)  # fmt: skip


def _bbox(geometry: Any) -> dict[str, float]:
    xmin, ymin, xmax, ymax = shapely.bounds(geometry)
    return {"xmin": xmin, "xmax": xmax, "ymin": ymin, "ymax": ymax}


def _sources() -> list[dict[str, Any]]:
    return [{"property": "", "dataset": "OpenStreetMap", "record_id": "w1@3", "update_time": None}]


def _names(primary: str | None, common: dict[str, str] | None) -> dict[str, Any] | None:
    if primary is None and common is None:
        return None
    rules = [
        {"variant": "common", "language": lang, "value": v} for lang, v in (common or {}).items()
    ]
    return {"primary": primary, "common": list((common or {}).items()) or None, "rules": rules}


def write_geoparquet(
    path: Path, columns: dict[str, pa.Array], geometry_type: str, *, metadata: bool = True
) -> Path:
    """Writes the columns with GeoParquet 1.1 ``geo`` metadata, as Overture publishes them."""
    table = pa.table(columns)
    if metadata:
        geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        geo = {
            "version": "1.1.0",
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": [geometry_type],
                    "bbox": list(shapely.total_bounds(geoms)) if len(geoms) else [],
                    "covering": {
                        "bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}
                    },
                }
            },
        }
        table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _common(geometries: list[Any]) -> dict[str, pa.Array]:
    return {
        "geometry": pa.array(shapely.to_wkb(geometries).tolist(), pa.binary()),
        "bbox": pa.array([_bbox(g) for g in geometries], BBOX),
        "version": pa.array([1] * len(geometries), pa.int32()),
        "sources": pa.array([_sources() for _ in geometries], SOURCES),
    }


def write_segments(
    path: Path, segments: Sequence[Segment] = SEGMENTS, *, legacy: bool = False
) -> Path:
    """A ``transportation/segment`` file; ``legacy`` writes ``connector_ids`` (pre-2024-06)."""
    lines = [shapely.LineString(s.coords) for s in segments]
    columns: dict[str, pa.Array] = {"id": pa.array([s.id for s in segments], pa.string())}
    columns |= _common(lines)
    columns |= {
        "subtype": pa.array([s.subtype for s in segments], pa.string()),
        "class": pa.array([s.road_class for s in segments], pa.string()),
        "subclass": pa.array([None] * len(segments), pa.string()),
        "names": pa.array([_names(s.primary, s.common) for s in segments], NAMES),
    }
    if legacy:
        refs = [[gers(k) for k, _ in s.connector_refs] for s in segments]
        columns["connector_ids"] = pa.array(refs, pa.list_(pa.string()))
    else:
        refs_at = [
            [{"connector_id": gers(k), "at": at} for k, at in s.connector_refs] for s in segments
        ]
        columns["connectors"] = pa.array(refs_at, SEGMENT_CONNECTORS)
    columns |= {
        "access_restrictions": pa.array(
            [list(s.access) if s.access else None for s in segments], ACCESS_RESTRICTIONS
        ),
        "speed_limits": pa.array(
            [
                [{"max_speed": {"value": 50, "unit": "km/h"}}] if s.subtype == "road" else None
                for s in segments
            ],
            SPEED_LIMITS,
        ),
        "road_flags": pa.array([None] * len(segments), ROAD_FLAGS),
        "road_surface": pa.array(
            [[{"value": "paved"}] if s.subtype == "road" else None for s in segments],
            VALUE_RULES,
        ),
    }
    return write_geoparquet(path, columns, "LineString")


def write_connectors(path: Path, connectors: dict[str, tuple[float, float]] = CONNECTORS) -> Path:
    """A ``transportation/connector`` file: nothing but the standard feature columns."""
    points = [shapely.Point(xy) for xy in connectors.values()]
    columns = {"id": pa.array([gers(k) for k in connectors], pa.string())} | _common(points)
    return write_geoparquet(path, columns, "Point")


def write_addresses(path: Path, addresses: Sequence[Address] = ADDRESSES) -> Path:
    """An ``addresses/address`` file."""
    points = [shapely.Point(a.lon, a.lat) for a in addresses]
    columns = {"id": pa.array([gers(a.key) for a in addresses], pa.string())} | _common(points)
    columns |= {
        "country": pa.array([a.country for a in addresses], pa.string()),
        "postcode": pa.array([a.postcode for a in addresses], pa.string()),
        "street": pa.array([a.street for a in addresses], pa.string()),
        "number": pa.array([a.number for a in addresses], pa.string()),
        "unit": pa.array([a.unit for a in addresses], pa.string()),
        "address_levels": pa.array(
            [[{"value": v} for v in a.levels] if a.levels else None for a in addresses],
            ADDRESS_LEVELS,
        ),
        "postal_city": pa.array([a.postal_city for a in addresses], pa.string()),
    }
    return write_geoparquet(path, columns, "Point")


def _place_addresses(place: Place) -> list[dict[str, Any]] | None:
    if not place.countries:
        return None
    return [
        {"freeform": place.primary, "locality": "Monaco", "postcode": "98000", "country": c}
        for c in place.countries
    ]


def write_places(path: Path, places: Sequence[Place] = PLACES) -> Path:
    """A ``places/place`` file."""
    points = [shapely.Point(p.lon, p.lat) for p in places]
    columns = {"id": pa.array([gers(p.key) for p in places], pa.string())} | _common(points)
    columns |= {
        "names": pa.array([_names(p.primary, p.common) for p in places], NAMES),
        "categories": pa.array(
            [
                {"primary": p.category, "alternate": list(p.alternate) if p.alternate else None}
                for p in places
            ],
            CATEGORIES,
        ),
        "confidence": pa.array([p.confidence for p in places], pa.float64()),
        "websites": pa.array([None] * len(places), pa.list_(pa.string())),
        "socials": pa.array([None] * len(places), pa.list_(pa.string())),
        "emails": pa.array([None] * len(places), pa.list_(pa.string())),
        "phones": pa.array([["+377 98 98 15 90"]] * len(places), pa.list_(pa.string())),
        "brand": pa.array([None] * len(places), BRAND),
        "addresses": pa.array([_place_addresses(p) for p in places], PLACE_ADDRESSES),
    }
    return write_geoparquet(path, columns, "Point")


def write_all(folder: Path) -> dict[str, Path]:
    """One file of each kind, named after its theme/type as in an Overture release."""
    return {
        "segments": write_segments(folder / "type=segment" / "part-0.parquet"),
        "connectors": write_connectors(folder / "type=connector" / "part-0.parquet"),
        "addresses": write_addresses(folder / "type=address" / "part-0.parquet"),
        "places": write_places(folder / "type=place" / "part-0.parquet"),
    }
