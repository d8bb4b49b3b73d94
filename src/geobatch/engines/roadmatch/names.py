"""Street name similarity, tolerant of the abbreviations road datasets use ("MAIN ST NW")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz

from geobatch.engines.roadmatch.network import RoadNetwork

_ABBREVIATIONS = {
    "st": "street",
    "str": "strasse",
    "ave": "avenue",
    "av": "avenue",
    "rd": "road",
    "blvd": "boulevard",
    "bd": "boulevard",
    "dr": "drive",
    "ln": "lane",
    "ct": "court",
    "pl": "place",
    "pkwy": "parkway",
    "hwy": "highway",
    "fwy": "freeway",
    "expy": "expressway",
    "ter": "terrace",
    "cir": "circle",
    "sq": "square",
    "aly": "alley",
    "br": "bridge",
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
    "ne": "northeast",
    "nw": "northwest",
    "se": "southeast",
    "sw": "southwest",
    "mt": "mount",
    "ste": "sainte",
    "bvd": "boulevard",
}
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@lru_cache(maxsize=65536)
def normalise(name: str) -> str:
    """Lower case, punctuation dropped, common abbreviations expanded."""
    words = _WORD.findall(name.casefold())
    return " ".join(_ABBREVIATIONS.get(word, word) for word in words)


def similarity(name: str, candidates: Iterable[str]) -> float | None:
    """Best similarity 0-100 of ``name`` to any candidate name; None when either side has none."""
    return _similarity(name, tuple(candidates))


@lru_cache(maxsize=65536)
def _similarity(name: str, candidates: tuple[str, ...]) -> float | None:
    """Cached: a street's name meets the same reference names at every layer of every road."""
    left = normalise(name) if name else ""
    if not left:
        return None
    best: float | None = None
    for other in candidates:
        right = normalise(other)
        if not right:
            continue
        score = float(fuzz.WRatio(left, right))
        best = score if best is None else max(best, score)
    return best


def similarities(
    names: Sequence[str | None], line: np.ndarray, segment: np.ndarray, network: RoadNetwork
) -> np.ndarray:
    """Per (line, segment) pair, the similarity 0-100 of their names; nan where either has
    none. Computed once per distinct (name, segment): split roads and repeated streets share
    their names, and a road meets the same segment at many samples."""
    out = np.full(len(line), np.nan)
    if len(line) == 0:
        return out
    spelled, name_of_line = np.unique(
        np.asarray([n or "" for n in names], dtype=object), return_inverse=True
    )
    key = name_of_line.reshape(-1)[line].astype(np.int64) * len(network) + segment
    unique, inverse = np.unique(key, return_inverse=True)
    values = np.full(len(unique), np.nan)
    for k, (nm, sg) in enumerate(
        zip((unique // len(network)).tolist(), (unique % len(network)).tolist(), strict=True)
    ):
        name = spelled[nm]
        if not name:
            continue
        score = similarity(name, network.names[sg])
        if score is not None:
            values[k] = score
    return values[inverse]


def mismatch(
    names: Sequence[str | None],
    line: np.ndarray,
    segment: np.ndarray,
    network: RoadNetwork,
    unnamed: float = 0.0,
) -> np.ndarray:
    """Per (line, segment) pair, 1 - similarity/100 of the names; 0.5 where the segment has no
    name, ``unnamed`` where the line has none but the segment has one (a slip road or a
    service road beside the named street it leaves), 0 where neither has a name."""
    score = similarities(names, line, segment, network)
    named = np.asarray([bool(n) for n in names], dtype=bool)
    if len(line) == 0:
        return score
    other = np.where(network.named[segment], unnamed, 0.0)
    return np.where(np.isnan(score), np.where(named[line], 0.5, other), 1.0 - score / 100.0)
