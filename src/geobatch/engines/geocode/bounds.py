"""How a street's candidate is scored, and the most it can score, for many streets at once.

A country holds hundreds of streets of one name ("Hauptstraße"); scoring each would make a
query cost what the release weighs. So the geocoder takes the best score each street could
reach, over all of them in one pass over mapped arrays (``street_bounds``), scores the streets
best bound first and stops where no bound beats the answers it has. A bound is the product the
scoring itself makes, in the same order (so equal streets get equal bounds, bit for bit):
similarity, times the agreement of the street's towns and postcodes with the query's
(``context_factor``), times the best house-number level the street allows (its own number, the
bare number, interpolation between two numbers around it, else the street), times the bias
towards ``at`` at the nearest point of the street's bounding box.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from geobatch.engines.geocode.gazetteer import GazetteerIndex
from geobatch.engines.geocode.index import Countries, Streets
from geobatch.engines.geocode.normalize import house_number_value
from geobatch.engines.geocode.parse import ParsedAddress

EARTH_KM_PER_DEGREE = 111.195
BIAS_KM = 500.0
"""A candidate this far from ``at`` (or farther) loses the whole ``BIAS`` share of its score."""
BIAS = 0.05

IN_TOWN, TOWN_UNKNOWN, OTHER_TOWN = 1.0, 0.93, 0.8
"""Street in the query's town, street known in no town, street of other towns only."""
WITH_POSTCODE, POSTCODE_UNKNOWN, OTHER_POSTCODE = 1.0, 0.97, 0.85

OTHER_COUNTRY = 0.6
"""A candidate outside the country (or the region's countries) the query names."""

NUMBER, BARE_NUMBER, INTERPOLATED, NUMBER_MISSING, STREET = 1.0, 0.9, 0.88, 0.72, 0.96
"""Levels of a street candidate: the query's house number on it, its bare number ("12" for
"12b"), a point between two known numbers, the street without the number asked for, the
street where no number was asked for."""


class Placed(Protocol):
    """A candidate as a search judges it."""

    @property
    def score(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def lat(self) -> float: ...
    @property
    def country(self) -> str | None: ...


def distance_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    dx = (lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, lat2 - lat1) * EARTH_KM_PER_DEGREE


def bias(km: float) -> float:
    """The factor of a candidate ``km`` away from ``at``."""
    return 1.0 - BIAS * min(1.0, km / BIAS_KM)


class Judge:
    """What a search does to each candidate of one reading: it drops one of another
    ``country`` than asked for, lowers one outside the country or region the reading names,
    and lowers each by its distance to ``at``."""

    def __init__(
        self,
        gazetteer: GazetteerIndex | None,
        reading: ParsedAddress,
        country: str | None,
        at: tuple[float, float] | None,
    ) -> None:
        self.gazetteer = gazetteer
        self.reading = reading
        self.country = country
        self.at = at
        self.by_country = bool(
            country or reading.country or (reading.region and gazetteer is not None)
        )
        """Whether a candidate's country can matter at all."""
        self._within: frozenset[str] | None = None  # countries of the region named, read once

    def country_factor(self, country: str | None) -> float | None:
        """The factor for a candidate in ``country``; None where it is left out."""
        if not country:
            return 1.0
        if self.country and country != self.country:
            return None
        reading = self.reading
        if reading.country and country != reading.country:
            return OTHER_COUNTRY
        if reading.region and self.gazetteer is not None:
            if self._within is None:
                self._within = self.gazetteer.region_countries(reading.region)
            if self._within and country not in self._within:  # "Memphis, Florida"
                return OTHER_COUNTRY
        return 1.0

    def score(self, candidate: Placed) -> float | None:
        """The candidate's score in this search; None where it is left out."""
        factor = self.country_factor(candidate.country) if self.by_country else 1.0
        if factor is None:
            return None
        score = candidate.score
        if factor != 1.0:
            score = score * factor
        if self.at is not None:
            score = score * bias(distance_km(self.at[1], self.at[0], candidate.lon, candidate.lat))
        return score

    def street_countries(self, found: StreetSet) -> np.ndarray | float:
        """``country_factors`` of the streets found."""
        countries = found.streets.country_codes
        return self.country_factors(Countries(countries.codes[found.index], countries.names))

    def country_factors(self, countries: Countries) -> np.ndarray | float:
        """``country_factor`` of each row (0 where it is left out), one call per country."""
        if not self.by_country:
            return 1.0
        codes = countries.codes
        table = np.ones(len(countries.names) + 1)
        for code in np.unique(codes).tolist():
            if code >= 0:
                table[code + 1] = self.country_factor(countries.names[code]) or 0.0
        return np.asarray(table[codes + 1])


def context_factor(localities: set[str], postcodes: set[str], reading: ParsedAddress) -> float:
    """How well the query's locality and postcode agree with what the street is known by."""
    factor = 1.0
    if reading.locality:
        if reading.locality in localities:
            factor *= IN_TOWN
        else:
            factor *= TOWN_UNKNOWN if not localities else OTHER_TOWN
    if reading.postcode:
        if reading.postcode in postcodes:
            factor *= WITH_POSTCODE
        else:
            factor *= POSTCODE_UNKNOWN if not postcodes else OTHER_POSTCODE
    return factor


class StreetSet:
    """The streets a name finds, in order (of equal answers the first wins), and how alike
    each name is; with the factors of their bounds, remembered per town, postcode, house
    number, country rule and ``at`` asked for, since one name is asked for again and again."""

    MEMO = 32
    """Factor arrays remembered per name (then it starts again)."""

    def __init__(self, streets: Streets, index: np.ndarray, similarity: np.ndarray) -> None:
        self.streets = streets
        self.index = index
        self.similarity = similarity
        self._memo: dict[tuple[object, ...], np.ndarray | float] = {}

    def __len__(self) -> int:
        return len(self.index)

    def factors(
        self, key: tuple[object, ...], make: Callable[[StreetSet], np.ndarray | float]
    ) -> np.ndarray | float:
        """``make(self)``, remembered under ``key``."""
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= self.MEMO:
                self._memo.clear()
            found = self._memo[key] = make(self)
        return found


def street_bounds(found: StreetSet, reading: ParsedAddress, judge: Judge) -> np.ndarray:
    """The highest score a candidate of each street found can reach for ``reading`` once
    ``judge`` has judged it: the product ``forward._on_street`` and ``Judge.score`` make,
    in their order."""
    context: np.ndarray | float = 1.0
    if town := reading.locality:
        context = found.factors(("town", town), lambda f: _towns(f, town))
    if postcode := reading.postcode:
        context = context * found.factors(("postcode", postcode), lambda f: _postcodes(f, postcode))
    score = found.similarity * context
    if number := reading.house_number:
        score = score * found.factors(("number", number), lambda f: _levels(f, number))
    else:
        score = score * STREET
    if judge.by_country:
        rule = ("country", judge.country, reading.country, reading.region)
        score = score * found.factors(rule, judge.street_countries)
    if (at := judge.at) is not None:
        score = score * found.factors(("at", at), lambda f: _biases(_nearest_km(f, at)))
    return np.asarray(score)


def _towns(found: StreetSet, town: str) -> np.ndarray:
    streets = found.streets
    inside = streets.by_town.holding(town, found.index)
    known = streets.town_counts[found.index] > 0
    return np.where(inside, IN_TOWN, np.where(known, OTHER_TOWN, TOWN_UNKNOWN))


def _postcodes(found: StreetSet, postcode: str) -> np.ndarray:
    streets = found.streets
    inside = streets.by_postcode.holding(postcode, found.index)
    known = streets.postcode_counts[found.index] > 0
    return np.where(inside, WITH_POSTCODE, np.where(known, OTHER_POSTCODE, POSTCODE_UNKNOWN))


def _levels(found: StreetSet, number: str) -> np.ndarray | float:
    """The best house-number level of each street (see ``forward._on_street``)."""
    streets, index = found.streets, found.index
    exact = streets.by_number.holding(number, index)
    if exact.all():
        return NUMBER
    value = house_number_value(number)
    if value is None:
        return np.where(exact, NUMBER, NUMBER_MISSING)
    start, end = streets.sorted_starts[index], streets.sorted_starts[index + 1]
    values = streets.sorted_values
    around = end - start >= 2  # the lowest number below the value, the highest above it
    around[around] = (values[start[around]] < value) & (values[end[around] - 1] > value)
    level = np.where(around, INTERPOLATED, NUMBER_MISSING)
    if str(value) != number:
        level = np.where(streets.by_number.holding(str(value), index), BARE_NUMBER, level)
    return np.where(exact, NUMBER, level)


def pool_bounds(
    score: np.ndarray, lon: np.ndarray, lat: np.ndarray, countries: Countries, judge: Judge
) -> np.ndarray:
    """The score of each of many made candidates once judged, or a little more."""
    bounds = score * judge.country_factors(countries)
    if judge.at is None:
        return np.asarray(bounds)
    lat1, lon1 = judge.at
    dx = (lon - lon1) * np.cos(np.radians((lat1 + lat) / 2))
    km = np.hypot(dx, lat - lat1) * EARTH_KM_PER_DEGREE * (1.0 - 1e-9)  # rounding slack
    return np.asarray(bounds * _biases(np.fmax(km, 0.0)))


def _biases(km: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 - BIAS * np.minimum(1.0, km / BIAS_KM))


def _nearest_km(found: StreetSet, at: tuple[float, float]) -> np.ndarray:
    """A lower bound of ``distance_km`` from ``at`` to any point of each street's
    bounding box (the cosine of the mean latitude taken at its smallest)."""
    lat, lon = at
    streets, index = found.streets, found.index
    south, north = streets.south[index], streets.north[index]
    dlon = np.abs(lon - np.clip(lon, streets.west[index], streets.east[index]))
    dlat = np.abs(lat - np.clip(lat, south, north))
    mean = np.maximum(np.abs(lat + south), np.abs(lat + north)) * (np.pi / 360.0)
    km = np.hypot(dlon * np.cos(mean), dlat) * (EARTH_KM_PER_DEGREE * (1.0 - 1e-9))  # slack
    return np.asarray(np.fmax(km, 0.0))  # a box without coordinates: no bound
