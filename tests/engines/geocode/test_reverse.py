"""Reverse geocoding on the default (Helsinki) release: each level, chunks, bad records."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geobatch.engines.geocode import GEOCODE_COLUMNS
from geobatch.engines.geocode.reverse import ReverseSettings, reverse_geocode, reverse_records
from geobatch.engines.geocode.spatial import haversine_m, sphere_latlon, sphere_xyz
from geobatch.reference import Release


def _one(release: Release, lat: float, lon: float, radius_m: float = 50.0) -> dict[str, Any]:
    settings = ReverseSettings(radius_m=radius_m)
    table = reverse_geocode(release, np.array([lat]), np.array([lon]), settings)
    assert table.num_rows == 1
    row: dict[str, Any] = table.to_pylist()[0]
    return row


def _addresses(release: Release) -> pa.Table:
    table = release.table("addresses")
    return table.filter(pc.match_substring_regex(table.column("housenumber"), r"^\d+$"))


def test_an_address_point_is_answered_with_that_address(helsinki: Release) -> None:
    table = _addresses(helsinki).slice(0, 200)
    found = reverse_geocode(
        helsinki, table.column("lat").to_numpy(), table.column("lon").to_numpy()
    )
    assert found.schema == GEOCODE_COLUMNS
    assert found.column("_ordinal").to_pylist() == list(range(table.num_rows))
    assert set(found.column("match_level").to_pylist()) == {"houseNumber"}
    lat, lon = found.column("lat").to_numpy(), found.column("lon").to_numpy()
    # the same spot; where two addresses share a point either may be chosen
    assert np.allclose(lat, table.column("lat").to_numpy())
    assert np.allclose(lon, table.column("lon").to_numpy())
    assert np.all(found.column("distance_m").to_numpy() < 0.01)
    # lower only where another address is a few metres away
    assert np.median(found.column("confidence").to_numpy()) >= 90
    row = found.to_pylist()[0]
    assert row["seqNumber"] == row["seqLength"] == 1
    assert row["street"]
    assert row["houseNumber"]
    assert row["city"] == "Helsinki"
    assert row["label"].startswith(f"{row['street']} {row['houseNumber']}")


def test_confidence_falls_with_distance_from_the_address(helsinki: Release) -> None:
    first = _addresses(helsinki).slice(0, 1).to_pylist()[0]
    near = _one(helsinki, first["lat"], first["lon"])
    away = _one(helsinki, first["lat"] + 0.0002, first["lon"])  # about 22 m north
    assert near["match_level"] == "houseNumber"
    if away["match_level"] == "houseNumber" and away["ref_id"] == near["ref_id"]:
        assert away["confidence"] < near["confidence"]
        assert away["distance_m"] == pytest.approx(22.2, abs=0.5)


def _number_pairs(release: Release) -> list[tuple[float, float, int, int, str]]:
    """Midpoints of two addresses of one street numbered n and n + 4, 15-80 m apart."""
    rows = _addresses(release).to_pylist()
    by_key = {(r["street"], int(r["housenumber"])): r for r in rows if r["street"]}
    pairs = []
    for (street, number), row in by_key.items():
        other = by_key.get((street, number + 4))
        if other is None or (street, number + 2) in by_key:
            continue
        gap = float(haversine_m(row["lat"], row["lon"], other["lat"], other["lon"]))
        if 15 < gap < 80:
            lat, lon = sphere_latlon(
                (
                    sphere_xyz(np.array([row["lat"]]), np.array([row["lon"]]))
                    + sphere_xyz(np.array([other["lat"]]), np.array([other["lon"]]))
                )
                / 2
            )
            pairs.append((float(lat[0]), float(lon[0]), number, number + 4, street))
    return pairs


def test_a_point_between_numbered_neighbours_gets_an_interpolated_number(
    helsinki: Release,
) -> None:
    pairs = _number_pairs(helsinki)
    assert len(pairs) >= 10
    lat = np.array([p[0] for p in pairs])
    lon = np.array([p[1] for p in pairs])
    # an address radius of 1 m skips the address level, so the street level answers
    found = reverse_geocode(helsinki, lat, lon, ReverseSettings(radius_m=1.0)).to_pylist()
    interpolated = [
        (row, pair)
        for row, pair in zip(found, pairs, strict=True)
        if row["match_level"] == "interpolated"
    ]
    assert len(interpolated) >= len(pairs) // 2
    exact = 0
    for row, (_, _, low, high, street) in interpolated:
        assert row["label"].startswith(f"{row['street']} {row['houseNumber']}")
        if row["street"] != street:
            continue  # a nearer street of another name won
        number = int(row["houseNumber"])
        # the neighbours are the nearest numbered points behind and ahead along the street,
        # so an entrance set back from the street can shift the bracket by one house
        assert low - 4 <= number <= high + 4
        assert number % 2 == low % 2
        exact += number == low + 2
    assert exact >= len(interpolated) // 2
    assert all(50 <= r["confidence"] <= 85 for r, _ in interpolated)


def test_a_street_without_numbers_is_answered_at_street_level(helsinki: Release) -> None:
    numbered = set(helsinki.table("addresses").column("street").to_pylist())
    segments = helsinki.table("segments")
    segments = segments.filter(pc.greater(segments.column("length_m"), 60))
    candidates = [s for s in segments.to_pylist() if s["name"] and s["name"] not in numbered]
    line = shapely.from_wkb(candidates[0]["geometry"])
    middle = line.interpolate(0.5, normalized=True)
    row = _one(helsinki, middle.y, middle.x, radius_m=1.0)
    assert row["match_level"] == "street"
    assert row["street"] == candidates[0]["name"]
    assert row["houseNumber"] is None
    assert row["distance_m"] < 1.0
    assert row["ref_id"] == candidates[0]["id"]
    assert row["country"] == "FI"


def test_a_point_away_from_the_streets_gets_its_locality(helsinki: Release) -> None:
    row = _one(helsinki, 60.20, 24.93)  # Pasila: 2 km north of the extract's streets
    assert row["match_level"] == "locality"
    assert row["country"] == "FI"
    assert row["label"].endswith("Finland")
    assert row["ref_id"]
    assert row["distance_m"] < 5_000


def test_far_from_any_town_the_region_or_the_country_answers(helsinki: Release) -> None:
    wyoming = _one(helsinki, 42.85, -104.30)
    assert (wyoming["match_level"], wyoming["state"], wyoming["country"]) == (
        "region",
        "Wyoming",
        "US",
    )
    assert wyoming["label"] == "Wyoming, United States"
    lapland = _one(helsinki, 68.5, 27.5)  # regions of every country are named now
    assert (lapland["match_level"], lapland["country"], lapland["label"]) == (
        "region",
        "FI",
        "Lapland, Finland",
    )
    ocean = _one(helsinki, 0.0, -140.0)
    assert ocean["seqLength"] == 0 or ocean["confidence"] < lapland["confidence"]


def test_a_point_in_the_ocean_is_a_row_without_a_match(helsinki: Release) -> None:
    row = _one(helsinki, 0.0, -30.0)
    assert row["match_level"] is None
    assert (row["seqNumber"], row["seqLength"]) == (0, 0)
    assert row["label"] is None
    assert row["distance_m"] is None


def test_a_limit_gives_ranked_candidates_from_precise_to_coarse(helsinki: Release) -> None:
    first = _addresses(helsinki).slice(0, 1).to_pylist()[0]
    found = reverse_geocode(
        helsinki, np.array([first["lat"]]), np.array([first["lon"]]), ReverseSettings(limit=5)
    ).to_pylist()
    assert [r["seqNumber"] for r in found] == list(range(1, len(found) + 1))
    assert {r["seqLength"] for r in found} == {len(found)}
    assert 2 <= len(found) <= 5
    levels = [r["match_level"] for r in found]
    assert levels[0] == "houseNumber"
    order = ["houseNumber", "interpolated", "street", "locality", "region", "country"]
    ranks = [order.index(level) for level in levels]
    assert ranks == sorted(ranks)
    distances = [r["distance_m"] for r in found if r["match_level"] == "houseNumber"]
    assert distances == sorted(distances)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(60.160, 60.185), st.floats(24.930, 24.960)), min_size=1, max_size=20
    )
)
def test_a_chunk_is_answered_as_each_point_would_be_alone(
    helsinki: Release, points: list[tuple[float, float]]
) -> None:
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    together = reverse_geocode(helsinki, lat, lon).drop_columns(["_ordinal"]).to_pylist()
    alone = [_one(helsinki, a, b) for a, b in points]
    for row in alone:
        row.pop("_ordinal")
    assert together == alone


def test_bad_coordinates_go_to_the_error_report_with_a_reason_code(helsinki: Release) -> None:
    records = pa.table(
        {
            "_ordinal": pa.array(range(6), pa.int64()),
            "recId": ["ok", "lat91", "lonx", "blank", "ocean", "edge"],
            "lat": ["60.1713198", "91", "60.17", "", "0", "-90"],
            "lon": ["24.9414566", "24.9", "abc", "24.9", "-30", "180"],
        }
    )
    result = reverse_records(records, helsinki, ReverseSettings())
    errors = {row["recId"]: (row["code"], row["message"]) for row in result.errors.to_pylist()}
    assert errors == {
        "lat91": ("out_of_range", "lat is outside -90..90"),
        "lonx": ("not_a_number", "lon is not a number"),
        "blank": ("missing_value", "lat is missing"),
    }
    rows = {row["recId"]: row for row in result.results.to_pylist()}
    assert sorted(rows) == ["edge", "ocean", "ok"]
    assert rows["ok"]["match_level"] == "houseNumber"
    assert rows["ok"]["_ordinal"] == 0
    assert rows["ocean"]["match_level"] is None
    assert rows["ocean"]["seqNumber"] == 0
    assert rows["edge"]["_ordinal"] == 5
    assert not math.isnan(rows["ok"]["lat"])


def test_locality_polygons_hold_their_points(monaco: Release) -> None:
    import shapely

    from geobatch.engines.geocode.reverse_index import reverse_index

    index = reverse_index(monaco).areas
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(43.72, 43.76, 2_000), rng.uniform(7.40, 7.44, 2_000)
    found = index.resolve(lat, lon)
    # every polygon against every point: the smallest holding each point is its locality
    shapes = shapely.from_wkb(index.places.polygons.to_numpy(zero_copy_only=False))
    holds = np.array([shapely.contains_xy(shape, lon, lat) for shape in shapes])
    area = np.where(holds, np.asarray(index.places.polygon_area)[:, None], np.inf)
    smallest = np.asarray(index.places.polygon_rows)[np.argmin(area, axis=0)]
    inside = holds.any(axis=0)
    assert np.array_equal(found.locality_distance == 0, inside)
    assert np.array_equal(found.locality[inside], smallest[inside])
    assert inside.mean() > 0.3  # Monaco's districts cover much of the box
