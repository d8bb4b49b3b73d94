"""Forward-geocoding confidence: a raw agreement score turned into how often such answers are right.

``confidence`` is the share (0..100) of answers of that match level and raw score that were
right - within 50 m of the address, POI or place asked for (a place within 1 km) - in the
test sets of ``evals/geocode.py``, which builds them with a fixed seed from the addresses,
POIs and places of several OSM extracts and prints the knots below with ``--fit``. Between
knots the rate is interpolated linearly and rounded down; below the first it falls to 0 at
``FLOOR``, above the last it stays. A level without enough evaluated answers keeps a plain
stretch of the score under a ceiling. ``tests/engines/geocode/test_confidence.py`` checks
the result on a small sample of its own.
"""

from __future__ import annotations

import bisect
import functools

FLOOR = 0.45
"""A raw score at or under this is no agreement at all."""

CALIBRATION: dict[str, tuple[tuple[float, float], ...]] = {
    # evals/geocode.py --fit, seed 7: Helsinki, Monaco, Andorra and Baltimore (26,600 queries);
    # houseNumber's knots under 0.78 fitted on seeds 7 and 1 pooled (53,200 queries) once
    # misspelt streets were also sought among the few of the query's postcode or town (scores
    # of 0.6 to 0.75); above, the answers of both fits are right 99.5 % of the time or more
    "houseNumber": ((0.656, 93), (0.700, 96), (0.730, 98), (0.783, 99), (0.974, 100)),  # 40,642
    "poi": ((0.919, 100), (0.960, 100)),  # 5,125
    "locality": ((0.576, 0), (0.902, 98)),  # 187: fallbacks for a street not found, places
}
"""Match level -> (raw score, % right) knots, the score rising; levels of 100 answers or more."""

CEILING = {"interpolated": 85, "region": 90, "country": 90, "street": 90}
"""The confidence a perfect score earns at a level without knots (interpolation estimates)."""


@functools.lru_cache(maxsize=4096)
def confidence(score: float, level: str) -> int:
    """0..100: how often an answer of this level and raw score is right (remembered: a chunk's
    answers share a few scores)."""
    knots = CALIBRATION.get(level)
    if not knots:
        stretched = max(0.0, min(1.0, (score - FLOOR) / (1.0 - FLOOR)))
        return round(CEILING.get(level, 80) * stretched)
    scores = [knot[0] for knot in knots]
    position = bisect.bisect_right(scores, score)
    if position == len(knots):
        return round(knots[-1][1])
    low_score, low_rate = knots[position - 1] if position else (FLOOR, 0.0)
    high_score, high_rate = knots[position]
    if position == 0 and score <= FLOOR:
        return 0  # a score on a knot itself is that knot's rate, not 0
    fraction = (score - low_score) / (high_score - low_score)
    return int(low_rate + fraction * (high_rate - low_rate))  # rounded down: "at least"
