"""The mapped forward index: same-named streets of copies stay apart, copy 0 answers as alone."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import shapely

from geobatch.engines.geocode import ForwardGeocoder
from geobatch.reference import Release, ReleaseStore

SHIFT_DEG = 0.2
"""Copies lie this far apart in longitude (about 11 km at 60° N)."""
QUERIES = [
    "Main Street 3, Eastham",
    "Main Street 5",
    "Main Street 4, Eastham",
    "Main Street, Eastham",
    "High Street 2",
    "Mian Street 1",
    "12345 Eastham",
    "Eastham",
]


def _release(tmp_path: Path, copies: int) -> Release:
    """``copies`` shifted copies of one town; each street is one row for all copies, as the
    importer writes streets grouped by name and locality."""
    store = ReleaseStore(tmp_path / f"copies-{copies}")
    shifts = [k * SHIFT_DEG for k in range(copies)]

    def lines(x: float, y: float) -> list[list[tuple[float, float]]]:
        return [[(x + dx, y), (x + dx + 0.002, y)] for dx in (0.0, 0.002, 0.004)]

    with store.building("copies-2024-01-01", "copies") as builder:
        builder.write_table(
            "streets",
            pa.table(
                {
                    "id": ["street:eastham:main-street", "street:eastham:high-street"],
                    "name": ["Main Street", "High Street"],
                    "locality": ["Eastham", "Eastham"],
                    "geometry": [
                        shapely.to_wkb(
                            shapely.multilinestrings(
                                [piece for s in shifts for piece in lines(24.0 + s, y)]
                            )
                        )
                        for y in (60.0, 60.003)
                    ],
                }
            ),
        )
        numbers = [("Main Street", "1", 0.001), ("Main Street", "3", 0.003)]
        numbers += [("Main Street", "5", 0.005), ("High Street", "2", 0.002)]
        builder.write_table(
            "addresses",
            pa.table(
                {
                    "id": [f"{k}-{street}-{n}" for k in range(copies) for street, n, _ in numbers],
                    "housenumber": [n for _ in shifts for _, n, _ in numbers],
                    "street": [street for _ in shifts for street, _, _ in numbers],
                    "postcode": ["12345"] * (4 * copies),
                    "city": ["Eastham"] * (4 * copies),
                    "lon": [24.0 + s + dx for s in shifts for _, _, dx in numbers],
                    "lat": [60.0001 if s == "Main Street" else 60.0031 for _ in shifts
                            for s, _, _ in numbers],
                }
            ),
        )  # fmt: skip
    return store.load("copies-2024-01-01")


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> ForwardGeocoder:
    return ForwardGeocoder(_release(tmp_path_factory.mktemp("alone"), 1))


@pytest.fixture(scope="module")
def copied(tmp_path_factory: pytest.TempPathFactory) -> ForwardGeocoder:
    return ForwardGeocoder(_release(tmp_path_factory.mktemp("copied"), 4))


def test_each_copy_has_its_own_street(copied: ForwardGeocoder) -> None:
    local = copied.local
    streets = [local.streets[i] for i in local.street_by_key["main street"]]
    assert len(streets) == 4
    # the first copy's street comes first; each street holds its own copy's numbers
    assert [round(s.lon, 3) for s in streets] == [24.003 + k * SHIFT_DEG for k in range(4)]
    for k, street in enumerate(streets):
        ids = {local.addresses.ids[row] for row in street.numbers.values()}
        assert ids == {f"{k}-Main Street-{n}" for n in ("1", "3", "5")}
        assert street.line is not None
        assert shapely.distance(street.line, shapely.Point(street.lon, street.lat)) < 1e-9


def test_copy_zero_answers_as_the_region_alone(
    alone: ForwardGeocoder, copied: ForwardGeocoder
) -> None:
    for query in QUERIES:
        [one] = alone.geocode(query)
        [many] = copied.geocode(query)
        assert one == many, query
    assert copied.geocode("Main Street 4, Eastham")[0].match_level == "interpolated"


def test_a_copy_is_found_near_the_bias(copied: ForwardGeocoder) -> None:
    [best] = copied.geocode("Main Street 3", at=(60.0, 24.0 + 2 * SHIFT_DEG))
    assert best.ref_id == "2-Main Street-3"


def test_addresses_without_street_lines_make_their_own_streets(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / "releases")
    with store.building("points-2024-01-01", "points") as builder:
        builder.write_table(
            "addresses",
            pa.table(
                {
                    "id": ["a", "b", "c"],
                    "housenumber": ["1", "5", "1"],
                    "street": ["Low Road", "Low Road", "Low Road"],
                    "city": ["Northam", "Northam", "Southam"],
                    "lon": [10.0, 10.001, 10.5],
                    "lat": [50.0, 50.0, 50.0],
                }
            ),
        )
    geocoder = ForwardGeocoder(store.load("points-2024-01-01"))
    assert len(geocoder.local.street_by_key["low road"]) == 2
    [best] = geocoder.geocode("Low Road 1, Southam")
    assert best.ref_id == "c"
    [between] = geocoder.geocode("Low Road 3, Northam")
    assert between.match_level == "interpolated"
    assert 10.0 < between.lon < 10.001
