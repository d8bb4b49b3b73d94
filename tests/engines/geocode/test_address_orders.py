"""Addresses in any order, abbreviated compounds and written-out umlauts, on two small towns."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import shapely

from geobatch.engines.geocode import ForwardGeocoder
from geobatch.reference import Release, ReleaseStore

TOWNS = {"Eastham": (24.0, "11111"), "Westham": (23.2, "22222")}
STREETS = {
    # the same street written with "ü" in one town and "ue" in the other
    "Eastham": ("Mühlenweg", "Austraße"),
    "Westham": ("Muehlenweg", "Bahnhofstraße"),
}


@pytest.fixture(scope="module")
def geocoder(tmp_path_factory: pytest.TempPathFactory) -> ForwardGeocoder:
    return ForwardGeocoder(_release(tmp_path_factory.mktemp("towns")))


def _release(folder: Path) -> Release:
    """Two towns 50 km apart, two streets each, numbers 1 and 3 on every street."""
    store = ReleaseStore(folder / "releases")
    streets = [(town, name, x + 0.02 * i) for town, (x, _) in TOWNS.items()
               for i, name in enumerate(STREETS[town])]  # fmt: skip
    with store.building("towns-2024-01-01", "towns") as builder:
        builder.write_table(
            "streets",
            pa.table(
                {
                    "id": [f"street:{town}:{name}" for town, name, _ in streets],
                    "name": [name for _, name, _ in streets],
                    "locality": [town for town, _, _ in streets],
                    "geometry": [
                        shapely.to_wkb(shapely.multilinestrings([[(x, 60.0), (x + 0.01, 60.0)]]))
                        for _, _, x in streets
                    ],
                }
            ),
        )
        rows = [(town, name, x, n) for town, name, x in streets for n in (1, 3)]
        builder.write_table(
            "addresses",
            pa.table(
                {
                    "id": [f"{town}:{name}:{n}" for town, name, _, n in rows],
                    "housenumber": [str(n) for *_, n in rows],
                    "street": [name for _, name, _, _ in rows],
                    "postcode": [TOWNS[town][1] for town, *_ in rows],
                    "city": [town for town, *_ in rows],
                    "lon": [x + 0.001 * n for _, _, x, n in rows],
                    "lat": [60.0001] * len(rows),
                }
            ),
        )
    return store.load("towns-2024-01-01")


@pytest.mark.parametrize(
    "text",
    [
        "Austraße 3, 11111 Eastham",
        "11111 Eastham, Austraße 3",
        "Eastham, Austraße 3",
        "11111 Eastham Austraße 3",
        "Eastham Austraße 3",
        "Austraße 3 11111 Eastham",
        "3 Austraße, Eastham 11111",
        "Austr. 3, 11111 Eastham",
        "Austr 3 Eastham",
        "Austrasse 3, Eastham",
        "11111, Austr. 3",
    ],
)
def test_any_order_and_abbreviations(geocoder: ForwardGeocoder, text: str) -> None:
    [best] = geocoder.geocode(text)
    assert (best.ref_id, best.match_level) == ("Eastham:Austraße:3", "houseNumber"), text


@pytest.mark.parametrize("text", ["Bahnhofstr. 1, Westham", "22222 Westham, Bahnhofstr 1"])
def test_compound_street_type_abbreviated(geocoder: ForwardGeocoder, text: str) -> None:
    [best] = geocoder.geocode(text)
    assert best.ref_id == "Westham:Bahnhofstraße:1", text


@pytest.mark.parametrize(
    ("text", "ref_id"),
    [
        ("Muehlenweg 1, 11111 Eastham", "Eastham:Mühlenweg:1"),
        ("11111 Eastham, Muehlenweg 1", "Eastham:Mühlenweg:1"),
        ("Mühlenweg 1, 22222 Westham", "Westham:Muehlenweg:1"),
        ("Mühlenweg 3 22222", "Westham:Muehlenweg:3"),
        ("Mühlenweg 3, Eastham", "Eastham:Mühlenweg:3"),
        ("Muehlenweg 3, Westham", "Westham:Muehlenweg:3"),
    ],
)
def test_written_out_umlauts_and_the_town_given(
    geocoder: ForwardGeocoder, text: str, ref_id: str
) -> None:
    """ "ue" and "ü" are equal both ways; the postcode and town choose between the two."""
    [best] = geocoder.geocode(text)
    assert (best.ref_id, best.match_level) == (ref_id, "houseNumber"), text
    assert best.confidence >= 90
