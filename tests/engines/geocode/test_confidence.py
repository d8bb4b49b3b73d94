"""Confidence means what it says: answers of confidence c are right about c % of the time.

A small sample drawn with a fixed seed from the default release's own addresses, written
exactly, without the town, and with one to three typing errors in the street (with the town,
and three without it), is geocoded;
per confidence bucket the share of answers within 50 m of the address must lie near the
bucket's mean confidence.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from geobatch.engines.geocode import ForwardGeocoder
from geobatch.engines.geocode.calibration import confidence
from geobatch.engines.geocode.forward import distance_km
from geobatch.engines.geocode.normalize import house_number_key, is_house_number, street_key
from geobatch.reference import Release

SAMPLE = 200
BUCKETS = ((0, 50), (50, 80), (80, 95), (95, 101))
TOLERANCE = 12.0
"""Points between a bucket's mean confidence and its observed hit rate, at most."""


def _typo(word: str, rng: random.Random) -> str:
    position = rng.randrange(1, len(word) - 1)
    return word[:position] + rng.choice("aeiklnorstu") + word[position + 1 :]


def _sample(release: Release, rng: random.Random) -> list[tuple[str, float, float]]:
    """Queries and the points they were made from; an address at two places is left out."""
    points: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in release.table("addresses").to_pylist():
        number = house_number_key(str(row["housenumber"] or ""))
        if row["street"] and len(row["street"]) >= 6 and is_house_number(number):
            points[(street_key(row["street"]), number)].append(row)
    rows = [
        found[0]
        for found in points.values()
        if all(
            distance_km(found[0]["lon"], found[0]["lat"], r["lon"], r["lat"]) <= 0.05 for r in found
        )
    ]
    cases = []
    for row in rng.sample(rows, min(SAMPLE, len(rows))):
        street, number, city = row["street"], row["housenumber"], row["city"] or "Helsinki"
        written = [street]
        for _ in range(3):
            written.append(_typo(written[-1], rng))
        for name in written:
            cases.append((f"{name} {number}, {city}", row["lon"], row["lat"]))
        cases.append((f"{street} {number}", row["lon"], row["lat"]))
        # with no town to search within, a street misspelt thrice is often not found at all
        cases.append((f"{written[-1]} {number}", row["lon"], row["lat"]))
    return cases


@pytest.fixture(scope="module")
def answers(helsinki: Release) -> list[tuple[int, bool]]:
    geocoder = ForwardGeocoder(helsinki)
    out = []
    for text, lon, lat in _sample(helsinki, random.Random(11)):
        found = geocoder.geocode(text)
        if not found:
            out.append((0, False))
            continue
        best = found[0]
        out.append((best.confidence, distance_km(lon, lat, best.lon, best.lat) <= 0.05))
    return out


def test_each_bucket_is_right_as_often_as_it_says(answers: list[tuple[int, bool]]) -> None:
    checked = 0
    for low, high in BUCKETS:
        chosen = [(conf, hit) for conf, hit in answers if low <= conf < high]
        if len(chosen) < 20:
            continue
        stated = float(np.mean([conf for conf, _ in chosen]))
        observed = 100.0 * float(np.mean([hit for _, hit in chosen]))
        assert abs(stated - observed) <= TOLERANCE, (low, high, len(chosen), stated, observed)
        checked += 1
    assert checked >= 2  # the sample reaches more than one bucket


def test_higher_confidence_is_right_more_often(answers: list[tuple[int, bool]]) -> None:
    confident = [hit for conf, hit in answers if conf >= 90]
    doubtful = [hit for conf, hit in answers if conf < 60]
    assert len(confident) >= 100
    assert len(doubtful) >= 10
    assert np.mean(confident) >= 0.9
    assert np.mean(confident) > np.mean(doubtful)


def test_confidence_rises_with_the_score() -> None:
    for level in ("houseNumber", "street", "poi", "locality", "interpolated", "country"):
        values = [confidence(score / 100, level) for score in range(0, 101)]
        assert values == sorted(values), level
        assert values[0] >= 0
        assert values[-1] <= 100
