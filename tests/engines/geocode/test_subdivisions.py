"""Districts and counties in every geocoding engine's results, from a small mapped town."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from town import build_town

from geobatch.engines.geocode import geocode_records
from geobatch.engines.geocode.lookup import lookup
from geobatch.engines.geocode.reverse import ReverseSettings, reverse_geocode
from geobatch.reference import Release
from geobatch.reference.indexes.subdivisions import Subdivisions


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return build_town(tmp_path_factory.mktemp("subdivisions"))


def test_the_index_knows_polygons_points_and_counties(town: Release) -> None:
    subdivisions = Subdivisions.open(town.path)
    district, county = subdivisions.resolve(
        np.array([50.045, 50.081, 50.02, 50.5]), np.array([10.045, 10.081, 10.02, 10.5])
    )
    assert district.tolist() == ["Altstadt", "Neudorf", None, None]
    assert county.tolist() == ["Landkreis Muster"] * 3 + [None]


def test_reverse_geocoding_names_district_and_county(town: Release) -> None:
    found = reverse_geocode(
        town,
        np.array([50.0452, 50.0807, 50.045, 50.06]),
        np.array([10.044, 10.080, 10.0485, 10.06]),
        ReverseSettings(),
    )
    rows = found.select(["match_level", "label", "district", "county"]).to_pylist()
    assert rows[0] == {
        "match_level": "houseNumber",
        "label": "Marktgasse 1, Musterstadt",
        "district": "Altstadt",
        "county": "Landkreis Muster",
    }
    assert (rows[1]["district"], rows[1]["county"]) == ("Neudorf", "Landkreis Muster")
    assert rows[2]["match_level"] in ("street", "interpolated")
    assert (rows[2]["district"], rows[2]["county"]) == ("Altstadt", "Landkreis Muster")
    assert rows[3]["match_level"] == "locality"
    assert (rows[3]["district"], rows[3]["county"]) == (None, "Landkreis Muster")


def test_lookup_names_district_and_county(town: Release) -> None:
    found = lookup(town, ["osm:node/41", "osm:node/43", "osm:node/31"])
    rows = found.select(["label", "district", "county"]).to_pylist()
    assert rows[0] == {
        "label": "Marktgasse 1, Musterstadt",
        "district": "Altstadt",
        "county": "Landkreis Muster",
    }
    assert rows[1]["district"] == "Neudorf"
    # a town is in a county, not in the district its centre happens to fall in
    assert rows[2] == {"label": "Musterstadt", "district": None, "county": "Landkreis Muster"}


def test_forward_geocoding_names_district_and_county(town: Release) -> None:
    records = pa.table(
        {
            "_ordinal": [0, 1],
            "recId": ["house", "town"],
            "searchText": ["Marktgasse 3, Musterstadt", "Musterstadt"],
        }
    )
    rows = geocode_records(records, town).results.to_pylist()
    house, place = rows
    assert house["label"] == "Marktgasse 3, Musterstadt"
    assert (house["district"], house["county"]) == ("Altstadt", "Landkreis Muster")
    assert place["match_level"] == "locality"
    assert (place["district"], place["county"]) == (None, "Landkreis Muster")


def test_the_columns_come_after_the_city(town: Release) -> None:
    names = lookup(town, ["osm:node/41"]).schema.names
    assert names[names.index("city") + 1 : names.index("state")] == ["district", "county"]
