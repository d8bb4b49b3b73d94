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
from collections.abc import Callable
from dataclasses import dataclass, replace

from geobatch.engines.geocode.gazetteer import GazetteerIndex
from geobatch.engines.geocode.index import LocalIndex
from geobatch.engines.geocode.normalize import (
    expand,
    expand_text,
    fold,
    house_number_key,
    is_house_number,
    join_number_parts,
    postcode_key,
)

MAX_NAME_TOKENS = 4
_POSTCODE_LIKE = re.compile(r"^(\d{4,5}|[a-z]{1,2}\d{3,4})$")


@dataclass(frozen=True, kw_only=True)
class ParsedAddress:
    """Folded address parts (``street`` and ``locality`` as ``street_key`` text)."""

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


@dataclass(frozen=True)
class Vocabulary:
    """What the parser may call a locality, region, country or postcode."""

    local: LocalIndex
    gazetteer: GazetteerIndex | None

    def country(self, key: str) -> str | None:
        return self.gazetteer.country(key) if self.gazetteer is not None else None

    def is_region(self, key: str) -> bool:
        return bool(self.gazetteer and self.gazetteer.is_region(key)) or any(
            area.level == "region" for area in self.local.localities.get(key, ())
        )

    def is_locality(self, key: str) -> bool:
        return key in self.local.localities or bool(
            self.gazetteer and self.gazetteer.is_locality(key)
        )

    def is_postcode(self, token: str) -> bool:
        return postcode_key(token) in self.local.postcodes


def _take_tail(tokens: list[str], test: Callable[[str], object]) -> tuple[str, int] | None:
    """The longest run of final tokens (leaving at least one) that passes ``test``."""
    for size in range(min(MAX_NAME_TOKENS, len(tokens) - 1), 0, -1):
        key = " ".join(tokens[-size:])
        if test(key):
            return key, size
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
    segments = [part.split() for part in join_number_parts(fold(text)).split(",")]
    segments = [segment for segment in segments if segment]
    if not segments:
        return []
    whole = " ".join(segments[-1])
    if len(segments) > 1 and vocabulary.country(whole) and vocabulary.is_region(whole):
        # "Springfield, IL": Illinois or Israel; both readings compete
        return _parse(segments, vocabulary, region_first=True) + _parse(segments, vocabulary)
    return _parse(segments, vocabulary)


def _parse(
    segments: list[list[str]],
    vocabulary: Vocabulary,
    *,
    region_first: bool = False,
    tail_region: bool = True,
) -> list[ParsedAddress]:
    segments = [list(segment) for segment in segments]
    country = region = postcode = None
    last = segments[-1]
    whole = " ".join(last)
    if region_first:
        region = whole
        segments.pop()
    elif len(segments) > 1 and vocabulary.country(whole):
        country = vocabulary.country(whole)
        segments.pop()
    elif len(segments) == 1 and vocabulary.country(whole):
        return [ParsedAddress(country=vocabulary.country(whole))]
    elif (
        len(segments) == 1
        and len(whole) > 2
        and vocabulary.is_region(whole)
        and not vocabulary.is_locality(expand_text(whole))  # "Paris": the city and county
    ):
        return [ParsedAddress(region=whole), ParsedAddress(street=" ".join(expand(last)))]
    tokens = [token for segment in segments for token in segment]
    bounds = _segment_ends(segments)
    extra: list[str] = []
    if (
        country is None
        and not vocabulary.is_locality(expand_text(whole))  # "Little Italy" is no country
        and not vocabulary.is_region(whole)  # nor is "Rhode Island" in Iceland ("Island")
        and (found := _take_tail(tokens, vocabulary.country))
    ):
        country = vocabulary.country(found[0])
        extra = tokens[-found[1] :]
        tokens = tokens[: -found[1]]
    plain: list[ParsedAddress] = []
    if (
        region is None
        and tail_region
        and (found := _take_tail(tokens, vocabulary.is_region))
        and (len(found[0]) == 2 or len(tokens) - found[1] in bounds)
    ):
        region = found[0]
        if len(region) > 2 and vocabulary.is_locality(expand_text(region)):
            # "Gràcia, Barcelona": a province or a city; both readings compete
            plain = _parse(segments, vocabulary, tail_region=False)
        tokens = tokens[: -found[1]]
    tokens, postcode = _take_postcode(tokens, vocabulary)
    base = ParsedAddress(postcode=postcode, region=region, country=country)
    readings: list[ParsedAddress] = []
    remainder = " ".join(tokens)
    if region is None and country is not None and vocabulary.is_region(remainder):
        readings.append(replace(base, region=remainder))  # "Maharashtra, India"
    locality = None
    if len(segments) > 1 and len(tokens) > len(segments[0]):
        head = " ".join(expand(segments[0]))
        rest = tokens[len(segments[0]) :]
        if vocabulary.is_locality(head) and not any(is_house_number(t) for t in segments[0]):
            locality = head
            readings.extend(_with_locality(base, rest, head))
            within = expand_text(" ".join(rest))
            if region is None and vocabulary.is_locality(within):  # "Gràcia, Barcelona"
                readings.append(replace(base, locality=head, region=within))
    found = _take_tail(tokens, lambda key: vocabulary.is_locality(expand_text(key)))
    if found:
        locality = expand_text(found[0])
        readings.extend(_with_locality(base, tokens[: -found[1]], locality))
    if len(segments) > 2:
        readings.extend(_segment_readings(segments, base, locality, vocabulary))
    street, number = _street_and_number(tokens)
    if street is None and number is None and not readings:
        return [base] if not base.is_empty else []
    if len(tokens) <= MAX_NAME_TOKENS and number is None and vocabulary.is_locality(street or ""):
        readings.append(replace(base, locality=street))
    readings.append(replace(base, street=street, house_number=number))
    if extra:  # a name ending in a country's name: "Pikku Nepal"
        name = " ".join(expand(tokens + extra))
        readings.append(replace(base, street=name, country=None, name_only=True))
    elif number is not None:  # a name with a number in it: "Helsinki 1992"
        readings.append(replace(base, street=" ".join(expand(tokens)), name_only=True))
    return list(dict.fromkeys(readings + plain))


def _with_locality(base: ParsedAddress, tokens: list[str], locality: str) -> list[ParsedAddress]:
    """The rest as street and number, and when it holds a number, also as a whole name."""
    street, number = _street_and_number(tokens)
    reading = replace(base, street=street, house_number=number, locality=locality)
    if number is None:
        return [reading]
    name = expand_text(" ".join(tokens))  # "Fire Station 30, Highlandtown"
    return [reading, replace(base, street=name, locality=locality, name_only=True)]


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
        key = " ".join(expand(words))
        if not words or key == locality or vocabulary.country(key):
            continue
        if locality and key.endswith(" " + locality):
            words = words[:-size]
        street, number = _street_and_number(words)
        if street:
            readings.append(replace(base, street=street, house_number=number, locality=locality))
    return readings


def _take_postcode(tokens: list[str], vocabulary: Vocabulary) -> tuple[list[str], str | None]:
    """A known postcode, else a postcode-shaped number when another number is the house's."""
    known = [i for i, token in enumerate(tokens) if vocabulary.is_postcode(token)]
    numbers = [i for i, token in enumerate(tokens) if is_house_number(token)]
    shaped = [i for i in numbers if _POSTCODE_LIKE.match(tokens[i])]
    pick = known[-1] if known else (shaped[-1] if shaped and len(numbers) > 1 else None)
    if pick is None:
        return tokens, None
    return tokens[:pick] + tokens[pick + 1 :], postcode_key(tokens[pick])


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
        locality=" ".join(expand(fold(locality).split())) if locality else None,
        region=fold(state) if state and state.strip() else None,
        country=country_code,
    )
