"""Forward-geocoding quality: hit rates per query variant and a confidence calibration table.

Run with ``.venv/bin/python evals/geocode.py [--releases DIR] [--seed N]``.

For each release (Helsinki, the bundled default, always; Monaco, Andorra and Baltimore from
the shared OSM extracts when they are present) the script builds a test set from the
release's own address points, uniquely named POIs and places, writes each one as a user
might (every choice drawn from a ``random.Random`` of a fixed seed, never picked by hand),
and geocodes them all through the ``geocode`` engine in one batch:

- ``exact``          "Mikonkatu 18, 00100 Helsinki" (number first where the country does so)
- ``structured``     street, house number, postcode and city in their own columns
- ``locality_first`` "Helsinki, Mikonkatu 18"
- ``postcode_first`` "00100 Helsinki, Mikonkatu 18" (addresses with a postcode)
- ``no_commas``      "Mikonkatu 18 00100 Helsinki"
- ``abbreviated``    street types shortened: "Mikonk. 18", "Av. ...", "Bd ...", "C/ ..."
- ``transliterated`` umlauts written out: "Haemeentie" for "Hämeentie", "ss" for "ß"
- ``no_accents``     accents stripped (only addresses that have some)
- ``lower``          all lower case
- ``typo``           one letter swapped, dropped or replaced in the street name
- ``typo2``, ``typo3`` two or three such edits: no target, they test the confidence
  calibration with answers that are sometimes wrong
- ``no_city``        street and number only
- ``poi``            a POI's name, alone; ``poi_city`` with its locality
- ``place``          a uniquely named locality of the release, alone

A query is a hit@50 m (@250 m) when the best candidate lies within 50 m (250 m) of the point
the query was made from (a place within 1 km counts as right at both). Addresses whose number
and street occur at points more than 50 m apart, names shared by several POIs or places, and
address points whose house number holds more than a number ("2, 2. krs.", "33 Keskuskatu
5": a floor, a second street) are left out: no answer could be right for them. The
calibration table groups every query by the confidence of its best candidate and shows how
often that candidate was right: a confidence of 90 should be right about 90 % of the time.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from geobatch.engines.geocode import forward_geocoder, geocode_records
from geobatch.engines.geocode.batch import FIELD_COLUMNS
from geobatch.engines.geocode.forward import NUMBER_FIRST, distance_km
from geobatch.engines.geocode.index import local_index
from geobatch.engines.geocode.normalize import house_number_key, is_house_number, street_key
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm

SHARED_OSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm"
EXTRACTS = (("monaco", True), ("andorra", False), ("baltimore", True))
"""Shared extracts to evaluate, and whether to import the gazetteer with them."""

ABBREVIATE = (
    (r"\bAvenue\b", "Av."),
    (r"\bBoulevard\b", "Bd"),
    (r"\bRue\b", "R."),
    (r"\bStreet\b", "St"),
    (r"\bRoad\b", "Rd"),
    (r"\bDrive\b", "Dr"),
    (r"\bLane\b", "Ln"),
    (r"\bPlace\b", "Pl"),
    (r"\bAvinguda\b", "Av."),
    (r"\bCarrer\b", "C/"),
    (r"\bPlaça\b", "Pl."),
    (r"\bSaint\b", "St"),
    (r"\bSainte\b", "Ste"),
    (r"(?<=\w{3})katu\b", "k."),
    (r"(?<=\w{3})tie\b", "t."),
    (r"(?<=\w{3})gatan\b", "g."),
    (r"(?<=\w{2})(straße|strasse)\b", "str."),
)

CONFIDENCE_BUCKETS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 90), (90, 101))


@dataclass(frozen=True)
class Case:
    variant: str
    text: str | None
    lon: float
    lat: float
    fields: tuple[tuple[str, str], ...] = ()
    """Structured columns (input column name, value), for the ``structured`` group."""
    within_km: float = 0.05
    """How near the answer must be to count as right (a town's point varies by source)."""


TRANSLITERATE = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
)
FIELD_NAMES = ("street", "housenumber", "postalcode", "city")


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _typo(name: str, rng: random.Random) -> str | None:
    """One edit inside the longest word of the name (never its first letter)."""
    words = name.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[longest]
    if len(word) < 5:
        return None
    position = rng.randrange(1, len(word) - 1)
    edit = rng.choice(("swap", "drop", "replace"))
    if edit == "swap":
        word = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    elif edit == "drop":
        word = word[:position] + word[position + 1 :]
    else:
        letters = "aeioulnrst".replace(word[position].lower(), "")
        word = word[:position] + rng.choice(letters) + word[position + 1 :]
    words[longest] = word
    return " ".join(words)


def _abbreviate(name: str, rng: random.Random) -> str | None:
    """Street types shortened; a compound's "str." loses its dot half of the time."""
    short = name
    for pattern, replacement in ABBREVIATE:
        if replacement == "str." and rng.random() < 0.5:
            replacement = "str"
        short = re.sub(pattern, replacement, short, flags=re.IGNORECASE)
    return short if short != name else None


@dataclass(frozen=True)
class Address:
    street: str
    number: str
    postcode: str | None
    city: str | None
    number_first: bool


def _variants(address: Address, rng: random.Random) -> list[tuple[str, str]]:
    """The ways one address is written in the test set, as free text."""
    street, number = address.street, address.number
    place = " ".join(p for p in (address.postcode, address.city) if p)

    def line(name: str) -> str:
        return f"{number} {name}" if address.number_first else f"{name} {number}"

    def written(name: str) -> str:
        return f"{line(name)}, {place}" if place else line(name)

    exact = written(street)
    short = _abbreviate(street, rng)
    typo = _typo(street, rng)
    typo2 = _typo(typo, rng) if typo else None
    typo3 = _typo(typo2, rng) if typo2 else None
    plain = _strip_accents(exact)
    spelled = exact.translate(TRANSLITERATE)
    found = [
        ("exact", exact),
        ("locality_first", f"{address.city}, {line(street)}" if address.city else None),
        (
            "postcode_first",
            f"{place}, {line(street)}" if address.postcode and address.city else None,
        ),
        ("no_commas", exact.replace(",", "") if place else None),
        ("abbreviated", written(short) if short else None),
        ("transliterated", spelled if spelled != exact else None),
        ("no_accents", plain if plain != exact else None),
        ("lower", exact.lower()),
        ("typo", written(typo) if typo else None),
        ("typo2", written(typo2) if typo2 else None),
        ("typo3", written(typo3) if typo3 else None),
        ("no_city", line(street) if place else None),
    ]
    return [(variant, text) for variant, text in found if text]


def address_cases(release: Release, rng: random.Random) -> list[Case]:
    index = local_index(release)
    table = release.table("addresses").to_pylist()
    points: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for row in table:
        if row["street"] and is_house_number(house_number_key(str(row["housenumber"] or ""))):
            points[
                (street_key(str(row["street"])), house_number_key(str(row["housenumber"])))
            ].append(row)
    cases: list[Case] = []
    for key, rows in points.items():
        first = rows[0]
        lon, lat = float(first["lon"]), float(first["lat"])  # type: ignore[arg-type]
        if any(distance_km(lon, lat, float(r["lon"]), float(r["lat"])) > 0.05 for r in rows):  # type: ignore[arg-type]
            continue
        same_name = [index.streets[i] for i in index.street_by_key[key[0]]]
        known = next((s for s in same_name if key[1] in s.numbers), same_name[0])
        address = Address(
            street=str(first["street"]),
            number=str(first["housenumber"]),
            postcode=str(first["postcode"]) if first["postcode"] else None,
            city=str(first["city"] or known.city or "") or None,
            number_first=known.country in NUMBER_FIRST,
        )
        cases.extend(Case(variant, text, lon, lat) for variant, text in _variants(address, rng))
        values = (address.street, address.number, address.postcode, address.city)
        fields = tuple((n, v) for n, v in zip(FIELD_NAMES, values, strict=True) if v)
        cases.append(Case("structured", None, lon, lat, fields))
    return cases


def poi_cases(release: Release) -> list[Case]:
    index = local_index(release)
    places = index.places
    counts: dict[str, int] = defaultdict(int)
    for name in places.names:
        counts[street_key(name)] += 1
    cases: list[Case] = []
    for row, (name, kind) in enumerate(zip(places.names, places.kinds, strict=True)):
        key = street_key(name)
        if counts[key] != 1 or len(places.by_key.get(key, ())) != 1 or len(key) < 4:
            continue
        lon, lat = float(places.lon[row]), float(places.lat[row])
        if kind == "place" and len(index.localities.get(key, ())) == 1:
            cases.append(Case("place", name, lon, lat, within_km=1.0))
            continue
        if kind != "poi" or key in index.street_by_key or key in index.localities:
            continue
        cases.append(Case("poi", name, lon, lat))
        nearest = _nearest_locality(index, lon, lat)
        if nearest:
            cases.append(Case("poi_city", f"{name}, {nearest}", lon, lat))
    return cases


def _nearest_locality(index: object, lon: float, lat: float) -> str | None:
    best, name = float("inf"), None
    for areas in index.localities.values():  # type: ignore[attr-defined]
        for area in areas:
            if area.level == "locality":
                km = distance_km(lon, lat, area.lon, area.lat)
                if km < best:
                    best, name = km, area.name
    return name if best < 5 else None


def records(cases: list[Case]) -> pa.Table:
    """The cases as a geocode job's records: free text, or structured columns."""
    columns: dict[str, list[str | None]] = {"searchText": [case.text for case in cases]}
    for name in FIELD_NAMES:
        columns[name] = [dict(case.fields).get(name) for case in cases]
    return pa.table(
        {
            "_ordinal": pa.array(range(len(cases)), pa.int64()),
            "recId": [str(i) for i in range(len(cases))],
            **{name: pa.array(values, pa.string()) for name, values in columns.items()},
        }
    )


def evaluate(
    release: Release, cases: list[Case]
) -> tuple[dict[str, list[float]], list[tuple[int, bool, str]], float]:
    started = time.perf_counter()
    result = geocode_records(records(cases), release)
    seconds = time.perf_counter() - started
    rows = result.results.to_pylist()
    by_ordinal = {row["_ordinal"]: row for row in rows if row["seqNumber"] in (0, 1)}
    hits: dict[str, list[float]] = defaultdict(list)
    calibration: list[tuple[int, bool, str]] = []
    for ordinal, case in enumerate(cases):
        row = by_ordinal.get(ordinal)
        if row is None or row["lat"] is None:
            km = float("inf")
            conf, level = 0, "none"
        else:
            km = distance_km(case.lon, case.lat, row["lon"], row["lat"])
            conf, level = int(row["confidence"]), str(row["match_level"])
        hits[case.variant].append(km if km > case.within_km else 0.0)
        calibration.append((conf, km <= case.within_km, level))
    return hits, calibration, len(cases) / seconds


def print_hits(name: str, hits: dict[str, list[float]], rate: float) -> None:
    print(f"\n{name}  ({sum(len(v) for v in hits.values())} queries, {rate:,.0f} queries/s)")
    print(f"  {'variant':<15} {'n':>5} {'hit@50m':>8} {'hit@250m':>9}")
    for variant, distances in hits.items():
        km = np.array(distances)
        print(
            f"  {variant:<15} {len(km):>5} {np.mean(km <= 0.05):>8.1%} {np.mean(km <= 0.25):>9.1%}"
        )


def print_calibration(calibration: list[tuple[int, bool, str]]) -> None:
    print("\nconfidence calibration (all releases; best candidate within 50 m)")
    print(f"  {'confidence':<11} {'n':>6} {'hit rate':>9}")
    for low, high in CONFIDENCE_BUCKETS:
        chosen = [hit for conf, hit, _ in calibration if low <= conf < high]
        rate = f"{np.mean(chosen):.1%}" if chosen else "-"
        print(f"  {f'{low}-{min(high, 100)}':<11} {len(chosen):>6} {rate:>9}")
    print("\nby match level of the best candidate")
    print(f"  {'level':<12} {'n':>6} {'mean conf':>10} {'hit rate':>9}")
    for level in sorted({level for _, _, level in calibration}):
        confidences = [conf for conf, _, found in calibration if found == level]
        hits = [hit for _, hit, found in calibration if found == level]
        print(f"  {level:<12} {len(hits):>6} {np.mean(confidences):>10.1f} {np.mean(hits):>9.1%}")


def scored(release: Release, cases: list[Case]) -> list[tuple[str, float, bool]]:
    """(match level, raw score, hit@50 m) of each case's best candidate, for ``--fit``."""
    geocoder = forward_geocoder(release)
    out = []
    for case in cases:
        fields = {FIELD_COLUMNS[name]: value for name, value in case.fields}
        found = geocoder.geocode(case.text, fields=fields)
        if found:
            best = found[0]
            hit = distance_km(case.lon, case.lat, best.lon, best.lat) <= case.within_km
            out.append((best.match_level, best.score, hit))
    return out


def fit_calibration(samples: list[tuple[str, float, bool]], width: float = 0.02) -> None:
    """Print, per match level, (raw score, observed hit rate) knots for ``CALIBRATION``.

    Scores are grouped in bins of ``width``; neighbouring bins are pooled until the hit
    rate never falls as the score rises (pool adjacent violators) and each knot holds at
    least 30 queries.
    """
    print("\nfitted calibration knots (raw score -> % right), for forward.CALIBRATION")
    for level in sorted({level for level, _, _ in samples}):
        bins: dict[int, list[bool]] = defaultdict(list)
        for found, score, hit in samples:
            if found == level:
                bins[round(score / width)].append(hit)
        pools = [[k * width, float(sum(v)), len(v)] for k, v in sorted(bins.items())]
        merged: list[list[float]] = []
        for pool in pools:
            merged.append(pool)
            while len(merged) > 1 and (
                merged[-2][1] / merged[-2][2] >= merged[-1][1] / merged[-1][2] or merged[-2][2] < 30
            ):
                last = merged.pop()
                first = merged[-1]
                total = first[2] + last[2]
                first[0] = (first[0] * first[2] + last[0] * last[2]) / total
                first[1], first[2] = first[1] + last[1], total
        knots = ", ".join(f"({s:.3f}, {100 * h / n:.0f})" for s, h, n in merged)
        print(f"  {level!r}: ({knots}),  # n={sum(int(n) for _, _, n in merged)}")


def releases(store: ReleaseStore) -> list[tuple[str, Release]]:
    found = [("helsinki", store.load(ensure_default_release(store).id))]
    for name, gazetteer in EXTRACTS:
        path = SHARED_OSM / f"{name}.osm.pbf"
        if not path.is_file():
            print(f"(skipping {name}: {path} is absent)", file=sys.stderr)
            continue
        found.append((name, store.load(import_osm(path, store, gazetteer=gazetteer).id)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=Path, help="release folder to build into and reuse")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fit", action="store_true", help="print fitted calibration knots")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        store = ReleaseStore(args.releases or Path(scratch))
        calibration: list[tuple[int, bool, str]] = []
        samples: list[tuple[str, float, bool]] = []
        for name, release in releases(store):
            rng = random.Random(args.seed)
            cases = address_cases(release, rng) + poi_cases(release)
            hits, calibrated, rate = evaluate(release, cases)
            calibration.extend(calibrated)
            print_hits(f"{name} ({release.manifest.id})", hits, rate)
            if args.fit:
                samples.extend(scored(release, cases))
        print_calibration(calibration)
        if args.fit:
            fit_calibration(samples)


if __name__ == "__main__":
    main()
