"""Many same-named streets and towns: scoring only those whose bound can win changes no
answer."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from geobatch.engines.geocode import ForwardGeocoder, forward
from geobatch.engines.geocode import index as index_module
from geobatch.engines.geocode.bounds import (
    Judge,
    NumberRanges,
    StreetSet,
    street_bound,
    street_bounds,
    street_ceilings,
    street_reach,
)
from geobatch.engines.geocode.forward import Candidate
from geobatch.engines.geocode.gazetteer import Area
from geobatch.engines.geocode.index import Street
from geobatch.engines.geocode.normalize import house_number_value
from geobatch.engines.geocode.parse import ParsedAddress
from geobatch.reference import ReleaseStore

COPIES = 30
SHIFT_DEG = 0.05
TOWNS = ("Eastham", "Westham", "Northam")
NUMBERS = ("1", "3", "5", "7")


def _town(copy: int) -> str:
    return TOWNS[copy % len(TOWNS)]


def _country(copy: int) -> str:
    return "SE" if copy % 7 == 3 else "FI"


def _numbers(copy: int) -> tuple[str, ...]:
    """Every fourth copy lacks number 3, every fifth has only number 1."""
    if copy % 5 == 4:
        return ("1",)
    return tuple(n for n in NUMBERS if not (n == "3" and copy % 4 == 1))


@pytest.fixture(scope="module")
def geocoder(tmp_path_factory: pytest.TempPathFactory) -> ForwardGeocoder:
    """``COPIES`` copies of two streets side by side, in three towns, four postcodes and two
    countries, each copy with its own house numbers."""
    store = ReleaseStore(Path(tmp_path_factory.mktemp("bounds")) / "releases")
    streets = {"id": [], "name": [], "locality": [], "geometry": []}
    addresses: dict[str, list[object]] = {
        key: []
        for key in ("id", "housenumber", "street", "postcode", "city", "country", "lon", "lat")
    }
    for copy, (name, y) in itertools.product(
        range(COPIES), (("Main Street", 60.0), ("High Street", 60.003))
    ):
        x = 24.0 + copy * SHIFT_DEG
        streets["id"].append(f"street:{copy}:{name}")
        streets["name"].append(name)
        streets["locality"].append(_town(copy))
        streets["geometry"].append(shapely.to_wkb(shapely.linestrings([(x, y), (x + 0.008, y)])))
        for number in _numbers(copy):
            values = (f"{copy}-{name}-{number}", number, name, f"{10000 + copy % 4}")
            for key, value in zip(("id", "housenumber", "street", "postcode"), values, strict=True):
                addresses[key].append(value)
            addresses["city"].append(_town(copy))
            addresses["country"].append(_country(copy))
            addresses["lon"].append(x + int(number) * 0.001)
            addresses["lat"].append(y + 0.0001)
    with store.building("copies-2024-01-01", "copies") as builder:
        builder.write_table("streets", pa.table(streets))
        builder.write_table("addresses", pa.table(addresses))
    return ForwardGeocoder(store.load("copies-2024-01-01"))


def _queries() -> list[str]:
    out = []
    for name, number, town, postcode in itertools.product(
        ("Main Street", "High Street"),
        ("", "1", "3", "4", "3b", "9"),
        ("", "Eastham", "Northam", "Nowhere"),
        ("", "10001"),
    ):
        place = " ".join(part for part in (postcode, town) if part)
        line = f"{name} {number}".strip()
        out.append(f"{line}, {place}" if place else line)
    # no street of that name: the towns of that name answer
    return [*out, "Eastham", "Northam", "10001 Westham", "Quarry Lane 5, Eastham"]


AT = [None, (60.0, 24.0), (60.0, 24.0 + 7 * SHIFT_DEG), (60.0, 24.02 + 20 * SHIFT_DEG), (50.0, 5.0)]


def test_scoring_the_best_bounds_answers_as_scoring_every_street(
    geocoder: ForwardGeocoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = [
        (text, at, limit, country)
        for text in _queries()
        for at in AT
        for limit in (1, 3)
        for country in (None, "SE", "DE")
    ]

    def answers() -> list[list[Candidate]]:
        return [
            geocoder.geocode(text, fields={"country": country}, at=at, limit=limit)
            for text, at, limit, country in queries
        ] + [geocoder.geocode(text, country="SE", at=at) for text, at, _, _ in queries[::6]]

    pruned = answers()
    geocoder.clear_caches()
    monkeypatch.setattr(forward, "FEW", 10**9)  # every street and locality found is scored
    every = answers()
    for query, one, other in zip(queries, pruned, every, strict=False):
        assert one == other, query
    assert pruned == every


def test_equal_streets_go_to_the_first_copy_or_the_nearest(geocoder: ForwardGeocoder) -> None:
    [first] = geocoder.geocode("Main Street 1, Eastham")
    assert first.ref_id == "0-Main Street-1"
    [near] = geocoder.geocode("Main Street 1, Eastham", at=(60.0, 24.0 + 9 * SHIFT_DEG))
    assert near.ref_id == "9-Main Street-1"
    # the town named outweighs the bias; copy 4 lacks number 3, copy 1 lacks it and is in Westham
    [town] = geocoder.geocode("Main Street 3, Northam", at=(60.0, 24.0 + 1 * SHIFT_DEG))
    assert town.ref_id == "2-Main Street-3"


def test_only_a_few_of_many_equal_streets_are_scored(
    geocoder: ForwardGeocoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[str] = []
    on_street = ForwardGeocoder._on_street

    def counting(
        self: ForwardGeocoder, street: Street, similarity: float, reading: ParsedAddress
    ) -> Candidate:
        scored.append(street.name)
        return on_street(self, street, similarity, reading)

    monkeypatch.setattr(ForwardGeocoder, "_on_street", counting)
    for at in (None, (60.0, 24.0 + 12 * SHIFT_DEG)):
        scored.clear()
        geocoder.clear_caches()
        geocoder.geocode("High Street 5, 10001 Westham", at=at)
        assert 1 <= len(scored) <= 2, at


def test_a_bound_is_never_below_the_score_it_bounds(geocoder: ForwardGeocoder) -> None:
    streets = geocoder.local.streets
    index = geocoder.local.street_by_key.array("main street")
    similarity = np.full(len(index), 0.98)
    for number, town, postcode, country, at in itertools.product(
        (None, "1", "3", "4", "3b", "9"),
        (None, "eastham", "nowhere"),
        (None, "10002"),
        (None, "SE"),
        AT,
    ):
        reading = ParsedAddress(
            street="main street",
            house_number=number,
            locality=town,
            postcode=postcode,
            country=country,
        )
        for only in (None, "FI"):
            judge = Judge(None, reading, only, at)
            bounds = street_bounds(StreetSet(streets, index, similarity), reading, judge)
            for position, street in enumerate(index.tolist()):
                candidate = geocoder._on_street(streets[street], 0.98, reading)
                score = judge.score(candidate)
                assert (score or 0.0) <= bounds[position], (reading, only, at, street)


def test_the_best_bounds_come_in_order_with_ties_by_position() -> None:
    rng = np.random.default_rng(3)
    bounds = rng.choice([0.5, 0.72, 0.9, 0.96], size=5_000) * rng.choice([1.0, 0.99], 5_000)
    for size in (40, 5_000):  # sorted whole, then partly sorted first
        best = forward._best_bounds(bounds[:size], 13)
        expected = np.argsort(-bounds[:size], kind="stable")
        assert len(best) >= 13
        assert best.tolist() == expected[: len(best)].tolist()


def _readings() -> list[ParsedAddress]:
    return [
        ParsedAddress(
            street="main street",
            house_number=number,
            locality=town,
            postcode=postcode,
            country=country,
            region=region,
        )
        for number, town, postcode, country, region in itertools.product(
            (None, "1", "3", "4", "3b", "9"),
            (None, "eastham", "nowhere"),
            (None, "10002"),
            (None, "SE"),
            (None, "uusimaa"),
        )
    ]


def test_one_street_s_bound_and_reach_agree_with_the_bounds_of_all(
    geocoder: ForwardGeocoder,
) -> None:
    streets = geocoder.local.streets
    index = geocoder.local.street_by_key.array("main street")
    similarity = np.where(np.arange(len(index)) % 3 == 1, 0.98, 1.0)
    for reading, only, at in itertools.product(_readings(), (None, "FI"), AT):
        judge = Judge(geocoder.gazetteer, reading, only, at)
        found = StreetSet(streets, index, similarity)
        bounds = street_bounds(found, reading, judge)
        ones = [street_bound(found, position, reading, judge) for position in range(len(index))]
        assert ones == bounds.tolist(), (reading, only, at)  # bit for bit
        ceilings = street_ceilings(found, reading, judge)
        order, reach = street_reach(found, reading, judge, ceilings, len(index))
        assert sorted(order) == list(range(len(index)))
        assert all(reach[i] >= bounds[p] for i, p in enumerate(order)), (reading, only, at)
        assert order == sorted(order, key=lambda p: (-reach[order.index(p)], p))


def test_nearest_first_scores_what_the_bounds_of_all_score(
    geocoder: ForwardGeocoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[list[Candidate]] = []
    on_streets = ForwardGeocoder._on_streets

    def recording(self: ForwardGeocoder, *args: Any) -> list[Candidate]:
        found = on_streets(self, *args)
        scored.append(found)
        return found

    monkeypatch.setattr(ForwardGeocoder, "_on_streets", recording)
    queries = [(text, at, limit) for text in _queries() for at in AT for limit in (1, 3)]

    def run() -> tuple[list[list[Candidate]], list[list[Candidate]]]:
        geocoder.clear_caches()
        scored.clear()
        answers = [geocoder.geocode(text, at=at, limit=limit) for text, at, limit in queries]
        return answers, list(scored)

    nearest = run()
    monkeypatch.setattr(forward, "NEAREST_FIRST", 0)  # the bounds of every street at once
    every = run()
    assert nearest[0] == every[0]
    assert nearest[1] == every[1]  # the same streets scored, reading by reading


def test_near_at_the_bounds_of_a_few_streets_and_towns_are_worked_out(
    geocoder: ForwardGeocoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_by_one: list[int] = []
    all_at_once: list[int] = []
    areas: list[str] = []
    bound_of, bounds_of, area = forward.street_bound, forward.street_bounds, forward._area

    def one(found: StreetSet, position: int, reading: ParsedAddress, judge: Judge) -> float:
        one_by_one.append(position)
        return bound_of(found, position, reading, judge)

    def every(found: StreetSet, reading: ParsedAddress, judge: Judge) -> np.ndarray:
        all_at_once.append(len(found))
        return bounds_of(found, reading, judge)

    def made(found: Area, score: float) -> Candidate:
        areas.append(found.name)
        return area(found, score)

    monkeypatch.setattr(forward, "street_bound", one)
    monkeypatch.setattr(forward, "street_bounds", every)
    monkeypatch.setattr(forward, "_area", made)
    at = (60.0, 24.0 + 12 * SHIFT_DEG)
    for text in ("High Street 5, 10001 Westham", "Main Street 1", "High Street"):
        one_by_one.clear()
        geocoder.clear_caches()
        geocoder.geocode(text, at=at)
        assert 1 <= len(one_by_one) <= 4, text
    assert not all_at_once
    eastham = len(geocoder.local.localities.get("eastham"))
    assert eastham > 5
    geocoder.clear_caches()
    geocoder.geocode("Eastham", at=at)
    assert 1 <= len(areas) <= 3


def test_a_name_s_many_towns_are_read_as_columns_not_made_one_by_one(
    geocoder: ForwardGeocoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []
    area = index_module._area

    def counting(table: pa.Table, row: int) -> Area:
        made.append(row)
        return area(table, row)

    monkeypatch.setattr(index_module, "_area", counting)
    towns = geocoder.local.localities
    assert len(towns.rows_of("westham")) > 5
    geocoder.clear_caches()
    assert not towns.has_region("westham")
    [found] = geocoder.geocode("Westham", at=(60.0, 24.0 + 4 * SHIFT_DEG))
    assert found.label == "Westham"
    assert len(made) <= 3


@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 40), st.integers(0, 40)).map(sorted).map(tuple),
            st.sampled_from([(1, 0), (2, 0)]),
        ),
        min_size=1,
        max_size=30,
    ),
    st.lists(st.integers(0, 45).map(str) | st.sampled_from(["7b", "a", "12-14"]), max_size=20),
)
def test_numbers_of_one_kind_lie_in_the_same_ranges(
    ranges: list[tuple[int, int]], numbers: list[str]
) -> None:
    lowest, highest = (np.array(side, np.int64) for side in zip(*ranges, strict=True))
    found = NumberRanges.of_streets(lowest, highest)
    by_kind: dict[int, list[bool]] = {}
    for number in numbers:
        spans = found.spanning(number).tolist()
        value = house_number_value(number)
        if value is None:
            assert spans == [(low, high) != (2, 0) for low, high in ranges]
        else:
            assert spans == [low <= value <= high for low, high in ranges]
        assert by_kind.setdefault(found.kind(number), spans) == spans
