"""Text normalisation for matching: one function applied alike to queries and reference names.

Matching compares folded keys (NFKC, lower case, accents and punctuation removed, street types
and directions spelled out in full), while results keep the reference's original spelling for
display. Because both sides go through ``street_key``, an abbreviation only has to map to the
same word the full form does (``Av.`` and ``Avenue`` both become ``avenue``).
"""

from __future__ import annotations

import functools
import re
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc

_LETTER_MAP = {
    "ß": "ss",
    "ø": "o",
    "æ": "ae",
    "œ": "oe",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "\u0131": "i",
}
_LETTERS = str.maketrans(_LETTER_MAP)
_APOSTROPHES = re.compile("[\u2019'`\u00b4]")
_POSSESSIVE = re.compile("(?<=[a-z0-9])[\u2019'`\u00b4]s(?![a-z0-9])")
"""English possessive: "Vaccaro's" folds to "vaccaros", never to "vaccaro s(outh)"."""
_PUNCTUATION = re.compile(r"[^\w\s,/-]|_")
_LOOSE_HYPHEN = re.compile(r"(?<!\d)[-/]|[-/](?!\d)")
_LEADING_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


class _Marks(dict[int, int | None]):
    """A ``str.translate`` table that drops combining marks and keeps every other character,
    filled as characters are met: after the first of each, a text is translated in C."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        if len(self) < 8_192:  # bounded: a text of every script leaves the rest uncached
            self[code] = kept
        return kept


_COMBINING = _Marks()
_NUMBER_SUFFIX = re.compile(r"\b(\d+) (bis|ter|quater|[a-z])\b(?! \d)")
_NUMBER_RANGE = re.compile(r"\b(\d+) ?([-/]) ?(\d+)\b")
_NUMBER_PART = re.compile(r"\d(?: ?[-/] ?\d| (?:bis|ter|quater|[a-z])\b)")
"""What either pattern above needs somewhere: one search rules most texts out ("12, 00100")."""

# Abbreviated compound suffixes, recognised by their trailing dot before folding: Hauptstr.,
# Mannerheimint., Drottningg., Kungsv., Marienpl. (German wins for "str.", as for the full
# word: both sides fold "strasse" and "straße" alike).
_SUFFIX_WORDS = {
    "str": "strasse",
    "k": "katu",
    "t": "tie",
    "g": "gatan",
    "v": "vagen",
    "pl": "platz",
}
_SUFFIXES = re.compile(r"(?<=\w{3})(k|t|g|v|pl)\.|(?<=\w{2})(str)\.", re.IGNORECASE)


def _suffix(match: re.Match[str]) -> str:
    return _SUFFIX_WORDS[(match.group(1) or match.group(2)).lower()] + " "


ABBREVIATIONS: dict[str, str] = {
    # English
    "ave": "avenue", "av": "avenue", "avda": "avenida", "blvd": "boulevard", "bd": "boulevard",
    "bld": "boulevard", "bvd": "boulevard", "boul": "boulevard", "rd": "road", "dr": "drive",
    "ln": "lane", "ct": "court", "pl": "place", "sq": "square", "hwy": "highway",
    "pkwy": "parkway", "ter": "terrace", "cres": "crescent", "cir": "circle", "aly": "alley",
    "expy": "expressway", "fwy": "freeway", "trl": "trail", "pk": "park", "mt": "mount",
    "ft": "fort", "n": "north", "s": "south", "e": "east", "w": "west", "ne": "northeast",
    "nw": "northwest", "se": "southeast", "sw": "southwest",
    # French
    "che": "chemin", "chem": "chemin", "imp": "impasse", "pass": "passage",
    "pte": "porte", "qu": "quai", "rte": "route", "r": "rue", "fg": "faubourg", "esp": "esplanade",
    "ste": "sainte", "mgr": "monseigneur", "gal": "general", "pdt": "president",
    # German
    "str": "strasse", "plz": "platz",
    # Italian
    "v": "via", "vle": "viale", "p": "piazza", "pza": "piazza", "pzza": "piazza",
    "cso": "corso", "lgo": "largo", "vco": "vicolo",
    # Spanish, Catalan, Portuguese
    "c": "carrer", "cl": "calle", "avgda": "avinguda",
    "cra": "carrera", "pso": "paseo", "pg": "passeig",
    "ctra": "carretera", "pca": "praca", "trav": "travessa", "tv": "travessa", "al": "alameda",
    "rod": "rodovia", "estr": "estrada",
    # Dutch
    "gr": "gracht", "kd": "kade", "sngl": "singel", "plnts": "plantsoen",
    # Finnish and Swedish (separate words; compounds are handled by _SUFFIXES)
    "k": "katu", "t": "tie", "g": "gatan", "vag": "vagen", "vg": "vagen",
}  # fmt: skip
"""Folded abbreviation -> the folded full word. One-letter forms only where they are common."""

SYNONYMS: dict[str, str] = {
    "carrer": "calle", "avinguda": "avenue", "avenida": "avenue", "passeig": "paseo",
    "placa": "plaza", "praca": "plaza", "piazza": "plaza",
}  # fmt: skip
"""Street types of one meaning across languages compare equal (``C/`` = Carrer = Calle)."""

SAINTS = {"st": "saint", "sta": "santa", "sto": "santo", "sn": "san", "sa": "santa"}
"""Before a name ("St Paul", "Sta. Maria"); a final "St" is a street."""

_CONTEXT_WORDS = {"e", "n", "s", "w", "c", "v", "p", "r", "k", "t", "g"}
"""One-letter forms expanded only in a street's first or last position, never inside a name."""


@functools.lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """NFKC, lower case, accents and punctuation removed; commas, digit ranges kept."""
    if text.isascii() and text.replace(" ", "").replace(",", "").isalnum():
        return " ".join(text.lower().split())  # what the steps below make of such text
    if "." in text:
        text = _SUFFIXES.sub(_suffix, text)
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKC", text).lower().translate(_LETTERS)
        text = unicodedata.normalize("NFKD", text)
        text = text.translate(_COMBINING)  # without the combining marks
    text = _POSSESSIVE.sub("s", text)
    text = _APOSTROPHES.sub(" ", text)
    text = _PUNCTUATION.sub(" ", text)
    text = _LOOSE_HYPHEN.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def fold_array(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``fold`` over a whole column with Arrow kernels (reference names: 10^5-10^6 of them)."""
    values = pc.fill_null(values, "")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    other = pc.invert(pc.match_substring_regex(values, "^[A-Za-z0-9]+( [A-Za-z0-9]+)*$"))
    lowered = pc.utf8_lower(values)
    if not pc.any(other).as_py():
        return lowered
    return pc.replace_with_mask(lowered, other, _fold_array(pc.filter(values, other)))


def _fold_array(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    text = pc.utf8_normalize(values, "NFKC")
    for short, word in _SUFFIX_WORDS.items():
        size = 2 if short == "str" else 3
        pattern = rf"([\p{{L}}\p{{N}}_]{{{size}}})(?i:{short})\."
        text = pc.replace_substring_regex(text, pattern, rf"\1{word} ")
    text = pc.utf8_lower(text)
    for letter, replacement in _LETTER_MAP.items():
        text = pc.replace_substring(text, letter, replacement)
    text = pc.utf8_normalize(text, "NFKD")
    text = pc.replace_substring_regex(text, r"\p{Mn}+", "")
    possessive = "([a-z0-9])[\u2019'`\u00b4]s([^a-z0-9]|$)"
    while pc.any(pc.match_substring_regex(text, possessive)).as_py():  # "a's's": overlaps
        text = pc.replace_substring_regex(text, possessive, r"\1s\2")
    text = pc.replace_substring_regex(text, "[\u2019'`\u00b4]", " ")
    text = pc.replace_substring_regex(text, r"[^\p{L}\p{N}\s,/-]|_", " ")
    for pattern, replacement in ((r"(\D)[-/]", r"\1 "), (r"[-/](\D)", r" \1")):
        text = pc.replace_substring_regex(text, pattern, replacement)
        text = pc.replace_substring_regex(text, pattern, replacement)
    text = pc.replace_substring_regex(text, r"^[-/]|[-/]$", " ")
    text = pc.replace_substring_regex(text, r"\s+", " ")
    return pc.utf8_trim_whitespace(text)


def expand(tokens: list[str]) -> list[str]:
    """Spell out street types, saints and directions."""
    last = len(tokens) - 1
    out: list[str] = []
    for position, token in enumerate(tokens):
        if token in SAINTS and position < last:
            out.append(SAINTS[token])
        elif token == "st":
            out.append("street")
        elif token in _CONTEXT_WORDS and 0 < position < last:
            out.append(token)
        elif len(token) > 4 and token.endswith("str"):  # "Bahnhofstr" without its dot
            out.append(token + "asse")
        else:
            word = ABBREVIATIONS.get(token, token)
            out.append(SYNONYMS.get(word, word))
    return out


@functools.lru_cache(maxsize=65536)
def expand_text(folded: str) -> str:
    """``expand`` over the words of already folded text."""
    return " ".join(expand(folded.split()))


@functools.lru_cache(maxsize=65536)
def street_key(text: str) -> str:
    """The matching key of a street or place name: folded, abbreviations spelled out."""
    return " ".join(expand(fold(text).replace(",", " ").split()))


_HOUSE_NUMBER = re.compile(
    r"^(\d{1,5})(?:\s*([a-z]|bis|ter|quater))?(?:\s*[-/]\s*(\d{1,5})[a-z]?)?$"
)


def plain_umlauts(key: str) -> str:
    """Umlauts written out ("ae", "oe", "ue") as the folded key writes them ("a", "o", "u").

    Folding drops the dots (``Hämeentie`` -> ``hameentie``), so a query written with "ae"
    (``Haemeentie``) compares equal through this form, and so does a name spelled with "ae".
    """
    if "e" not in key:
        return key
    return key.replace("ae", "a").replace("oe", "o").replace("ue", "u")


def house_number_key(text: str) -> str:
    """``12 B`` -> ``12b``, ``12 bis`` -> ``12bis``, ``12 - 14`` -> ``12-14``; else folded text."""
    folded = fold(text).replace(",", " ")
    match = _HOUSE_NUMBER.match(folded)
    if match is None:
        return folded.replace(" ", "")
    number, suffix, upper = match.groups()
    key = str(int(number)) + (suffix or "")
    return f"{key}-{int(upper)}" if upper else key


@functools.lru_cache(maxsize=4096)
def house_number_value(key: str) -> int | None:
    """The leading number of a house-number key (``12bis`` -> 12), for interpolation
    (remembered: house numbers are few)."""
    digits = _LEADING_DIGITS.match(key)
    return int(digits.group()) if digits else None


def is_house_number(token: str) -> bool:
    return _HOUSE_NUMBER.match(token) is not None


_POSTCODE_NOISE = re.compile(r"[\s-]")


@functools.lru_cache(maxsize=65536)
def postcode_key(text: str) -> str:
    """Postcodes compare upper case without spaces or dashes (``sw1a 1aa`` = ``SW1A1AA``)."""
    return _POSTCODE_NOISE.sub("", unicodedata.normalize("NFKC", text)).upper()


def join_number_parts(folded: str) -> str:
    """Glue house-number parts into one token: ``12 b`` -> ``12b``, ``12 - 14`` -> ``12-14``."""
    if not _NUMBER_PART.search(folded):
        return folded
    return _NUMBER_RANGE.sub(r"\1\2\3", _NUMBER_SUFFIX.sub(r"\1\2", folded))


STREET_TYPES = frozenset(ABBREVIATIONS.values()) | frozenset(SYNONYMS.values()) | {
    "rue", "via", "calle", "strasse", "straat", "weg", "gatan", "vagen", "katu", "tie", "de",
    "du", "des", "la", "le", "del", "di", "der", "van",
}  # fmt: skip
"""Words dropped to make a street's core name ("Grimaldi" finds "Rue Grimaldi")."""


def street_core(key: str) -> str:
    """A street key without its street types and articles (built into the release's index)."""
    return " ".join(word for word in key.split() if word not in STREET_TYPES)
