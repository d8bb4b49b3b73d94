"""Free text to address parts, by classifying tokens against the release's own vocabulary.

No country-specific grammar: a token is a postcode when the release knows it (or it looks
like one next to another number), a run of tokens is a locality, region or country when the
release or the gazetteer names one, a number-like token at either end of what is left is the
house number, and the rest is the street or place name. Where a run could be a locality or
part of the street ("Avenue de Monte-Carlo"), both readings are returned and the matcher
keeps the one that finds the better candidate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import pyarrow.compute as pc

from geobatch.engines.geocode.cache import Memo
from geobatch.engines.geocode.gazetteer import GazetteerIndex
from geobatch.engines.geocode.index import LocalIndex
from geobatch.engines.geocode.normalize import (
    ABBREVIATIONS,
    SAINTS,
    STREET_TYPES,
    expand_text,
    fold,
    house_number_key,
    is_house_number,
    join_number_parts,
    plain_umlauts,
    postcode_key,
)
from geobatch.reference.indexes.keys import KeyIndex, key_hash

MAX_NAME_TOKENS = 4
_STREET_WORDS = STREET_TYPES | {"street"}
_DIGIT = re.compile(r"\d")
_ASCII_DIGIT = re.compile(r"[0-9]")
_POSTCODE_LIKE = re.compile(r"^(\d{4,5}|[a-z]{1,2}\d{3,4})$")


class ParsedAddress(NamedTuple):
    """Folded address parts (``street`` and ``locality`` as ``street_key`` text).

    A named tuple: a query makes several readings, and tuples are the cheapest to build,
    compare and deduplicate.
    """

    house_number: str | None = None
    street: str | None = None
    postcode: str | None = None
    locality: str | None = None
    region: str | None = None
    country: str | None = None
    """ISO 3166-1 alpha-2."""
    name_only: bool = False
    """``street`` is the whole text, to be looked up as a place or POI name only."""

    @property
    def is_empty(self) -> bool:
        return not (self.street or self.locality or self.postcode or self.region or self.country)


class _Word(NamedTuple):
    """What one key names in the vocabulary."""

    locality: bool = False
    region: bool = False
    country: str | None = None


_NOTHING = _Word()


@dataclass(frozen=True)
class Vocabulary:
    """What the parser may call a locality, region, country or postcode.

    The parser asks a few dozen keys per query, most of them runs of street words that name
    nothing. Each key is looked up once in all the indexes (one hash rules a key out of
    every index it is absent from; a key with a digit, which few names have, needs no hash)
    and remembered with everything it names.
    """

    local: LocalIndex
    gazetteer: GazetteerIndex | None
    _words: Memo[str, _Word] = field(default_factory=Memo, init=False, compare=False, repr=False)
    _postcodes: Memo[str, bool] = field(default_factory=Memo, init=False, compare=False, repr=False)

    def forget(self) -> None:
        """Drop the remembered keys (to measure queries as new)."""
        self._words.clear()
        self._postcodes.clear()

    def _word(self, key: str) -> _Word:
        found = self._words.get(key)
        if found is None:
            found = self._words.keep(key, self._look_up(key))
        return found

    def _look_up(self, key: str) -> _Word:
        if _ASCII_DIGIT.search(key) is not None:
            if key not in self._numbered:
                return _NOTHING  # a run with a house number or a postcode in it, mostly
        else:
            wanted = key_hash(key)
            if not any(index.may_hold(key, wanted) for index in self._indexes):
                return _NOTHING
        gazetteer = self.gazetteer
        return _Word(
            locality=key in self.local.localities or bool(gazetteer and gazetteer.is_locality(key)),
            region=bool(gazetteer and gazetteer.is_region(key)) or self.local.is_region(key),
            country=gazetteer.country(key) if gazetteer is not None else None,
        )

    @cached_property
    def _indexes(self) -> tuple[KeyIndex, ...]:
        towns = self.local.localities.rows.index
        if self.gazetteer is None:
            return (towns,)
        return (towns, *(part.keys for part in self.gazetteer.parts))

    @cached_property
    def _numbered(self) -> frozenset[str]:
        """The keys with a digit in them, of every index: few ("Sector 4"), so that the many
        keys a query's house number or postcode is part of are ruled out without a hash."""
        return frozenset(
            key
            for index in self._indexes
            for key in index.keys.filter(pc.match_substring_regex(index.keys, "[0-9]")).to_pylist()
        )

    @property
    def numbered_keys(self) -> frozenset[str]:
        """The keys with a digit in them: any other key with a digit names nothing."""
        return self._numbered

    def country(self, key: str) -> str | None:
        return self._word(key).country

    def trailing_country(self, key: str) -> str | None:
        """``country`` for words at the end of an address line, where "St", "Pl", "Bd" and
        "Street" are street words, not São Tomé, Poland or Bangladesh (a code in a segment of
        its own, "Berlin, DE", still names the country)."""
        if key in _STREET_WORDS or key in ABBREVIATIONS or key in SAINTS:
            return None
        return self._word(key).country

    def is_region(self, key: str) -> bool:
        return self._word(key).region

    def is_locality(self, key: str) -> bool:
        return self._word(key).locality

    def locality(self, key: str) -> str | None:
        """The locality ``key`` names, also when it writes an umlaut out ("Toeoeloe")."""
        if self._word(key).locality:
            return key
        plain = plain_umlauts(key)
        return plain if plain != key and self._word(plain).locality else None

    def is_postcode(self, token: str) -> bool:
        found = self._postcodes.get(token)
        if found is None:
            found = self._postcodes.keep(token, postcode_key(token) in self.local.postcodes)
        return found


def _take_tail(
    tokens: list[str],
    test: Callable[[str], str | bool | None],
    key_of: Callable[[str], str] = str,
) -> tuple[str, int] | None:
    """The longest run of final tokens (leaving at least one) that passes ``test``.

    Returns what ``test`` answered (when a string, else the run's key) and the run's length.
    """
    for size in range(min(MAX_NAME_TOKENS, len(tokens) - 1), 0, -1):
        key = key_of(" ".join(tokens[-size:]))
        answer = test(key)
        if answer:
            return (answer if isinstance(answer, str) else key), size
    return None


def _street_and_number(tokens: list[str]) -> tuple[str | None, str | None]:
    """Split the house number (first or last number-like token) from the street words."""
    number = None
    if tokens and is_house_number(tokens[-1]) and len(tokens) > 1:
        number, tokens = tokens[-1], tokens[:-1]
    elif tokens and is_house_number(tokens[0]) and len(tokens) > 1:
        number, tokens = tokens[0], tokens[1:]
    elif len(tokens) > 2 and is_house_number(tokens[-2]) and len(tokens[-1]) == 1:
        number, tokens = tokens[-2] + tokens[-1], tokens[:-2]
    street = expand_text(" ".join(tokens)) or None
    return street, house_number_key(number) if number else None


def parse(text: str, vocabulary: Vocabulary) -> list[ParsedAddress]:
    """Readings of ``text``, the most specific first (an empty list for blank text)."""
    return list(dict.fromkeys(readings(text, vocabulary)))


def readings(text: str, vocabulary: Vocabulary) -> Iterator[ParsedAddress]:
    """``parse`` lazily, repeats included: the matcher stops at the first certain answer."""
    return segment_readings(text_segments(text), vocabulary)


def text_segments(text: str) -> list[list[str]]:
    """The tokens of each comma-separated part of the folded text (empty parts left out):
    all that ``segment_readings`` reads of it."""
    segments = [part.split() for part in join_number_parts(fold(text)).split(",")]
    return [segment for segment in segments if segment]


def segment_readings(segments: list[list[str]], vocabulary: Vocabulary) -> Iterator[ParsedAddress]:
    """``readings`` of text already cut into ``text_segments``."""
    if not segments:
        return
    whole = " ".join(segments[-1])
    code = segments[-1][-1]
    if (len(segments) > 1 and vocabulary.country(whole) and vocabulary.is_region(whole)) or (
        len(segments[-1]) > 1
        and len(code) == 2
        and vocabulary.country(code)
        and vocabulary.is_region(code)
        and _ends_in_locality(segments[-1][:-1], vocabulary)
    ):
        # "Springfield, IL", "Springfield IL": Illinois or Israel; both readings compete
        yield from _parse(segments, vocabulary, region_first=True)
    yield from _parse(segments, vocabulary)


def _parse(
    segments: list[list[str]],
    vocabulary: Vocabulary,
    *,
    region_first: bool = False,
    tail_region: bool = True,
    tail_country: bool = True,
) -> Iterator[ParsedAddress]:
    given = segments
    segments = [list(segment) for segment in segments]
    country = region = postcode = None
    last = segments[-1]
    whole = " ".join(last)
    if region_first and len(segments) > 1 and vocabulary.is_region(whole):
        region = whole
        segments.pop()
    elif region_first:
        region = last.pop()
    elif len(segments) > 1 and vocabulary.country(whole):
        country = vocabulary.country(whole)
        segments.pop()
    elif len(segments) == 1 and (code := _country_named(last, vocabulary)):
        yield ParsedAddress(country=code)
        return
    elif (
        len(segments) == 1
        and len(whole) > 2
        and vocabulary.is_region(whole)
        and not vocabulary.is_locality(expand_text(whole))  # "Paris": the city and county
    ):
        yield ParsedAddress(region=whole)
        yield ParsedAddress(street=expand_text(" ".join(last)))
        return
    tokens = [token for segment in segments for token in segment]
    bounds = _segment_ends(segments)
    extra: list[str] = []
    if (
        country is None
        and tail_country
        and not vocabulary.is_locality(expand_text(whole))  # "Little Italy" is no country
        and not vocabulary.is_region(whole)  # nor is "Rhode Island" in Iceland ("Island")
        and (found := _take_tail(tokens, vocabulary.trailing_country))
    ):
        country = found[0]
        extra = tokens[-found[1] :]
        tokens = tokens[: -found[1]]
    elif country is None and tail_country and (coded := _coded_town(tokens, vocabulary)):
        yield coded  # "Reinosa esp", "Berlin de": a country code that is also a street word
    named = tokens  # before a region is taken off: a street may end in "de" or "co"
    plain: list[ParsedAddress] = []
    if (
        region is None
        and tail_region
        and (found := _take_tail(tokens, vocabulary.is_region))
        and (
            len(tokens) - found[1] in bounds
            # a two-letter code without a comma only after a town: "Springfield IL", not
            # "Avenue ... de" or "Pizza&co"
            or (len(found[0]) == 2 and _ends_in_locality(tokens[: -found[1]], vocabulary))
        )
    ):
        region = found[0]
        if len(region) > 2 and vocabulary.is_locality(expand_text(region)):
            # "Gràcia, Barcelona": a province or a city; both readings compete
            plain = list(_parse(segments, vocabulary, tail_region=False))
        tokens = tokens[: -found[1]]
    segments, postcode = _take_postcode(_split(tokens, bounds), vocabulary)
    tokens = [token for segment in segments for token in segment]
    base = ParsedAddress(postcode=postcode, region=region, country=country)
    remainder = " ".join(tokens)
    if region is None and country is not None and vocabulary.is_region(remainder):
        yield base._replace(region=remainder)  # "Maharashtra, India"
    if extra:  # a name ending in a country's name: "Pikku Nepal", "Port Hercule de Monaco"
        yield base._replace(
            street=expand_text(" ".join(tokens + extra)), country=None, name_only=True
        )
    locality = None
    found_any = False
    last_segment = False
    if len(segments) > 1:  # a whole segment that names a locality: "00100 Helsinki, Mikonkatu 18"
        for position, segment in enumerate(segments):
            head = vocabulary.locality(expand_text(" ".join(segment)))
            if head and not any(is_house_number(t) for t in segment):
                others = segments[:position] + segments[position + 1 :]
                rest = [t for other in others for t in other]
                locality, found_any = head, True
                last_segment = position == len(segments) - 1
                yield from _with_locality(base, rest, head)
                within = expand_text(" ".join(rest))
                if position == 0 and region is None and vocabulary.is_locality(within):
                    yield base._replace(locality=head, region=within)  # "Gràcia, Barcelona"
                break
    found = None if last_segment else _take_tail(tokens, vocabulary.locality, expand_text)
    if found:
        locality, found_any = found[0], True
        yield from _with_locality(base, tokens[: -found[1]], locality)
    elif not last_segment and (found := _take_head(tokens, vocabulary)) is not None:
        locality, found_any = found[0], True  # "Helsinki Mikonkatu 18"
        yield from _with_locality(base, tokens[found[1] :], locality)
    if len(segments) > 2:
        for reading in _segment_readings(segments, base, locality, vocabulary):
            found_any = True
            yield reading
    street, number = _street_and_number(tokens)
    if street is None and number is None and not found_any and not extra:
        if not base.is_empty:
            yield base
        return
    if len(tokens) <= MAX_NAME_TOKENS and number is None and vocabulary.is_locality(street or ""):
        yield base._replace(locality=street)
    yield base._replace(street=street, house_number=number)
    if extra and not vocabulary.is_locality(expand_text(" ".join(extra))):
        # the country's name may end the street: "Monaco, 54 Boulevard d'Italie"
        yield from _parse(given, vocabulary, region_first=region_first, tail_country=False)
    elif extra:  # a town's name too ("Monaco"): read as the town above
        street, number = _street_and_number(named + extra)
        yield base._replace(street=street, house_number=number, region=None, country=None)
    elif number is not None:  # a name with a number in it: "Helsinki 1992"
        yield base._replace(street=expand_text(" ".join(tokens)), name_only=True)
    yield from plain


def _country_named(tokens: list[str], vocabulary: Vocabulary) -> str | None:
    """The country a whole line names. A name longer than any local place's may have "St."
    for Saint ("St. Vincent and the Grenadines"); a short one ("St-Martin") may be a POI."""
    whole = " ".join(tokens)
    code = vocabulary.country(whole)
    if code is None and len(tokens) > MAX_NAME_TOKENS:
        code = vocabulary.country(expand_text(whole))
    return code


def _coded_town(tokens: list[str], vocabulary: Vocabulary) -> ParsedAddress | None:
    """A town followed by a country's code that ``trailing_country`` leaves to streets ("esp"
    for esplanade, "de" for "of") or to US states ("Berlin de"), read as the country where
    nothing in the text is a number; a town of that name in the state still competes."""
    code = tokens[-1]
    if len(tokens) < 2 or len(code) not in (2, 3) or any(c.isdigit() for t in tokens for c in t):
        return None
    country = vocabulary.country(code)
    town = vocabulary.locality(expand_text(" ".join(tokens[:-1])))
    return ParsedAddress(locality=town, country=country) if country and town else None


def _ends_in_locality(tokens: list[str], vocabulary: Vocabulary) -> bool:
    return any(
        vocabulary.locality(expand_text(" ".join(tokens[-size:])))
        for size in range(1, min(MAX_NAME_TOKENS, len(tokens)) + 1)
    )


def _take_head(tokens: list[str], vocabulary: Vocabulary) -> tuple[str, int] | None:
    """A locality in front of a street and house number written without a comma."""
    if len(tokens) < 3 or not any(is_house_number(t) for t in tokens[-2:]):
        return None
    for size in range(min(MAX_NAME_TOKENS, len(tokens) - 2), 0, -1):
        key = vocabulary.locality(expand_text(" ".join(tokens[:size])))
        if key and not is_house_number(tokens[size]):
            return key, size
    return None


def _split(tokens: list[str], bounds: set[int]) -> list[list[str]]:
    """``tokens`` cut again into segments at the comma positions in ``bounds``."""
    segments: list[list[str]] = [[]]
    for position, token in enumerate(tokens):
        if position in bounds and segments[-1]:
            segments.append([])
        segments[-1].append(token)
    return [segment for segment in segments if segment]


def _with_locality(base: ParsedAddress, tokens: list[str], locality: str) -> list[ParsedAddress]:
    """The rest as street and number, and when it holds a number, also as a whole name."""
    street, number = _street_and_number(tokens)
    reading = base._replace(street=street, house_number=number, locality=locality)
    if number is None:
        return [reading]
    name = expand_text(" ".join(tokens))  # "Fire Station 30, Highlandtown"
    return [reading, base._replace(street=name, locality=locality, name_only=True)]


def _segment_readings(
    segments: list[list[str]],
    base: ParsedAddress,
    locality: str | None,
    vocabulary: Vocabulary,
) -> list[ParsedAddress]:
    """Each comma-separated segment on its own as the street: "Vilhonkatu 6, Floor 1, ..."."""
    readings = []
    size = len(locality.split()) if locality else 0
    for segment in segments:
        words = [t for t in segment if base.postcode is None or postcode_key(t) != base.postcode]
        key = expand_text(" ".join(words))
        if not words or key == locality or vocabulary.country(key):
            continue
        if locality and key.endswith(" " + locality):
            words = words[:-size]
        street, number = _street_and_number(words)
        if street:
            readings.append(base._replace(street=street, house_number=number, locality=locality))
    return readings


def _take_postcode(
    segments: list[list[str]], vocabulary: Vocabulary
) -> tuple[list[list[str]], str | None]:
    """A known postcode, else a postcode-shaped number when another number is the house's."""
    # every postcode and house number has a digit: only those tokens are looked at
    places = [
        (i, j, token)
        for i, segment in enumerate(segments)
        for j, token in enumerate(segment)
        if _DIGIT.search(token)
    ]
    known = [place for place in places if vocabulary.is_postcode(place[2])]
    numbers = [place for place in places if is_house_number(place[2])]
    shaped = [place for place in numbers if _POSTCODE_LIKE.match(place[2])]
    pick = known[-1] if known else (shaped[-1] if shaped and len(numbers) > 1 else None)
    if pick is None:
        return segments, None
    i, j, token = pick
    rest = [s if k != i else s[:j] + s[j + 1 :] for k, s in enumerate(segments)]
    return [segment for segment in rest if segment], postcode_key(token)


def _segment_ends(segments: list[list[str]]) -> set[int]:
    """Token positions where a comma separated two segments."""
    ends, position = set(), 0
    for segment in segments:
        position += len(segment)
        ends.add(position)
    return ends


def parse_fields(
    vocabulary: Vocabulary,
    *,
    street: str | None = None,
    house_number: str | None = None,
    postcode: str | None = None,
    city: str | None = None,
    county: str | None = None,
    state: str | None = None,
    country: str | None = None,
) -> ParsedAddress:
    """Structured columns to the same parts; a house number inside ``street`` is split off."""
    street_text, number = None, None
    if street and street.strip():
        street_text, number = _street_and_number(join_number_parts(fold(street)).split())
    if house_number and house_number.strip():
        number = house_number_key(house_number)
    locality = city if city and city.strip() else county
    country_code = None
    if country and country.strip():
        country_code = vocabulary.country(fold(country)) or (
            country.strip().upper() if len(country.strip()) == 2 else None
        )
    return ParsedAddress(
        house_number=number,
        street=street_text,
        postcode=postcode_key(postcode) if postcode and postcode.strip() else None,
        locality=expand_text(fold(locality)) if locality else None,
        region=fold(state) if state and state.strip() else None,
        country=country_code,
    )
