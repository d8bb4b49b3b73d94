"""Readings shared by queries that differ only in one number: most of a chunk's queries name a
street, a postcode and a town asked for before, with another house number.

The parser treats a number token of up to four digits alike whatever its digits, unless the
release names something with it or knows it as a postcode: it is a house number (or a
postcode-shaped one), and the readings hold it verbatim. Such a query is parsed once with the
number written as a placeholder (its length in a digit found nowhere else in the text), and
each query of that shape gets the placeholder's readings with its own number put back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from geobatch.engines.geocode.cache import Memo
from geobatch.engines.geocode.normalize import (
    ABBREVIATIONS,
    SAINTS,
    SYNONYMS,
    plain_umlauts,
    postcode_key,
)
from geobatch.engines.geocode.parse import (
    ParsedAddress,
    Vocabulary,
    segment_readings,
    text_segments,
)

MAX_DIGITS = 4
"""Longer numbers are postcodes or names more often than house numbers: parsed each alone."""
_MARKS = "123456789"
"""Digits a placeholder is written in: not 0, which ``int`` would drop from its front."""
_HOLDERS = tuple(
    ParsedAddress._fields.index(name) for name in ("house_number", "street", "postcode")
)
"""The reading fields a number can end up in; it is no locality, region or country."""
_OTHERS = tuple(
    position
    for position, name in enumerate(ParsedAddress._fields)
    if position not in _HOLDERS and name != "name_only"
)
_HOLE = "#"
"""Stands for the number in a shape's key: folding leaves no "#" in a text."""


@dataclass(frozen=True)
class _Template:
    """What a shape's queries share: the placeholder's readings in order, and what tells
    whether a number fits in."""

    placeholder: str
    readings: list[tuple[ParsedAddress, tuple[int, ...]]]
    """Each reading with the positions of its fields that hold the placeholder."""
    spellings: frozenset[str]
    """Every word a key of the other tokens may hold (``_spellings``)."""
    postcodes: frozenset[str]
    """The other tokens' ``postcode_key``s: a number equal to one compares equal to it."""


class ReadingTemplates:
    """The readings of each shape of query, remembered: ``readings`` as ``parse.readings``."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._templates: Memo[str, _Template | None] = Memo()

    def clear(self) -> None:
        """Forget the remembered shapes (to measure queries as new)."""
        self._templates.clear()

    def readings(self, text: str) -> Iterator[ParsedAddress]:
        """The readings of ``text`` in ``parse.readings`` order, repeats included."""
        segments = text_segments(text)
        number = _number(segments)
        if number is None:
            return segment_readings(segments, self.vocabulary)
        hole = _HOLE * len(number)
        key = ",".join(
            [
                " ".join([hole if token == number else token for token in segment])
                for segment in segments
            ]
        )
        if key in self._templates:
            template = self._templates[key]
        else:
            template = self._templates.keep(key, self._template(segments, number))
        if template is None or not self._fits(number, template):
            return segment_readings(segments, self.vocabulary)
        return _filled(template, number)

    def _fits(self, number: str, template: _Template) -> bool:
        """Whether the parser reads ``number`` as it reads the template's placeholder."""
        return not (
            number in template.postcodes  # "12-34" is postcode "1234"
            or self.vocabulary.is_postcode(number)
            or self._names(number, template.spellings)
        )

    def _template(self, segments: list[list[str]], number: str) -> _Template | None:
        """The readings of the query's shape, or None where it has no placeholder or where one
        ends up where no number can be."""
        others = [token for segment in segments for token in segment if token != number]
        if not all(token.isascii() for token in others):
            return None  # a digit of another script may become one of the placeholder's
        used = set("".join(others))
        spellings = _spellings(others)
        postcodes = frozenset(
            postcode_key(token) for token in others if any(char.isdigit() for char in token)
        )
        for mark in _MARKS:
            if mark in used:
                continue
            placeholder = mark * len(number)
            template = _Template(placeholder, [], spellings, postcodes)
            if self._fits(placeholder, template):
                break
        else:
            return None
        written = [
            [placeholder if token == number else token for token in segment] for segment in segments
        ]
        for reading in segment_readings(written, self.vocabulary):
            if any(mark in str(reading[position] or "") for position in _OTHERS):
                return None
            holders = tuple(i for i in _HOLDERS if mark in str(reading[i] or ""))
            template.readings.append((reading, holders))
        return template

    def _names(self, number: str, spellings: frozenset[str]) -> bool:
        """Whether a key with ``number`` in it may be made of it and the other tokens (as
        written or spelled out): only then does the vocabulary name something with it."""
        anchored = self._numbered.get(number)
        if anchored is None:
            return False
        if "" in anchored:
            return True  # the number alone names something ("10", a district of Paris)
        return any(name <= spellings for word in spellings for name in anchored.get(word, ()))

    @cached_property
    def _numbered(self) -> dict[str, dict[str, list[frozenset[str]]]]:
        """Each word of the vocabulary's keys with a digit in them -> the other words of each
        such key, by one of them (or "" for none), so that a query looks at few."""
        found: dict[str, dict[str, list[frozenset[str]]]] = {}
        for key in self.vocabulary.numbered_keys:
            words = key.split()
            for word in set(words):
                rest = frozenset(w for w in words if w != word)
                anchor = min(rest, default="")
                found.setdefault(word, {}).setdefault(anchor, []).append(rest)
        return found


def _number(segments: list[list[str]]) -> str | None:
    """The text's one number of up to MAX_DIGITS digits (none where it has two), without a
    leading zero ("012" is house number "12", not the token)."""
    found = None
    for segment in segments:
        for token in segment:
            if len(token) <= MAX_DIGITS and token.isdigit() and token.isascii():
                if found is not None:
                    return None
                found = token
    if found is None or (len(found) > 1 and found[0] == "0"):
        return None
    return found


def _spellings(tokens: list[str]) -> frozenset[str]:
    """Every word a key of the tokens may hold: each token as written and as ``expand`` may
    spell it out in any position, also with its umlauts written out (``plain_umlauts``)."""
    words = set(tokens)
    for token in tokens:
        word = ABBREVIATIONS.get(token, token)
        words.update((SYNONYMS.get(word, word), token + "asse", SAINTS.get(token, token)))
    words.add("street")
    return frozenset(words | {plain_umlauts(word) for word in words})


def _filled(template: _Template, number: str) -> Iterator[ParsedAddress]:
    """The template's readings with ``number`` in place of the placeholder."""
    placeholder = template.placeholder
    for reading, holders in template.readings:
        if not holders:
            yield reading
            continue
        values: list[object] = list(reading)
        for position in holders:
            values[position] = str(values[position]).replace(placeholder, number)
        yield tuple.__new__(ParsedAddress, values)  # ``_make`` without its call
