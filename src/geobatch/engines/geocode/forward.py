"""Forward geocoding: address parts to ranked candidates, falling back level by level.

For each reading of a query (``parse``) the matcher looks for the street (exact key, then
the key without its street type, then rapidfuzz over the release's distinct street names),
then the house number on it (exact, then its bare number, then interpolated between the
nearest known numbers on the same side), and for places and POIs by name. When the street is
unknown it falls back to the locality (the release's own places, then GeoNames cities worldwide,
ranked by population, country, state and distance to the ``at`` bias), the region and the
country. Each candidate carries a raw score in 0..1 that ``calibration.confidence`` turns
into how often such answers are right. Of many streets or localities of one name (a country's
hundreds of "Hauptstraße"s), only those whose bound (``bounds``) may still win are scored, so
that a query costs about the same on a country as on a town: the streets nearest the ``at``
bias are bounded one by one until the rest cannot win (``_nearest_first``), and a town's
many namesakes become candidates only when they may.
"""

from __future__ import annotations

import bisect
import heapq
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import cast

import numpy as np
import shapely

from geobatch.engines.geocode.bounds import (
    BARE_NUMBER,
    EARTH_KM_PER_DEGREE,
    INTERPOLATED,
    NUMBER,
    NUMBER_MISSING,
    STREET,
    Judge,
    StreetFacts,
    StreetSet,
    context_factor,
    distance_km,
    highest,
    pool_bounds,
    street_bound,
    street_bounds,
    street_ceilings,
    street_most,
    street_reach,
)
from geobatch.engines.geocode.cache import Memo, cached
from geobatch.engines.geocode.calibration import confidence
from geobatch.engines.geocode.gazetteer import Area, GazetteerIndex, gazetteer_index
from geobatch.engines.geocode.index import (
    Countries,
    FuzzyKeys,
    LocalIndex,
    Street,
    local_index,
    number_shape,
)
from geobatch.engines.geocode.normalize import (
    house_number_value,
    plain_umlauts,
    street_core,
    street_key,
)
from geobatch.engines.geocode.parse import ParsedAddress, Vocabulary, parse_fields
from geobatch.engines.geocode.templates import ReadingTemplates
from geobatch.reference import Release
from geobatch.reference.indexes.gazetteer import COUNTRY

NUMBER_FIRST = frozenset({"US", "GB", "CA", "AU", "NZ", "IE", "FR", "MC", "LU", "BE"})
"""Countries whose addresses put the house number before the street."""

FUZZY_CUTOFF = 75.0
FUZZY_LIMIT = 3
"""Names most like a misspelt street's that are looked at."""
NEARBY_CUTOFF = 60.0
"""The cut-off for a misspelt street sought among the streets of the query's postcode or
town only (``_misspelt_nearby``): of those few names, one this alike (three slips in a
ten-letter word) is still most likely the one meant."""
PLACE_CUTOFF = 80.0
PLACE_CEILING = 0.95
"""The best score a place or POI can earn (``_place``), what a reading of a name can reach."""
MAX_SCORED = 12
"""Streets (or same-named localities) scored per reading at most, best bound first."""
FEW = 3
"""Of this many streets or localities or fewer, all are scored: bounds would cost more."""
NEAREST_FIRST = 16
"""Streets whose bound ``_nearest_first`` works out one by one before it leaves the rest to
the bounds of all of them at once (``_best_first``)."""
FACTS_REMEMBERED = 1_024
"""Sets of streets whose factors are remembered (``bounds.StreetFacts``): each holds up to
``StreetSet.MEMO`` arrays of its length."""
CERTAIN = 0.97
"""A candidate this good (exact street and number, say) ends the search early."""
STREET_FALLBACK = 0.62
"""The share of its score a locality, postcode, region or country keeps when the reading
also names a street that was not found."""
STREET_FALLBACK_CEILING = 0.93 * STREET_FALLBACK
"""Above what such a fallback can score (a locality or city at most 0.92 of its share; the
country 0.55), with room for rounding."""
_DIGIT = re.compile(r"\d")
NEAR_TOWN_KM = 30.0
"""A place named with a town after it ("Gràcia, Barcelona") lies this close to the town."""
PLACE_OUTSIDE = (COUNTRY,)
"""Kinds a locality reading never answers with (countries come from the country reading)."""


@dataclass(frozen=True, kw_only=True)
class Candidate:
    lon: float
    lat: float
    label: str
    match_level: str
    score: float
    """Raw 0..1 agreement between query and candidate; ``confidence`` calibrates it."""
    ref_id: str | None = None
    house_number: str | None = None
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None

    @property
    def confidence(self) -> int:
        return confidence(self.score, self.match_level)


class _Pool:
    """The localities (or regions) of one name: scores and places as arrays, each candidate
    made when first asked for (``make``), so that of a country's many same-named towns only
    those that may win are made."""

    def __init__(
        self,
        score: np.ndarray,
        lon: np.ndarray,
        lat: np.ndarray,
        countries: list[str | None],
        make: Callable[[int], Candidate],
    ) -> None:
        self.score = score
        self.most = float(score.max(initial=0.0))
        """No candidate of the pool scores more, however judged."""
        self.lon = lon
        self.lat = lat
        self.countries = Countries.of(countries)
        self._make = make
        self._made: dict[int, Candidate] = {}
        self._all: list[Candidate] | None = None
        self._best: dict[tuple[object, ...], list[Candidate]] = {}

    @classmethod
    def of(cls, candidates: list[Candidate]) -> _Pool:
        def values(field: str) -> np.ndarray:
            return np.array([getattr(c, field) for c in candidates], dtype=np.float64)

        countries = [c.country for c in candidates]
        return cls(values("score"), values("lon"), values("lat"), countries, candidates.__getitem__)

    def __len__(self) -> int:
        return len(self.score)

    def __getitem__(self, position: int) -> Candidate:
        made = self._made.get(position)
        if made is None:
            made = self._made[position] = self._make(position)
        return made

    def candidates(self) -> list[Candidate]:
        """Every candidate (remembered: a pool of few is asked for all of them again and again)."""
        if self._all is None:
            self._all = [self[position] for position in range(len(self))]
        return self._all

    def best(self, judge: Judge, limit: int) -> list[Candidate]:
        """The candidates that may win (``_best_first`` with no floor), remembered per way of
        judging: every reading naming the town asks again, and a floor would only leave out
        candidates that score no more than it (each scores at most its bound), which a search
        skips anyway."""
        reading = judge.reading
        key = (judge.country, reading.country, reading.region, judge.at, limit)
        found = self._best.get(key)
        if found is None:
            bounds = pool_bounds(self.score, self.lon, self.lat, self.countries, judge)
            found = self._best[key] = _best_first(bounds, self.__getitem__, judge, 0.0, limit)
        return found


@dataclass(frozen=True)
class _Named:
    """The gazetteer's places of one name a locality may be (no countries, none without a
    point), with their weights among same-named places and their countries."""

    rows: np.ndarray
    population: np.ndarray
    countries: list[str | None]


class ForwardGeocoder:
    """One release's forward geocoder; the indexes are shared by every geocoder of the process."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.local: LocalIndex = local_index(release)
        self.gazetteer: GazetteerIndex | None = gazetteer_index(release)
        self.vocabulary = Vocabulary(self.local, self.gazetteer)
        self.templates = ReadingTemplates(self.vocabulary)
        self._street_cache: Memo[str, StreetSet] = Memo()
        self._shape_cache: Memo[str, StreetSet | None] = Memo()
        self._nearby_cache: Memo[tuple[str, str, str, str], StreetSet] = Memo()
        self._area_names: Memo[tuple[str, str, str], tuple[np.ndarray, FuzzyKeys]] = Memo(
            FACTS_REMEMBERED
        )
        self._place_cache: Memo[str, list[tuple[int, float]]] = Memo()
        self._locality_cache: Memo[tuple[object, ...], _Pool] = Memo()
        self._named_cache: Memo[str, _Named] = Memo()
        self._facts_cache: Memo[bytes, StreetFacts] = Memo(FACTS_REMEMBERED)
        self._street_level_cache: Memo[tuple[int, float], Candidate] = Memo()
        self._address_cache: Memo[tuple[int, int, float], Candidate] = Memo()
        self._place_candidate_cache: Memo[tuple[int, float], Candidate] = Memo()
        self._interpolated_cache: Memo[tuple[int, int], tuple[float, float] | None] = Memo()

    def clear_caches(self) -> None:
        """Forget remembered street, place, locality, street-level, address, vocabulary,
        reading and fuzzy-match answers (all bounded)."""
        self._street_cache.clear()
        self._shape_cache.clear()
        self._nearby_cache.clear()
        self._area_names.clear()
        self._place_cache.clear()
        self._locality_cache.clear()
        self._named_cache.clear()
        self._facts_cache.clear()
        self._street_level_cache.clear()
        self._address_cache.clear()
        self._place_candidate_cache.clear()
        self._interpolated_cache.clear()
        self.vocabulary.forget()
        self.templates.clear()
        self.local.forget()

    # -- entry points --------------------------------------------------------------------

    def geocode(
        self,
        text: str | None = None,
        *,
        fields: Mapping[str, str | None] | None = None,
        country: str | None = None,
        at: tuple[float, float] | None = None,
        limit: int = 1,
    ) -> list[Candidate]:
        """Best candidates first, at most ``limit``; free text and fields may be combined."""
        found: Iterable[ParsedAddress] = ()
        given = (
            {key: value for key, value in fields.items() if value and value.strip()}
            if fields
            else None
        )
        if given:
            structured = parse_fields(self.vocabulary, **given)
            if text and text.strip():
                found = (_merge(r, structured) for r in self.templates.readings(text))
            else:
                found = (structured,)
        elif text:
            found = self.templates.readings(text)
        return self.search(found, country=country, at=at, limit=limit)

    def search(
        self,
        readings: Iterable[ParsedAddress],
        *,
        country: str | None = None,
        at: tuple[float, float] | None = None,
        limit: int = 1,
    ) -> list[Candidate]:
        """Candidates of every reading, filtered and biased, best first and deduplicated."""
        found: dict[Key, Candidate] = {}
        best = 0.0  # for one answer, what a later reading must beat to matter
        seen: set[ParsedAddress] = set()
        judges: dict[tuple[str | None, str | None], Judge] = {}
        for reading in readings:
            if reading in seen or (limit == 1 and _bound(reading) <= best):
                continue
            seen.add(reading)
            # a judge reads only the reading's country and region: readings alike in those share one
            judge = judges.get((reading.country, reading.region))
            if judge is None:
                judge = Judge(self.gazetteer, reading, country, at)
                judges[reading.country, reading.region] = judge
            plain = judge.plain
            for candidate in self._candidates(reading, judge, best if limit == 1 else 0.0, limit):
                score = candidate.score if plain else judge.score(candidate)
                if score is None or (limit == 1 and score <= best):
                    continue  # one answer: a later candidate must beat the best to matter
                if score != candidate.score:
                    candidate = replace(candidate, score=score)
                key = _key(candidate)
                if key not in found or found[key].score < candidate.score:
                    # of equal answers the first to reach its score wins, so a candidate
                    # left out while it could not win changes no order (``_best_first``)
                    found.pop(key, None)
                    found[key] = candidate
                    best = max(best, candidate.score)
            if limit == 1 and best >= CERTAIN:
                break  # later readings are less specific: they cannot beat an exact match
        ranked = sorted(found.values(), key=lambda c: -c.score)
        return ranked[:limit]

    # -- candidates ----------------------------------------------------------------------

    def _candidates(
        self, reading: ParsedAddress, judge: Judge, floor: float, limit: int
    ) -> list[Candidate]:
        """The reading's candidates, unjudged; those that cannot beat ``floor`` (a better
        answer) may be left out."""
        out: list[Candidate] = []
        offered = False  # whether any candidate was found, scored or left out
        if reading.street:
            streets = None if reading.name_only else self._streets(reading.street)
            if streets is not None and not len(streets) and floor < NEARBY_CUTOFF / 100.0:
                streets = self._misspelt_nearby(reading)
            if streets is not None:
                offered = bool(len(streets))
                out.extend(self._on_streets(streets, reading, judge, floor, limit))
            # a close street match makes a fuzzy POI search pointless (only exact names count)
            close = 0.85 if reading.house_number else 0.99
            fuzzy = streets is None or streets.first_similarity() < close
            # text with a number inside is an address; only a name-only reading may be a POI's,
            # and only while no other reading found anything ("Fire Station 30")
            if fuzzy and _DIGIT.search(reading.street):
                fuzzy = reading.name_only and floor == 0.0
            if fuzzy or self.local.names_place(reading.street):  # else no place is found
                # a POI named like a locality ("Kluuvi" the mall) ranks below the locality itself,
                # and one read with a town that is none of the release's ("Memphis, Florida")
                # below a place of that town
                factor = _place_factor(reading) * (
                    0.9 if reading.street in self.local.localities else 1
                )
                if reading.locality and not self.local.is_locality(reading.locality):
                    factor *= 0.8
                needed = floor / (PLACE_CEILING * factor)
                for row, similarity in self._places(reading.street, fuzzy=fuzzy, needed=needed):
                    out.append(self._place(row, similarity * factor))
        if reading.street and floor >= STREET_FALLBACK_CEILING:
            return out  # what the fallbacks below could find cannot beat the answer in hand
        best = max([c.score for c in out]) if out else 0.0
        fallback = 1.0 if not reading.street else STREET_FALLBACK
        if best < 0.75 and reading.locality:
            pool = self._localities(reading, judge.at, fallback)
            offered = offered or bool(len(pool))
            out.extend(self._best_of(pool, judge, floor, limit))
        elif best < 0.75 and reading.postcode and reading.postcode in self.local.postcodes:
            out.append(self._postcode(reading.postcode, fallback))
        if best < 0.7 and reading.region and not reading.locality:
            pool = self._regions(reading.region, 0.92 * fallback)
            offered = offered or bool(len(pool))
            out.extend(self._best_of(pool, judge, floor, limit))
        if not out and not offered and reading.country and self.gazetteer is not None:
            area = self.gazetteer.country_area(reading.country)
            if area is not None:
                out.append(_area(area, 0.95 * fallback if not reading.street else 0.55))
        return out

    def _streets(self, key: str) -> StreetSet:
        cached = self._street_cache.get(key)
        if cached is not None:
            return cached
        shape = number_shape(key)
        if shape is None:
            return self._street_cache.keep(key, self._looked_up(key))
        # a key with a number in it (mostly a reading's street running on into the house
        # number and town) finds what every key of its shape finds, where no street name with
        # digits may be found by it: then the streets are remembered per shape
        if shape in self._shape_cache:
            shared = self._shape_cache[shape]
            if shared is not None:
                return shared
            return self._street_cache.keep(key, self._looked_up(key))
        found = self._looked_up(key)
        same = self.local.names_no_street(shape) and (
            self.local.fuzzy_streets.same_for_shape(shape, FUZZY_CUTOFF, FUZZY_LIMIT)
        )
        self._shape_cache.keep(shape, found if same else None)
        return self._street_cache.keep(key, found)

    def _looked_up(self, key: str) -> StreetSet:
        """The streets of ``key``: exact, its umlauts spelled out, its core, else misspelt."""
        local = self.local
        exact = local.street_by_key.array(key)
        spelled = local.street_by_plain.array(plain_umlauts(key))  # the exact ones among them
        spelled = spelled[~np.isin(spelled, exact)] if len(spelled) > len(exact) else spelled[:0]
        if len(exact) or len(spelled):
            # "ae" for "ä" either way: the right town's "Hämeentie" may beat another's "Haemeentie"
            found = self._found((exact, 1.0), (spelled, 0.98))
        elif len(core := local.street_by_core.array(street_core(key) or key)):
            found = self._found((core, 0.92))
        else:
            found = self._misspelt(key)
        return found

    def _misspelt(self, key: str) -> StreetSet:
        """The streets of the names most like ``key`` (mostly none: a reading's street is
        often the whole text, house number and town included)."""
        local = self.local
        alike = local.fuzzy_streets.extract(key, FUZZY_CUTOFF, FUZZY_LIMIT)
        if not alike:
            return self._no_streets
        return self._found(
            *((local.street_by_key.array(choice), score / 100.0) for choice, score in alike)
        )

    def _misspelt_nearby(self, reading: ParsedAddress) -> StreetSet:
        """The streets of the postcode (else the town) the reading names that have its house
        number and whose names are most like its street: a name too unlike for the whole
        release (``_misspelt``) may still be the likeliest of those few. Without a number
        nothing is guessed: a street missing from the release would find a wrong one."""
        number = reading.house_number
        if not (number and reading.street):
            return self._no_streets
        for kind, name in (("postcode", reading.postcode), ("town", reading.locality)):
            if name:
                area = (kind, name, number)
                found = self._nearby_cache.made(
                    (reading.street, *area), self._nearby, reading.street, area
                )
                if len(found):
                    return found
        return self._no_streets

    def _nearby(self, key: str, area: tuple[str, str, str]) -> StreetSet:
        rows, names = self._area_names.made(area, self._names_in, area)
        alike = names.extract(key, NEARBY_CUTOFF, 3)
        if not alike:
            return self._no_streets
        return self._found(
            *(
                (np.intersect1d(self.local.street_by_key.array(choice), rows), score / 100.0)
                for choice, score in alike
            )
        )

    def _names_in(self, area: tuple[str, str, str]) -> tuple[np.ndarray, FuzzyKeys]:
        """The streets of a postcode or town with a house number (or its bare number), and
        their distinct keys for fuzzy search among them."""
        kind, name, number = area
        streets = self.local.streets
        inside = (streets.by_postcode if kind == "postcode" else streets.by_town).rows(name)
        value = house_number_value(number)
        numbered = streets.by_number.rows(number)
        if value is not None and str(value) != number:
            numbered = np.union1d(numbered, streets.by_number.rows(str(value)))
        rows = np.intersect1d(inside, numbered)
        keys = {street_key(streets.names[row]) for row in rows.tolist()}
        return rows, FuzzyKeys(sorted(keys))

    @cached_property
    def _no_streets(self) -> StreetSet:
        """The set of no streets, made once."""
        return self._found()

    def _found(self, *parts: tuple[np.ndarray, float]) -> StreetSet:
        """Streets of several lookups, each lookup's with its similarity, in order; what is
        remembered of the same streets found before (by another spelling or reading) is
        shared."""
        index, similarity = _joined(parts)
        facts = self._facts_cache.made(index.tobytes(), StreetFacts)
        return StreetSet(self.local.streets, index, similarity, facts)

    def _places(self, key: str, *, fuzzy: bool, needed: float = 0.0) -> list[tuple[int, float]]:
        """Places named ``key``, else (``fuzzy``) the closest names at least ``needed`` alike."""
        places = self.local.places
        rows = places.by_key.get(key)
        if rows is not None:
            return [(row, 1.0) for row in rows[:5]]
        if not fuzzy or needed >= 1.0:
            return []
        cached = self._place_cache.get(key)
        if cached is not None:
            return cached
        cutoff = max(PLACE_CUTOFF, 100.0 * needed)
        found = [
            (row, score / 100.0)
            for choice, score in places.fuzzy.extract(key, cutoff, 3)
            for row in places.by_key[choice][:2]
        ]
        if cutoff == PLACE_CUTOFF:  # a higher cut-off may have left out what another needs
            self._place_cache.keep(key, found)
        return found

    def _on_streets(
        self, found: StreetSet, reading: ParsedAddress, judge: Judge, floor: float, limit: int
    ) -> list[Candidate]:
        """Candidates of the streets found, in their order; of many, only those whose bound
        (``street_bounds``) may still win (``_best_first``)."""
        streets = self.local.streets
        if len(found.index) <= FEW:
            # a candidate scores at most its similarity: one no better than the answer in
            # hand is not made (nor would it change which fallbacks run, see ``_candidates``)
            return [
                self._on_street(street, similarity, reading)
                for street, similarity in found.pairs()
                if similarity > floor
            ]

        def make(position: int) -> Candidate:
            street = streets[int(found.index[position])]
            return self._on_street(street, float(found.similarity[position]), reading)

        near = _nearest_first(found, reading, make, _Winners(judge, floor, limit))
        if near is not None:
            return near
        bounds = street_bounds(found, reading, judge)
        return _best_first(bounds, make, judge, floor, limit)

    def _best_of(self, pool: _Pool, judge: Judge, floor: float, limit: int) -> list[Candidate]:
        """The pool's candidates that may still win (``_best_first``), in their order."""
        if len(pool) <= FEW:
            return pool.candidates()
        if floor >= pool.most:
            return []  # none can beat the answer in hand
        return pool.best(judge, limit)

    def _on_street(self, street: Street, similarity: float, reading: ParsedAddress) -> Candidate:
        score = similarity * context_factor(street.localities, street.postcodes, reading)
        number = reading.house_number
        if number:
            row = street.numbers.get(number)
            if row is not None:
                return self._address(street, row, score * NUMBER)
            value = house_number_value(number)
            bare = street.numbers.get(str(value)) if value is not None else None
            if bare is not None:
                return self._address(street, bare, score * BARE_NUMBER)
            if value is not None and (point := self._interpolated(street, value)):
                return self._street_candidate(
                    street, score * INTERPOLATED, point, number, "interpolated"
                )
            return self._street_level(street, score * NUMBER_MISSING)
        return self._street_level(street, score * STREET)

    def _interpolated(self, street: Street, value: int) -> tuple[float, float] | None:
        """``_interpolate``, remembered: the readings of one query ask for the same number on
        the same street again and again. A number outside the street's known ones (most
        asked for) has nothing to interpolate from, which needs no memo."""
        numbers = street.number_list
        if len(numbers) < 2 or value <= numbers[0] or value >= numbers[-1]:
            return None
        return self._interpolated_cache.made(
            (street.index, value), _interpolate, street, value, self.local
        )

    def _street_level(self, street: Street, score: float) -> Candidate:
        """The street itself as the answer, remembered: many queries name a street with a
        number it lacks."""
        key = (street.index, score)
        found = self._street_level_cache.get(key)
        if found is None:
            found = self._street_level_cache.keep(
                key, self._street_candidate(street, score, None, None, "street")
            )
        return found

    def _address(self, street: Street, row: int, score: float) -> Candidate:
        """The address point ``row`` on ``street`` as the answer, remembered: the variants of
        one address (with or without its town, in lower case, misspelled) find it again."""
        key = (street.index, row, score)
        found = self._address_cache.get(key)
        if found is None:
            found = self._address_cache.keep(key, self._address_candidate(street, row, score))
        return found

    def _address_candidate(self, street: Street, row: int, score: float) -> Candidate:
        addresses = self.local.addresses
        postcode = addresses.postcodes[row]
        city = addresses.cities[row] or street.city
        display = addresses.numbers[row]
        return Candidate(
            lon=float(addresses.lon[row]),
            lat=float(addresses.lat[row]),
            label=_label(street.name, display, postcode, city, street.country),
            match_level="houseNumber",
            score=score,
            ref_id=addresses.ids[row],
            house_number=display,
            street=street.name,
            postal_code=postcode,
            city=city,
            state=addresses.states[row],
            country=street.country,
        )

    def _street_candidate(
        self,
        street: Street,
        score: float,
        point: tuple[float, float] | None,
        number: str | None,
        level: str,
    ) -> Candidate:
        lon, lat = point if point is not None else (street.lon, street.lat)
        postcode = (
            next(iter(sorted(street.postcodes)), None) if len(street.postcodes) == 1 else None
        )
        return Candidate(
            lon=lon,
            lat=lat,
            label=_label(street.name, number, postcode, street.city, street.country),
            match_level=level,
            score=score,
            ref_id=street.ref_id,
            house_number=number,
            street=street.name,
            postal_code=postcode,
            city=street.city,
            country=street.country,
        )

    def _place(self, row: int, score: float) -> Candidate:
        """The place or POI ``row`` as the answer, remembered: a town's name is read as a
        place by many readings of many queries."""
        return self._place_candidate_cache.made((row, score), self._place_candidate, row, score)

    def _place_candidate(self, row: int, score: float) -> Candidate:
        places = self.local.places
        kind = places.kinds[row]
        level = "poi" if kind == "poi" else "locality"
        return Candidate(
            lon=float(places.lon[row]),
            lat=float(places.lat[row]),
            label=places.names[row],
            match_level=level,
            score=score * (PLACE_CEILING if level == "poi" else 0.92),
            ref_id=places.ids[row],
            city=places.names[row] if level == "locality" else None,
            country=places.countries[row],
        )

    def _postcode(self, code: str, factor: float) -> Candidate:
        area = self.local.postcodes[code]
        return Candidate(
            lon=area.lon,
            lat=area.lat,
            label=" ".join(part for part in (area.name, area.state) if part),
            match_level="locality",
            score=0.85 * factor,
            postal_code=area.name,
            city=area.state,
            country=area.country or self.local.country,
        )

    def _localities(
        self, reading: ParsedAddress, at: tuple[float, float] | None, factor: float
    ) -> _Pool:
        cache_key = (reading.locality, reading.region, reading.country, at, factor)
        found = self._locality_cache.get(cache_key)
        if found is None:
            found = self._locality_cache.keep(cache_key, self._locality_pool(reading, at, factor))
        return found

    def _locality_pool(
        self, reading: ParsedAddress, at: tuple[float, float] | None, factor: float
    ) -> _Pool:
        """The release's own towns of the reading's name (read as columns, each made into a
        candidate only when scored), then the gazetteer's."""
        key = reading.locality or ""
        towns = self.local.localities
        rows = towns.rows_of(key)
        levels = towns.column("level", rows)
        own = np.array([(0.9 if level == "locality" else 0.85) * factor for level in levels])
        lon, lat = towns.places(rows)
        countries = cast(list[str | None], towns.column("country", rows))
        cities = self._cities(self.gazetteer, key, reading, at, factor) if self.gazetteer else []
        size = len(rows)

        def make(position: int) -> Candidate:
            if position >= size:
                return cities[position - size]
            return _area(towns.area(int(rows[position])), float(own[position]))

        return _Pool(
            np.concatenate([own, np.array([c.score for c in cities], dtype=np.float64)]),
            np.concatenate([lon, np.array([c.lon for c in cities], dtype=np.float64)]),
            np.concatenate([lat, np.array([c.lat for c in cities], dtype=np.float64)]),
            [*countries, *(c.country for c in cities)],
            make,
        )

    def _cities(
        self,
        gazetteer: GazetteerIndex,
        key: str,
        reading: ParsedAddress,
        at: tuple[float, float] | None,
        factor: float,
    ) -> list[Candidate]:
        """Gazetteer places of that name, ranked by kind and population, state, country, bias."""
        named = self._named(gazetteer, key)
        rows, population, countries = named.rows, named.population, named.countries
        if not len(rows):
            return []
        fit = np.ones(len(rows))
        codes = gazetteer.region_codes(reading.region) if reading.region else set()
        if codes:
            in_country = {country for country, _ in codes}
            admin1 = gazetteer.labels("admin1", rows)
            fit *= [
                1.0 if (c, a) in codes else 0.8 if a is None and c in in_country else 0.5
                for c, a in zip(countries, admin1, strict=True)
            ]
        elif reading.region and (anchor := gazetteer.anchor(reading.region)) is not None:
            near = np.hypot(
                (gazetteer.lon[rows] - anchor[0]) * math.cos(math.radians(anchor[1])),
                gazetteer.lat[rows] - anchor[1],
            )  # a borough and its city: "Gràcia, Barcelona"
            fit *= np.where(near * EARTH_KM_PER_DEGREE <= NEAR_TOWN_KM, 1.0, 0.5)
        if reading.country:
            fit *= [1.0 if c == reading.country else 0.5 for c in countries]
        weight = population * (fit == fit.max())  # a named state or country rules others out
        if at is not None:
            km = np.hypot(
                (gazetteer.lon[rows] - at[1]) * math.cos(math.radians(at[0])),
                gazetteer.lat[rows] - at[0],
            )
            weight = weight / (1.0 + (km * EARTH_KM_PER_DEGREE / 50.0) ** 2)
        share = weight / weight.sum()
        order = np.argsort(-share, kind="stable")[:5]
        out = []
        for position in order.tolist():
            area = gazetteer.area(int(rows[position]))
            score = (0.72 + 0.2 * float(share[position])) * float(fit[position]) * factor
            locality = area.level == "locality"
            country_name = gazetteer.country_name(area.country)
            state = area.state if area.state != area.name else None
            out.append(
                Candidate(
                    lon=area.lon,
                    lat=area.lat,
                    label=", ".join(p for p in (area.name, state, country_name) if p),
                    match_level=area.level,
                    score=score if locality else score * 0.97,
                    ref_id=area.ref_id,
                    city=area.name if locality else None,
                    state=area.state,
                    country=area.country,
                )
            )
        return out

    def _named(self, gazetteer: GazetteerIndex, key: str) -> _Named:
        """``_Named`` of ``key``, remembered: every reading naming the town asks for it."""
        found = self._named_cache.get(key)
        if found is None:
            rows, how = gazetteer.matches(key)
            keep = ~np.isin(gazetteer.kind[rows], PLACE_OUTSIDE) & np.isfinite(gazetteer.lon[rows])
            rows, how = rows[keep], how[keep]
            population = gazetteer.weights(rows, how) if len(rows) else np.zeros(0)
            named = _Named(rows, population, gazetteer.labels("country", rows))
            found = self._named_cache.keep(key, named)
        return found

    def _regions(self, key: str, factor: float) -> _Pool:
        cache_key = ("region", key, factor)
        found = self._locality_cache.get(cache_key)
        if found is not None:
            return found
        towns = self.local.localities
        rows = towns.rows_of(key)
        out = [_area(towns.area(int(row)), 0.9 * factor) for row in rows[towns.is_region[rows]]]
        if self.gazetteer is not None:
            out.extend(
                _area(area, 0.9 * factor * (0.9 + 0.1 * share))
                for area, share in self.gazetteer.regions(key)
            )
        return self._locality_cache.keep(cache_key, _Pool.of(out))


def forward_geocoder(release: Release) -> ForwardGeocoder:
    """The release's geocoder, shared by every chunk and request of the process."""
    return cached("forward", release, ForwardGeocoder)


def _merge(reading: ParsedAddress, fields: ParsedAddress) -> ParsedAddress:
    """Free text completed by the structured columns given alongside it."""
    return ParsedAddress(
        house_number=reading.house_number or fields.house_number,
        street=reading.street or fields.street,
        postcode=reading.postcode or fields.postcode,
        locality=reading.locality or fields.locality,
        region=reading.region or fields.region,
        country=reading.country or fields.country,
    )


def _joined(parts: tuple[tuple[np.ndarray, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of several lookups in order, and each row's lookup's similarity."""
    parts = tuple((rows, similarity) for rows, similarity in parts if len(rows))
    if len(parts) <= 1:  # most lookups find one kind of match or none: nothing to join
        rows, similarity = parts[0] if parts else (np.zeros(0, np.int64), 1.0)
        index = np.array(rows, np.int64)
        return index, np.full(len(index), similarity)
    return (
        np.concatenate([np.asarray(i, np.int64) for i, _ in parts]),
        np.concatenate([np.full(len(i), similarity) for i, similarity in parts]),
    )


def _bound(reading: ParsedAddress) -> float:
    """The highest score any candidate of ``reading`` can reach (before the bias lowers it)."""
    if reading.name_only:
        return PLACE_CEILING * _place_factor(reading)
    return 1.0 if reading.street else PLACE_CEILING


def _place_factor(reading: ParsedAddress) -> float:
    """A POI found by part of the text ranks below one found by all of it."""
    return (0.8 if reading.house_number else 1.0) * (0.97 if reading.locality else 1.0)


def _interpolate(street: Street, value: int, local: LocalIndex) -> tuple[float, float] | None:
    """A point between the nearest lower and higher known numbers, same side first."""
    numbers, rows = street.sorted_numbers, street.sorted_rows
    if len(numbers) < 2:
        return None
    bounds = _neighbours(street.number_list, value)
    if bounds is None:
        return None
    low, high = bounds
    fraction = (value - numbers[low]) / (numbers[high] - numbers[low])
    addresses = local.addresses
    a = (addresses.lon[rows[low]], addresses.lat[rows[low]])
    b = (addresses.lon[rows[high]], addresses.lat[rows[high]])
    lon, lat = a[0] + fraction * (b[0] - a[0]), a[1] + fraction * (b[1] - a[1])
    if street.line is not None:
        line = street.line
        snapped = shapely.line_interpolate_point(
            line, shapely.line_locate_point(line, shapely.Point(lon, lat))
        )
        x, y = float(shapely.get_x(snapped)), float(shapely.get_y(snapped))
        if distance_km(lon, lat, x, y) < 0.05:
            lon, lat = x, y
    return float(lon), float(lat)


def _neighbours(numbers: list[int], value: int) -> tuple[int, int] | None:
    """Positions of the nearest lower and higher numbers around ``value``, same side first."""
    split = bisect.bisect_left(numbers, value)
    end = bisect.bisect_right(numbers, value)
    if split == 0 or end == len(numbers):
        return None  # nothing on one side: no number to interpolate from
    odd = value % 2
    low = next((i for i in range(split - 1, -1, -1) if numbers[i] % 2 == odd), None)
    high = next((i for i in range(end, len(numbers)) if numbers[i] % 2 == odd), None)
    if low is None or high is None:
        return split - 1, end
    return low, high


class _Winners:
    """What scoring best bound first keeps: the candidates made by position, each answer's
    best (-score, position) and the ``limit``-th best of those, past which nothing can win."""

    def __init__(self, judge: Judge, floor: float, limit: int) -> None:
        self.judge = judge
        self.floor = floor
        self.limit = limit
        self.scored: dict[int, Candidate] = {}
        self.kept: dict[Key, tuple[float, int]] = {}
        self.last: tuple[float, int] | None = None

    def done(self, bound: float, position: int) -> bool:
        """Whether scoring ends at a street of this bound, the best of those left."""
        if bound <= self.floor or len(self.scored) == MAX_SCORED:
            return True
        return self.last is not None and (-bound, position) > self.last

    def score(self, position: int, candidate: Candidate) -> None:
        self.scored[position] = candidate
        score = self.judge.score(candidate)
        if score is not None:
            key = _key(candidate)  # one answer may come twice, as in ``search``
            self.kept[key] = min(self.kept.get(key, (-score, position)), (-score, position))
            if len(self.kept) >= self.limit:
                kept = self.kept.values()
                self.last = min(kept) if self.limit == 1 else sorted(kept)[self.limit - 1]

    def found(self) -> list[Candidate]:
        """The candidates made, in position order, so that of equal answers the first wins."""
        return [self.scored[position] for position in sorted(self.scored)]


def _best_first(
    bounds: np.ndarray,
    make: Callable[[int], Candidate],
    judge: Judge,
    floor: float,
    limit: int,
) -> list[Candidate]:
    """``make(position)`` for each position whose bound may still beat ``floor`` and the
    ``limit`` best judged so far, best bound first, MAX_SCORED at most; returned in position
    order, so that of equal answers the first wins, as if all had been scored."""
    order = _best_bounds(bounds, MAX_SCORED + 1)
    winners = _Winners(judge, floor, limit)
    for position, bound in zip(order.tolist(), bounds[order].tolist(), strict=True):
        if winners.done(bound, position):
            break
        winners.score(position, make(position))
    return winners.found()


def _nearest_first(
    found: StreetSet, reading: ParsedAddress, make: Callable[[int], Candidate], winners: _Winners
) -> list[Candidate] | None:
    """What ``_best_first`` makes of ``street_bounds``, working out the bounds one street at
    a time in the order of what each could reach at most (``street_reach``: in the town
    named, in the country, nearest to ``at`` first), only until the streets left cannot
    change what is scored; None where that takes more than NEAREST_FIRST streets."""
    judge = winners.judge
    ceilings = street_ceilings(found, reading, judge)
    if street_most(found, ceilings) <= winners.floor:
        return []  # no street's bound beats the answer in hand: none is scored
    order, reach = street_reach(found, reading, judge, ceilings, NEAREST_FIRST + 1)
    waiting: list[tuple[float, int]] = []  # (-bound, position) worked out, not yet scored
    visited = 0
    while True:
        if visited < len(order):
            # nothing left unvisited comes before (-reach, position) of the next to visit
            rest = (-reach[visited], order[visited])
            if not waiting or rest <= waiting[0]:
                if winners.done(reach[visited], order[visited]) and (
                    not waiting or winners.done(-waiting[0][0], waiting[0][1])
                ):
                    break
                if visited == NEAREST_FIRST:
                    return None
                position = order[visited]
                heapq.heappush(waiting, (-street_bound(found, position, reading, judge), position))
                visited += 1
                continue
        if not waiting:
            break
        bound, position = heapq.heappop(waiting)
        if winners.done(-bound, position):
            break
        winners.score(position, make(position))
    return winners.found()


def _best_bounds(bounds: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` highest bounds (and any equal to the last), highest first,
    equal ones in position order."""
    return highest(bounds, count)


Key = tuple[str | None, str, float, float]


def _key(candidate: Candidate) -> Key:
    """What makes two candidates one answer."""
    return (candidate.ref_id, candidate.match_level, candidate.lon, candidate.lat)


def _area(area: Area, score: float) -> Candidate:
    level = area.level
    return Candidate(
        lon=area.lon,
        lat=area.lat,
        label=area.name,
        match_level=level,
        score=score,
        ref_id=area.ref_id,
        city=area.name if level == "locality" else None,
        state=area.state if level != "country" else None,
        country=area.country,
    )


def _label(
    street: str, number: str | None, postcode: str | None, city: str | None, country: str | None
) -> str:
    if number:
        line = f"{number} {street}" if country in NUMBER_FIRST else f"{street} {number}"
    else:
        line = street
    place = f"{postcode} {city}" if postcode and city else postcode or city or ""
    return f"{line}, {place}" if line and place else line or place


def parse_at(value: str) -> tuple[float, float]:
    """``"lat,lon"`` -> (lat, lon); ``ValueError`` naming the problem otherwise."""
    parts = value.split(",")
    if len(parts) != 2:
        raise ValueError(f"at must be 'lat,lon', got {value!r}")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"at must be two numbers 'lat,lon', got {value!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not (math.isfinite(lat + lon)):
        raise ValueError(f"at is outside lat -90..90 / lon -180..180: {value!r}")
    return lat, lon
