"""The forward-geocoding index of a release's own data, built once per process and cached.

``local_index`` covers the release's own streets, address points, places and POIs (the
worldwide GeoNames part is in ``gazetteer``). It maps folded keys (``normalize.street_key``)
to row numbers in flat lists and numpy arrays, so a query is a few dict lookups, plus one
rapidfuzz scan over the distinct names when the exact key misses.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import shapely

from geobatch.engines.geocode.cache import cached
from geobatch.engines.geocode.gazetteer import (
    Area,
    GazetteerIndex,
    column_list,
    float_column,
    gazetteer_index,
)
from geobatch.engines.geocode.normalize import (
    house_number_key,
    house_number_value,
    postcode_key,
    street_key,
)
from geobatch.reference import Release

REGION_ADMIN_LEVEL = 4
"""OSM admin areas at this level or above (states, provinces) are regions, below localities."""


@dataclass(kw_only=True)
class Street:
    name: str
    ref_id: str | None
    lon: float
    lat: float
    line: shapely.Geometry | None
    localities: set[str] = field(default_factory=set)
    city: str | None = None
    postcodes: set[str] = field(default_factory=set)
    country: str | None = None
    numbers: dict[str, int] = field(default_factory=dict)
    """House-number key -> address row."""
    sorted_numbers: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    sorted_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@dataclass(frozen=True, kw_only=True)
class Addresses:
    ids: list[str]
    numbers: list[str]
    postcodes: list[str | None]
    cities: list[str | None]
    states: list[str | None]
    lon: np.ndarray
    lat: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Places:
    ids: list[str]
    names: list[str]
    kinds: list[str]
    countries: list[str | None]
    lon: np.ndarray
    lat: np.ndarray
    by_key: dict[str, list[int]]
    keys: list[str]


@dataclass(frozen=True, kw_only=True)
class LocalIndex:
    streets: list[Street]
    street_by_key: dict[str, list[int]]
    """Folded street name -> its streets, one per locality."""
    street_keys: list[str]
    addresses: Addresses
    places: Places
    localities: dict[str, list[Area]]
    postcodes: dict[str, Area]
    country: str | None
    """The release's main country (most of its addresses or places), when known."""


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _add_area(areas: dict[str, list[Area]], name: str, area: Area) -> None:
    key = street_key(name)
    if key and all(existing.ref_id != area.ref_id for existing in areas[key]):
        areas[key].append(area)


def _streets(
    release: Release, countries: GazetteerIndex
) -> tuple[list[Street], dict[str, list[int]]]:
    """One ``Street`` per (name, locality): same-named streets of different towns stay apart."""
    table = release.table("streets")
    streets: list[Street] = []
    by_key: dict[str, list[int]] = {}
    by_place: dict[tuple[str, str], int] = {}
    geometries = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    for row, (ref_id, name, locality) in enumerate(
        zip(
            column_list(table, "id"),
            column_list(table, "name"),
            column_list(table, "locality"),
            strict=True,
        )
    ):
        key = street_key(str(name))
        if not key:
            continue
        town = _text(locality)
        place = (key, street_key(town) if town else "")
        line = geometries[row]
        index = by_place.get(place)
        if index is not None:
            street = streets[index]
            street.line = shapely.union(street.line, line) if street.line is not None else line
            continue
        by_place[place] = len(streets)
        by_key.setdefault(key, []).append(len(streets))
        point = shapely.line_interpolate_point(line, 0.5, normalized=True)
        streets.append(
            Street(
                name=str(name),
                ref_id=str(ref_id),
                lon=float(shapely.get_x(point)),
                lat=float(shapely.get_y(point)),
                line=line,
                city=town,
                localities={place[1]} if town else set(),
            )
        )
    if streets:
        found = countries.country_at(
            np.array([s.lon for s in streets]), np.array([s.lat for s in streets])
        )
        for street, country in zip(streets, found, strict=True):
            street.country = country
    return streets, by_key


SAME_STREET_KM = 10.0
"""An address this far from every street of its name (in another town) starts a street."""


def _street_of(
    streets: list[Street], indexes: list[int], city: str, lon: float, lat: float
) -> int | None:
    """Which same-named street an address belongs to: its town's, else the nearest near one."""
    if city:
        for index in indexes:
            if city in streets[index].localities:
                return index
    scale = np.cos(np.radians(lat))
    best, best_km = None, SAME_STREET_KM
    for index in indexes:
        street = streets[index]
        if street.line is not None:
            degrees = shapely.distance(street.line, shapely.Point(lon, lat))
        else:
            degrees = float(np.hypot((street.lon - lon) * scale, street.lat - lat))
        km = degrees * 111.195
        if km <= best_km:
            best, best_km = index, km
    return best


def _attach_addresses(
    release: Release,
    streets: list[Street],
    by_key: dict[str, list[int]],
    countries: GazetteerIndex,
) -> Addresses:
    table = release.table("addresses")
    lon = float_column(table, "lon")
    lat = float_column(table, "lat")
    numbers = [_text(v) or "" for v in column_list(table, "housenumber")]
    postcodes = [_text(v) for v in column_list(table, "postcode")]
    cities = [_text(v) for v in column_list(table, "city")]
    found = countries.country_at(lon, lat)
    given = [_text(v) for v in column_list(table, "country")]
    for row, street_name in enumerate(column_list(table, "street")):
        name = _text(street_name)
        if name is None or not numbers[row]:
            continue
        key = street_key(name)
        city = street_key(cities[row]) if cities[row] else ""
        indexes = by_key.setdefault(key, [])
        index = _street_of(streets, indexes, city, float(lon[row]), float(lat[row]))
        if index is None:
            index = len(streets)
            indexes.append(index)
            streets.append(Street(name=name, ref_id=None, lon=lon[row], lat=lat[row], line=None))
        street = streets[index]
        street.numbers.setdefault(house_number_key(numbers[row]), row)
        if cities[row]:
            street.localities.add(city)
            street.city = street.city or cities[row]
        if postcodes[row]:
            street.postcodes.add(postcode_key(postcodes[row] or ""))
        street.country = street.country or given[row] or found[row]
    for street in streets:
        if street.numbers:
            pairs = sorted(
                (value, row)
                for key, row in street.numbers.items()
                if (value := house_number_value(key)) is not None
            )
            street.sorted_numbers = np.array([p[0] for p in pairs], dtype=np.int64)
            street.sorted_rows = np.array([p[1] for p in pairs], dtype=np.int64)
            if street.line is None:
                rows = list(street.numbers.values())
                street.lon, street.lat = float(lon[rows].mean()), float(lat[rows].mean())
    return Addresses(
        ids=[str(v) for v in column_list(table, "id")],
        numbers=numbers,
        postcodes=postcodes,
        cities=cities,
        states=[_text(v) for v in column_list(table, "state")],
        lon=lon,
        lat=lat,
    )


def _places(release: Release, countries: GazetteerIndex) -> Places:
    table = release.table("places")
    names = [str(v) for v in column_list(table, "name")]
    lon = float_column(table, "lon")
    lat = float_column(table, "lat")
    given = [_text(v) for v in column_list(table, "country")]
    found = countries.country_at(lon, lat)
    by_key: dict[str, list[int]] = defaultdict(list)
    for row, (name, names_map) in enumerate(zip(names, column_list(table, "names"), strict=True)):
        variants = {street_key(name)}
        for _, alias in names_map or []:  # type: ignore[attr-defined]
            variants.add(street_key(str(alias)))
        for key in variants:
            if key:
                by_key[key].append(row)
    return Places(
        ids=[str(v) for v in column_list(table, "id")],
        names=names,
        kinds=[str(v) for v in column_list(table, "kind")],
        countries=[g or f for g, f in zip(given, found, strict=True)],
        lon=lon,
        lat=lat,
        by_key=dict(by_key),
        keys=list(by_key),
    )


def _localities(
    release: Release, places: Places, addresses: Addresses, streets: list[Street]
) -> dict[str, list[Area]]:
    table = release.table("places")
    population = column_list(table, "population")
    admin_level = column_list(table, "admin_level")
    areas: dict[str, list[Area]] = defaultdict(list)
    for row, kind in enumerate(places.kinds):
        if kind not in ("place", "admin"):
            continue
        level = admin_level[row]
        is_region = kind == "admin" and isinstance(level, int) and level <= REGION_ADMIN_LEVEL
        area = Area(
            name=places.names[row],
            level="region" if is_region else "locality",
            lon=float(places.lon[row]),
            lat=float(places.lat[row]),
            ref_id=places.ids[row],
            population=int(population[row] or 0),  # type: ignore[call-overload]
            country=places.countries[row],
        )
        _add_area(areas, places.names[row], area)
    members: dict[str, list[int]] = defaultdict(list)
    for row, city in enumerate(addresses.cities):
        if city:
            members[city].append(row)
    for street in streets:
        if street.city and street.line is not None:
            members.setdefault(street.city, [])
    for city, rows in members.items():
        if street_key(city) in areas:
            continue
        if rows:
            lon, lat = float(addresses.lon[rows].mean()), float(addresses.lat[rows].mean())
        else:
            points = [(s.lon, s.lat) for s in streets if s.city == city]
            lon = float(np.mean([p[0] for p in points]))
            lat = float(np.mean([p[1] for p in points]))
        country = next((s.country for s in streets if s.city == city and s.country), None)
        area = Area(
            name=city, level="locality", lon=lon, lat=lat, ref_id=None, population=0,
            country=country,
        )  # fmt: skip
        _add_area(areas, city, area)
    return dict(areas)


def _postcodes(addresses: Addresses) -> dict[str, Area]:
    rows_by_code: dict[str, list[int]] = defaultdict(list)
    for row, code in enumerate(addresses.postcodes):
        if code:
            rows_by_code[postcode_key(code)].append(row)
    return {
        code: Area(
            name=addresses.postcodes[rows[0]] or code,
            level="locality",
            lon=float(addresses.lon[rows].mean()),
            lat=float(addresses.lat[rows].mean()),
            ref_id=None,
            population=0,
            country=None,
            state=addresses.cities[rows[0]],
        )
        for code, rows in rows_by_code.items()
    }


def _local(release: Release) -> LocalIndex:
    countries = gazetteer_index(release)
    streets, by_key = _streets(release, countries)
    addresses = _attach_addresses(release, streets, by_key, countries)
    places = _places(release, countries)
    known = [s.country for s in streets if s.country] + [c for c in places.countries if c]
    main_country = max(set(known), key=known.count) if known else None
    return LocalIndex(
        streets=streets,
        street_by_key=by_key,
        street_keys=list(by_key),
        addresses=addresses,
        places=places,
        localities=_localities(release, places, addresses, streets),
        postcodes=_postcodes(addresses),
        country=main_country,
    )


def local_index(release: Release) -> LocalIndex:
    """The release's own streets, addresses and places, indexed once per process."""
    return cached("local", release, _local)
