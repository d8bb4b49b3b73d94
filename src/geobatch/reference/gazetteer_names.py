"""Country and first-level subdivision names in many languages, from ``pycountry``/``iso3166-2``.

``pycountry`` ships the Debian iso-codes translations (about 160 locales) of ISO 3166-1 country
names and ISO 3166-2 subdivision names; ``iso3166-2`` adds a coordinate and local other names
for each subdivision. Both are read once per gazetteer build (a few seconds).
"""

from __future__ import annotations

import gettext
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pycountry

_BRACKETS = re.compile(r"\s*\([^)]*\)\s*")
_OTHER_LANGUAGE = re.compile(r"\s*\[([^\]]*)\]\s*")
_LANGUAGE_TAG = re.compile(r"\s*\([a-z]{2,3}\)\s*$")


def _translations(domain: str) -> list[gettext.NullTranslations]:
    found: list[gettext.NullTranslations] = []
    for language in sorted(os.listdir(pycountry.LOCALES_DIR)):
        try:
            found.append(gettext.translation(domain, pycountry.LOCALES_DIR, languages=[language]))
        except OSError:
            continue
    return found


def _variants(name: str) -> list[str]:
    """A name and, where it has a bracketed part ("Bolivia (Plurinational State of)"), the
    name without it; "Korea, Republic of" also as "Republic of Korea". ISO 3166-2 gives a
    second language's name in square brackets ("Catalunya [Cataluña]"): each is a name."""
    others = _OTHER_LANGUAGE.findall(name)
    if others:
        parts = [p.strip() for p in (_OTHER_LANGUAGE.sub(" ", name), *others)]
        return list(dict.fromkeys(v for part in parts if part for v in _variants(part)))
    out = [name]
    bare = _BRACKETS.sub(" ", name).strip()
    if bare and bare != name:
        out.append(bare)
    head, comma, tail = bare.partition(", ")
    if comma and tail and "," not in tail:
        out.append(f"{tail} {head}")
    return out


def country_aliases() -> dict[str, list[str]]:
    """ISO alpha-2 -> alpha-3, then the English, official and common names, then every
    translation (duplicates removed, order kept)."""
    translations = _translations("iso3166-1")
    aliases: dict[str, list[str]] = {}
    for country in pycountry.countries:
        names = [country.alpha_3]
        for attribute in ("name", "official_name", "common_name"):
            value = getattr(country, attribute, None)
            if value:
                names.extend(_variants(value))
        for translation in translations:
            for attribute in ("name", "official_name", "common_name"):
                value = getattr(country, attribute, None)
                if value and (local := translation.gettext(value)) != value:
                    names.extend(_variants(local))
        aliases[country.alpha_2] = list(dict.fromkeys(names))
    return aliases


@dataclass(kw_only=True)
class Subdivision:
    """An ISO 3166-2 first-level subdivision: its code, names and (where known) position."""

    code: str
    country: str
    name: str
    names: list[str] = field(default_factory=list)
    lat: float | None = None
    lon: float | None = None


def _iso3166_2_data() -> dict[str, dict[str, dict[str, object]]]:
    import iso3166_2

    path = Path(iso3166_2.__file__).parent / "iso3166-2.json"
    with open(path, encoding="utf-8") as handle:
        data: dict[str, dict[str, dict[str, object]]] = json.load(handle)
    return data


def subdivisions() -> list[Subdivision]:
    """Every first-level ISO 3166-2 subdivision with its names in every language known."""
    translations = _translations("iso3166-2")
    extra = _iso3166_2_data()
    found: list[Subdivision] = []
    for item in pycountry.subdivisions:
        if item.parent_code is not None:
            continue
        names = _variants(item.name)
        for translation in translations:
            if (local := translation.gettext(item.name)) != item.name:
                names.extend(_variants(local))
        info = extra.get(item.country_code, {}).get(item.code, {})
        other = info.get("localOtherName")
        if isinstance(other, str):
            names.extend(_LANGUAGE_TAG.sub("", part).strip() for part in other.split(","))
        position = info.get("latLng")
        lat = lon = None
        if isinstance(position, list) and len(position) == 2:
            lat, lon = float(position[0]), float(position[1])
        found.append(
            Subdivision(
                code=item.code,
                country=item.country_code,
                name=names[0],
                names=list(dict.fromkeys(n for n in names if n)),
                lat=lat,
                lon=lon,
            )
        )
    return found
