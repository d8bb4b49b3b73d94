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
_GENERIC_WORDS = """
road street avenue boulevard lane drive way place square route highway the of
rue chemin allee allée quai impasse passage rond point esplanade de la le les des du d l
carrer avinguda carretera cami camí plaça placa del dels els calle via camino paseo lo los las el
strasse straße weg platz gasse
bretelle sortie entree entrée sortida salida acceso acces enllac enlace ramp rampe exit slip
auffahrt abfahrt ausfahrt zufahrt
"""
_GENERIC = frozenset([*_ABBREVIATIONS.values(), *_GENERIC_WORDS.split()])
"""Words that say what kind of street it is, not which: "Avenue de la Porte Neuve" and
"Avenue des Pins" share only these."""


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
    left_core = _core(left)
    for other in candidates:
        right = normalise(other)
        if not right:
            continue
        score = float(fuzz.WRatio(left, right))
        right_core = _core(right)
        if left_core and right_core:
            # Shared generic words do not make two names alike; differing ones still count.
            score = min(score, float(fuzz.WRatio(left_core, right_core)))
        elif left_core or right_core:
            # A name of generic words only ("Bretelle", "Exit") says what kind of road it is,
            # not which: against a named street it weighs as much as having no name.
            score = 50.0
        best = score if best is None else max(best, score)
    return best


def _core(name: str) -> str:
    """A normalised name without its generic words; empty when it has only those."""
    return " ".join(word for word in name.split() if word not in _GENERIC)


class NameScores:
    """Name similarities of a batch's roads to segments, each distinct pair of a road name and
    a segment's names scored once: split roads and repeated streets share their names, a road
    meets the segments of one street at many samples, and the stretches of the decoded paths
    are scored after the candidates."""

    def __init__(self, names: Sequence[str | None], network: RoadNetwork) -> None:
        spelled, name_of_line = np.unique(
            np.asarray([n or "" for n in names], dtype=object), return_inverse=True
        )
        self._spelled = spelled.tolist()
        self._name_of_line = name_of_line.reshape(-1).astype(np.int64)
        self._named = np.asarray([bool(n) for n in names], dtype=bool)
        self._network = network
        self._keys = np.zeros(0, dtype=np.int64)  # sorted name * n_segments + segment
        self._values = np.zeros(0)

    def similarities(self, line: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """Per (line, segment) pair, the similarity 0-100 of their names; nan where either
        has none."""
        if len(line) == 0:
            return np.full(0, np.nan)
        size = len(self._network)  # group ids are below it
        group = self._network.name_groups(segment)
        key = self._name_of_line[line] * size + group
        # Pairs come in runs of one key (a candidate's two directions, a road's samples along
        # one street): the runs are sorted, not every pair.
        head = np.ones(len(key), dtype=bool)
        head[1:] = key[1:] != key[:-1]
        unique, inverse = np.unique(key[head], return_inverse=True)
        of_pair = inverse.reshape(-1)[np.cumsum(head) - 1]
        pos = np.minimum(np.searchsorted(self._keys, unique), max(len(self._keys) - 1, 0))
        found = self._keys[pos] == unique if len(self._keys) else np.zeros(len(unique), bool)
        values = np.full(len(unique), np.nan)
        values[found] = self._values[pos[found]]
        missing = np.flatnonzero(~found)
        for k, nm, gr in zip(
            missing.tolist(),
            (unique[missing] // size).tolist(),
            (unique[missing] % size).tolist(),
            strict=True,
        ):
            name = self._spelled[nm]
            if name:
                score = _similarity(name, self._network.group_names(gr))
                if score is not None:
                    values[k] = score
        if len(missing):
            keys = np.concatenate([self._keys, unique[missing]])
            order = np.argsort(keys, kind="stable")
            self._keys = keys[order]
            self._values = np.concatenate([self._values, values[missing]])[order]
        out: np.ndarray = values[of_pair]
        return out

    def mismatch(self, line: np.ndarray, segment: np.ndarray, unnamed: float = 0.0) -> np.ndarray:
        """Per (line, segment) pair, 1 - similarity/100 of the names; 0.5 where the segment
        has no name, ``unnamed`` where the line has none but the segment has one (a slip road
        or a service road beside the named street it leaves), 0 where neither has a name."""
        score = self.similarities(line, segment)
        if len(line) == 0:
            return score
        other = np.where(self._network.named[segment], unnamed, 0.0)
        return np.where(
            np.isnan(score), np.where(self._named[line], 0.5, other), 1.0 - score / 100.0
        )


def similarities(
    names: Sequence[str | None], line: np.ndarray, segment: np.ndarray, network: RoadNetwork
) -> np.ndarray:
    """Per (line, segment) pair, the similarity 0-100 of their names; nan where either has
    none."""
    return NameScores(names, network).similarities(line, segment)


def mismatch(
    names: Sequence[str | None],
    line: np.ndarray,
    segment: np.ndarray,
    network: RoadNetwork,
    unnamed: float = 0.0,
) -> np.ndarray:
    """Per (line, segment) pair, the cost of their names' mismatch (``NameScores.mismatch``)."""
    return NameScores(names, network).mismatch(line, segment, unnamed)
