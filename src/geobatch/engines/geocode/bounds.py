"""How a street's candidate is scored, and the most it can score, for many streets at once.

A country holds hundreds of streets of one name ("Hauptstraße"); scoring each would make a
query cost what the release weighs. So the geocoder takes the best score each street could
reach, over all of them in one pass over mapped arrays (``street_bounds``), scores the streets
best bound first and stops where no bound beats the answers it has. A bound is the product the
scoring itself makes, in the same order (so equal streets get equal bounds, bit for bit):
similarity, times the agreement of the street's towns and postcodes with the query's
(``context_factor``), times the best house-number level the street allows (its own number, the
bare number, interpolation between two numbers around it, else the street), times the bias
towards ``at`` at the nearest point of the street's bounding box. Where the reading leaves
few factors to tell the streets apart, only the bias does: ``street_reach`` orders them by
what each can reach at most, and ``street_bound`` works out the bound of one street, so that
the nearest few are looked at and the rest are not.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from geobatch.engines.geocode.gazetteer import GazetteerIndex
from geobatch.engines.geocode.index import Countries, Street, Streets
from geobatch.engines.geocode.normalize import house_number_value
from geobatch.engines.geocode.parse import ParsedAddress

T = TypeVar("T", float, np.ndarray)

EARTH_KM_PER_DEGREE = 111.195
BIAS_KM = 500.0
"""A candidate this far from ``at`` (or farther) loses the whole ``BIAS`` share of its score."""
BIAS = 0.05

MAX_INDEXED_NUMBER = 10**15
"""House numbers are indexed by the value of their first 15 digits at most."""

PARTIAL_SORT = 1_000
"""Of more values than this, the highest are found by a partial sort first (fewer are
sorted whole faster)."""

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
        self.plain = not self.by_country and at is None
        """Whether every candidate keeps its score (``score`` changes none)."""
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

    def best_country(self, found: StreetSet) -> float:
        """The highest ``country_factor`` of the streets found (0 where all are left out)."""
        if not self.by_country:
            return 1.0
        names = found.streets.country_codes.names
        return max(
            (self.country_factor(names[code] if code >= 0 else None) or 0.0)
            for code in found.countries()
        )

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


@dataclass
class StreetFacts:
    """What a set of streets is remembered by, whatever its similarities: factor arrays per
    town, postcode, house number, country rule and ``at`` asked for, and facts read once."""

    memo: dict[tuple[object, ...], np.ndarray | float] = field(default_factory=dict)
    countries: list[int] | None = None
    all_known: bool | None = None
    ranges: NumberRanges | None = None


class StreetSet:
    """The streets a name finds, in order (of equal answers the first wins), and how alike
    each name is; with the factors of their bounds, remembered per town, postcode, house
    number, country rule and ``at`` asked for, since one name is asked for again and again."""

    MEMO = 32
    """Factor arrays remembered per name (then it starts again)."""

    def __init__(
        self,
        streets: Streets,
        index: np.ndarray,
        similarity: np.ndarray,
        facts: StreetFacts | None = None,
    ) -> None:
        self.streets = streets
        self.index = index
        self.similarity = similarity
        self._facts = facts if facts is not None else StreetFacts()
        self._ordered: dict[tuple[object, ...], tuple[list[int], list[float]]] = {}
        self._most_alike: float | None = None
        self._pairs: list[tuple[Street, float]] | None = None
        self._first: float | None = None

    def __len__(self) -> int:
        return len(self.index)

    def factors(
        self, key: tuple[object, ...], make: Callable[[StreetSet], np.ndarray | float]
    ) -> np.ndarray | float:
        """``make(self)``, remembered under ``key``."""
        memo = self._facts.memo
        found = memo.get(key)
        if found is None:
            if len(memo) >= self.MEMO:
                memo.clear()
            found = memo[key] = make(self)
        return found

    def first_similarity(self) -> float:
        """The first street's similarity (0 where there is none), read once."""
        if self._first is None:
            self._first = float(self.similarity[0]) if len(self.similarity) else 0.0
        return self._first

    def pairs(self) -> list[tuple[Street, float]]:
        """Each street with its similarity, in order, read once: a set of few streets is
        gone through whole by every reading that finds it."""
        if self._pairs is None:
            streets = self.streets
            self._pairs = [
                (streets[index], similarity)
                for index, similarity in zip(
                    self.index.tolist(), self.similarity.tolist(), strict=True
                )
            ]
        return self._pairs

    def most_alike(self) -> float:
        """The highest similarity of the streets, read once."""
        if self._most_alike is None:
            self._most_alike = float(self.similarity.max(initial=0.0))
        return self._most_alike

    def all_known(self) -> bool:
        """Whether every street is known in some town, read once."""
        facts = self._facts
        if facts.all_known is None:
            facts.all_known = bool((self.streets.town_counts[self.index] > 0).all())
        return facts.all_known

    def number_ranges(self) -> NumberRanges:
        """The streets' ranges of numbered values, read once."""
        facts = self._facts
        if facts.ranges is None:
            facts.ranges = NumberRanges.of(self)
        return facts.ranges

    def countries(self) -> list[int]:
        """The distinct country codes of the streets (-1: none), read once."""
        facts = self._facts
        if facts.countries is None:
            codes = self.streets.country_codes.codes[self.index]
            if not len(codes):
                facts.countries = [-1]
            elif (codes == codes[0]).all():  # most names lie in one country
                facts.countries = [int(codes[0])]
            else:
                present = np.bincount(codes + 1, minlength=len(self.streets.country_codes.names))
                facts.countries = (np.flatnonzero(present) - 1).tolist()
        return facts.countries

    def ordered(
        self, key: tuple[object, ...], make: Callable[[StreetSet], np.ndarray], count: int
    ) -> tuple[list[int], list[float]]:
        """The positions of the ``count`` highest of ``make(self)`` (and any equal to the
        last), highest first, ties by position, with those values; remembered under ``key``."""
        found = self._ordered.get(key)
        if found is None:
            values = make(self)
            order = highest(values, count)
            if len(self._ordered) >= self.MEMO:
                self._ordered.clear()
            found = self._ordered[key] = (order.tolist(), values[order].tolist())
        return found


def street_reach(
    found: StreetSet, reading: ParsedAddress, judge: Judge, ceilings: Ceilings, count: int
) -> tuple[list[int], list[float]]:
    """Positions by the most a street can reach whatever its house numbers and country
    (``street_bounds`` with each street's own town, postcode and bias factors, but the
    house-number level its numbers allow at best, ``NumberRanges``, and the ``ceilings``'
    country), highest first, ties by position, with those values. The same products in the
    same order, each factor no lower than the one it stands for, so each is at least its
    street's bound, bit for bit. Remembered per town, postcode, kind of number
    (``NumberRanges.kind``: one name is asked for with many numbers, which most of its streets
    span alike), ``at`` and ceiling; the ``count`` highest only (and any equal to the
    last)."""
    town, postcode, number = reading.locality, reading.postcode, reading.house_number
    kind = found.number_ranges().kind(number) if number else None
    at = judge.at

    def reach(f: StreetSet) -> np.ndarray:
        score = f.similarity * _context(f, town, postcode)
        if not number:
            score = score * STREET
        else:
            may_have = f.number_ranges().spanning(number)
            score = score * np.where(may_have, NUMBER, NUMBER_MISSING)
        if judge.by_country:
            score = score * ceilings[2]
        if at is not None:
            score = score * f.factors(("at", at), lambda g: _biases(_nearest_km(g, at)))
        return np.asarray(score)

    key = ("reach", town, postcode, kind, ceilings[2] if judge.by_country else None, at)
    return found.ordered(key, reach, count)


def street_most(found: StreetSet, ceilings: Ceilings) -> float:
    """At least the highest of ``street_reach`` (the bias left out), read without a pass
    over the streets: a reading that cannot beat the answer in hand costs nothing more."""
    return float(_times(found.most_alike(), ceilings))


Ceilings = tuple[float, float, float]
"""The best town, house-number level and country factors any of some streets can have."""


def street_ceilings(found: StreetSet, reading: ParsedAddress, judge: Judge) -> Ceilings:
    """``Ceilings`` of the streets found for ``reading`` as ``judge`` judges them."""
    town = _best_town(found, reading.locality) if reading.locality else 1.0
    if judge.by_country:
        rule = ("best country", judge.country, reading.country, reading.region)
        country = float(found.factors(rule, judge.best_country))
    else:
        country = 1.0
    return town, NUMBER if reading.house_number else STREET, country


def _times(similarity: T, ceilings: Ceilings) -> T:
    """``similarity`` times the factors, in the order ``street_bounds`` multiplies them."""
    town, ceiling, country = ceilings
    score = similarity
    if town != 1.0:
        score = score * town
    score = score * ceiling
    if country != 1.0:
        score = score * country
    return score


def _best_town(found: StreetSet, town: str) -> float:
    """The highest town factor (``_towns``) of the streets found: that of a street in the
    town where the town has streets at all, else of one in other towns where all are."""
    streets = found.streets
    if len(streets.by_town.rows(town)):
        return IN_TOWN
    return OTHER_TOWN if found.all_known() else TOWN_UNKNOWN


def street_bounds(found: StreetSet, reading: ParsedAddress, judge: Judge) -> np.ndarray:
    """The highest score a candidate of each street found can reach for ``reading`` once
    ``judge`` has judged it: the product ``forward._on_street`` and ``Judge.score`` make,
    in their order."""
    score = found.similarity * _context(found, reading.locality, reading.postcode)
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


def _context(found: StreetSet, town: str | None, postcode: str | None) -> np.ndarray | float:
    """Each street's ``context_factor``: its town's factor times its postcode's."""
    context: np.ndarray | float = 1.0
    if town:
        context = found.factors(("town", town), lambda f: _towns(f, town))
    if postcode:
        context = context * found.factors(("postcode", postcode), lambda f: _postcodes(f, postcode))
    return context


@dataclass(frozen=True)
class NumberRanges:
    """The distinct ranges of numbered values of some streets (``inverse``: each street's),
    for telling which streets may have a house number without a pass over all of them: the
    number itself, its bare number and two numbers to interpolate between all lie within a
    street's lowest and highest numbered values (``_levels``), and a region's same-named
    streets share few ranges."""

    lowest: np.ndarray
    highest: np.ndarray
    inverse: np.ndarray
    numbered: np.ndarray
    """Per range, whether its streets have house numbers at all."""
    ends: list[int]
    """The ranges' lowest and highest values, sorted: values between two of them (or equal
    to one) lie in the same ranges."""

    @classmethod
    def of(cls, found: StreetSet) -> NumberRanges:
        streets, index = found.streets, found.index
        start, stop = streets.sorted_starts[index], streets.sorted_starts[index + 1]
        valued = stop > start
        numbers = streets.number_starts
        numbered = numbers[index + 1] > numbers[index]
        # the values of the streets that have any (the others' positions are clipped, not
        # read: a copy of all the release's values would cost more than the streets)
        values = streets.sorted_values if len(streets.sorted_values) else np.zeros(1, np.int64)
        last = len(values) - 1
        low = values[np.minimum(start, last)]
        high = values[np.minimum(np.maximum(stop - 1, 0), last)]
        # a range holding no value: (1, 0) for numbers without values, (2, 0) for none
        lowest = np.where(valued, low, 2 - numbered)
        return cls.of_streets(lowest, np.where(valued, high, 0))

    @classmethod
    def of_streets(cls, lowest: np.ndarray, highest: np.ndarray) -> NumberRanges:
        """From each street's lowest and highest value ((1, 0): numbers without values,
        (2, 0): no numbers)."""
        # one complex number per range sorts as the pair does (values < 2**53 are exact)
        distinct, inverse = np.unique(lowest + 1j * highest, return_inverse=True)
        low, high = distinct.real.astype(np.int64), distinct.imag.astype(np.int64)
        ends = np.unique(np.r_[low, high]).tolist()
        return cls(low, high, inverse.reshape(-1), ~((low == 2) & (high == 0)), ends)

    def kind(self, number: str) -> int:
        """Numbers of one kind lie in the same ranges (-1: a number without a value)."""
        value = _indexed_value(number)
        if value is None:
            return -1
        at = bisect.bisect_left(self.ends, value)
        return 2 * at + (at < len(self.ends) and self.ends[at] == value)

    def spanning(self, number: str) -> np.ndarray:
        """Per street, whether it may have ``number`` at a level above ``NUMBER_MISSING``.
        A number without a value can only be one of a street's own."""
        value = _indexed_value(number)
        if value is None:
            return np.asarray(self.numbered[self.inverse])
        return np.asarray(((self.lowest <= value) & (value <= self.highest))[self.inverse])


def _indexed_value(number: str) -> int | None:
    """The number's value where the index holds such values."""
    value = house_number_value(number)
    return value if value is not None and value < MAX_INDEXED_NUMBER else None


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


def street_bound(found: StreetSet, position: int, reading: ParsedAddress, judge: Judge) -> float:
    """``street_bounds(found, reading, judge)[position]``, bit for bit, from that one street's
    rows: the same factors multiplied in the same order, for ranking the nearest few of many
    same-named streets without a pass over all of them."""
    street = found.streets[int(found.index[position])]
    score = float(found.similarity[position])
    context: float | None = None
    if town := reading.locality:
        towns = street.localities
        context = IN_TOWN if town in towns else OTHER_TOWN if towns else TOWN_UNKNOWN
    if postcode := reading.postcode:
        codes = street.postcodes
        code = WITH_POSTCODE if postcode in codes else OTHER_POSTCODE if codes else POSTCODE_UNKNOWN
        context = code if context is None else context * code
    if context is not None:
        score = score * context
    number = reading.house_number
    score = score * (_level(street, number) if number else STREET)
    if judge.by_country:
        score = score * (judge.country_factor(street.country) or 0.0)
    if (at := judge.at) is not None:
        biases = found.factors(("at", at), lambda f: _biases(_nearest_km(f, at)))
        score = score * float(np.asarray(biases)[position])
    return score


def _level(street: Street, number: str) -> float:
    """``_levels`` of one street."""
    numbers = street.numbers
    if number in numbers:
        return NUMBER
    value = house_number_value(number)
    if value is None:
        return NUMBER_MISSING
    values = street.sorted_numbers
    around = len(values) >= 2 and values[0] < value and values[-1] > value
    level = INTERPOLATED if around else NUMBER_MISSING
    if str(value) != number and str(value) in numbers:
        level = BARE_NUMBER
    return level


def highest(values: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` highest values (and any equal to the last), highest first,
    equal ones in position order."""
    if len(values) > max(4 * count, PARTIAL_SORT):  # a country's names find thousands
        cut = np.partition(-values, count - 1)[count - 1]
        head = np.flatnonzero(-values <= cut)
        return head[np.argsort(-values[head], kind="stable")]
    return np.argsort(-values, kind="stable")[:count]


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
    # ``np.minimum(np.maximum(...))`` is ``np.clip`` without its wrapper's cost
    dlon = np.abs(lon - np.minimum(np.maximum(lon, streets.west[index]), streets.east[index]))
    dlat = np.abs(lat - np.minimum(np.maximum(lat, south), north))
    mean = np.maximum(np.abs(lat + south), np.abs(lat + north)) * (np.pi / 360.0)
    km = np.hypot(dlon * np.cos(mean), dlat) * (EARTH_KM_PER_DEGREE * (1.0 - 1e-9))  # slack
    return np.asarray(np.fmax(km, 0.0))  # a box without coordinates: no bound
