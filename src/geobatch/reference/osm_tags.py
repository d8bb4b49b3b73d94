"""How OpenStreetMap tags are read: road classes, one-way rules, names, places, POIs, admin areas.

Kept apart from the import machinery so the choices (which highways are roads, which keys
make a POI) are in one short, reviewable place.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

ROAD_CLASSES = frozenset(
    {
        "motorway",
        "motorway_link",
        "trunk",
        "trunk_link",
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
        "unclassified",
        "residential",
        "living_street",
        "service",
        "road",
        "track",
        "pedestrian",
        "busway",
    }
)
"""Highways that become segments. Footways, paths, cycleways, steps, bridleways, corridors,
platforms and construction/proposed ways are left out: they are not roads a vehicle trace or a
street address refers to. ``track`` and ``pedestrian`` stay (named pedestrian streets carry
addresses; tracks carry traffic in rural areas); engines can filter on ``road_class``."""

IMPLIED_ONEWAY = frozenset({"motorway", "motorway_link"})
ONEWAY_ALONG = frozenset({"yes", "1", "true"})
ONEWAY_AGAINST = frozenset({"-1", "reverse"})
ONEWAY_BOTH = frozenset({"no", "0", "false", "reversible", "alternating"})
NOT_A_STRUCTURE = frozenset({"no", "0", "false", ""})
"""``tunnel`` and ``bridge`` values that say the way is on neither."""

NAME_KEYS = {
    "name": "default",
    "alt_name": "alt",
    "old_name": "old",
    "official_name": "official",
    "short_name": "short",
    "loc_name": "loc",
    "int_name": "int",
}
"""Tag -> key in the ``names`` map; ``name:xx`` becomes ``xx`` and ``alt_name:xx`` ``alt:xx``."""

POI_KEYS: dict[str, frozenset[str] | None] = {
    "amenity": None,
    "shop": None,
    "tourism": None,
    "leisure": None,
    "historic": None,
    "office": None,
    "craft": None,
    "healthcare": None,
    "railway": frozenset({"station", "halt", "tram_stop"}),
    "public_transport": frozenset({"station"}),
    "aeroway": frozenset({"aerodrome", "terminal", "heliport"}),
    "natural": frozenset({"peak", "volcano", "beach", "cape", "bay", "glacier", "cave_entrance"}),
    "man_made": frozenset({"lighthouse", "tower", "windmill", "pier", "obelisk"}),
}
"""A named object with one of these keys (and, where listed, one of these values) is a POI."""

LOCALITY_PLACES = frozenset({"city", "town", "village", "hamlet"})

FEATURE_KEYS = ("addr:housenumber", "place", "boundary", *POI_KEYS)
"""Keys worth looking at on nodes and areas; everything else is dropped before Python sees it."""

_NOT_WORD = re.compile(r"[\W_]+")
_NUMBER_SEPARATORS = re.compile(r"[\s,.'\u2019]")


def tag_dict(tags: Iterable[object]) -> dict[str, str]:
    """An osmium TagList as a plain dict (one crossing into C++ per tag, then cheap lookups)."""
    return {tag.k: tag.v for tag in tags}  # type: ignore[attr-defined]


def road_class(tags: Mapping[str, str]) -> str | None:
    """The ``highway`` value when the way is a road (and drawn as a line, not an area)."""
    value = tags.get("highway")
    if value not in ROAD_CLASSES or tags.get("area") == "yes":
        return None
    return value


def oneway(tags: Mapping[str, str], highway: str) -> int:
    """1 along the way, -1 against it, 0 both ways; roundabouts and motorways imply 1."""
    value = tags.get("oneway", "").strip().lower()
    if value in ONEWAY_ALONG:
        return 1
    if value in ONEWAY_AGAINST:
        return -1
    if value in ONEWAY_BOTH:
        return 0
    if tags.get("junction") in ("roundabout", "circular") or highway in IMPLIED_ONEWAY:
        return 1
    return 0


def layer(tags: Mapping[str, str]) -> int:
    """The way's ``layer`` (-5..5), 0 where absent or unreadable."""
    try:
        value = round(float(tags.get("layer", "0").strip().replace(",", ".")))
    except ValueError:
        return 0
    return max(-5, min(5, value))


def is_tunnel(tags: Mapping[str, str]) -> bool:
    """The way runs in a tunnel, a covered passage or a building passage."""
    return tags.get("tunnel", "no").strip().lower() not in NOT_A_STRUCTURE


def is_bridge(tags: Mapping[str, str]) -> bool:
    """The way runs on a bridge or a viaduct."""
    return tags.get("bridge", "no").strip().lower() not in NOT_A_STRUCTURE


def names(tags: Mapping[str, str], *, with_ref: bool = False) -> list[tuple[str, str]]:
    """Name variants as ``names`` map entries (``ref`` too for roads, where it is a name)."""
    found: list[tuple[str, str]] = []
    for key, value in tags.items():
        mapped = NAME_KEYS.get(key)
        if mapped is not None:
            found.append((mapped, value))
            continue
        prefix, _, suffix = key.partition(":")
        if not suffix or prefix not in NAME_KEYS:
            continue
        found.append((suffix if prefix == "name" else f"{NAME_KEYS[prefix]}:{suffix}", value))
    if with_ref and "ref" in tags:
        found.append(("ref", tags["ref"]))
    return found


def poi_category(tags: Mapping[str, str]) -> str | None:
    """The category of a POI (``restaurant``, ``museum``, ``station`` ...) or None."""
    for key, allowed in POI_KEYS.items():
        value = tags.get(key)
        if not value or value == "no" or (allowed is not None and value not in allowed):
            continue
        return key if value == "yes" else value
    return None


def admin_level(tags: Mapping[str, str]) -> int | None:
    """The admin level of an administrative boundary, None for anything else."""
    if tags.get("boundary") != "administrative":
        return None
    try:
        level = int(tags.get("admin_level", "").strip())
    except ValueError:
        return None
    return level if 1 <= level <= 15 else None


def country_code(tags: Mapping[str, str]) -> str | None:
    """ISO 3166-1 alpha-2 code carried by a country boundary or an address."""
    for key in ("ISO3166-1:alpha2", "ISO3166-1", "addr:country", "country_code"):
        value = tags.get(key, "").strip()
        if len(value) == 2 and value.isalpha():
            return value.upper()
    return None


def population(value: str | None) -> int | None:
    """``12345``, ``12 345``, ``12,345`` -> 12345; anything else (``~1000``, ``big``) -> None."""
    if not value:
        return None
    digits = _NUMBER_SEPARATORS.sub("", value)
    if not digits.isdigit() or len(digits) > 12:
        return None
    return int(digits)


def normalise(text: str) -> str:
    """Name key for grouping and ids: NFKC, case-folded, punctuation and spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NOT_WORD.sub(" ", folded).strip()
