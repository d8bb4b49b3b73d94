"""The world gazetteer as the geocoder sees it: every kind of place, in many languages."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from geobatch.engines.geocode.forward import ForwardGeocoder, distance_km, forward_geocoder
from geobatch.engines.geocode.gazetteer import gazetteer_index
from geobatch.reference import Release

EVALS = Path(__file__).resolve().parents[3] / "evals" / "places.py"


@pytest.fixture(scope="module")
def geocoder(helsinki: Release) -> ForwardGeocoder:
    return forward_geocoder(helsinki)


@pytest.mark.parametrize(
    ("text", "level", "country"),
    [
        ("Baviera", "region", "DE"),  # a region in another language
        ("Cataluña", "region", "ES"),  # ISO 3166-2's name in brackets: "Catalunya [Cataluña]"
        ("Tamil Nadu, India", "region", "IN"),  # a region and its country
        ("Provence-Alpes-Côte d'Azur", "region", "FR"),
        ("FRA", "country", "FR"),  # ISO alpha-3
        ("Niemcy", "country", "DE"),  # a country in Polish
        ("Trinidad & Tobago", "country", "TT"),
        ("Isla Bouvet", "country", "BV"),  # a territory without towns, in Spanish
        ("HMD", "country", "HM"),
        ("St. Vincent and the Grenadines", "country", "VC"),  # five words, "St." for Saint
        ("Cook County, Illinois", "region", "US"),  # a county
        ("Lima per", "locality", "PE"),  # a town with a country code after it
        ("Reinosa esp", "locality", "ES"),  # a code that is also a street word ("esplanade")
        ("Berlin de", "locality", "DE"),  # a code that is also a US state's...
        ("Dover de", "locality", "US"),  # ...where the state has a town of that name
        ("Madrid, Spain", "locality", "ES"),  # a city before its larger namesake region
        ("Bern", "locality", "CH"),
        ("Vestland", "region", "NO"),  # a region's own name before a town's other name
        ("Brooklyn", "locality", "US"),  # a borough
        ("Memphis, Florida", "locality", "US"),  # not Helsinki's Memphis (a POI) in "Florida"
    ],
)
def test_places_of_every_kind(
    geocoder: ForwardGeocoder, text: str, level: str, country: str
) -> None:
    best = geocoder.geocode(text)[0]
    assert (best.match_level, best.country) == (level, country)


def test_continents_in_other_languages(geocoder: ForwardGeocoder) -> None:
    for text in ("Afrika", "Europa", "Amérique du Sud", "Asia"):
        best = geocoder.geocode(text)[0]
        assert best.match_level == "region"
        assert (best.country, best.state) == (None, None)  # no region joined to a continent
        assert best.label == best.label.split(",")[0]


def test_a_city_by_its_own_name_before_a_larger_city_by_an_alias(geocoder: ForwardGeocoder) -> None:
    """Haarlem (NL) is larger and also spelled "Harlem"; Harlem (New York) is so named."""
    gazetteer = gazetteer_index(geocoder.release)
    rows, _ = gazetteer.matches("harlem")
    assert {"US", "NL"} <= set(gazetteer.labels("country", rows))
    assert geocoder.geocode("Harlem")[0].country == "US"


def test_the_release_own_boroughs_answer_in_every_language_tagged(helsinki: Release) -> None:
    places = helsinki.table("places")
    boroughs = places.filter(pc.is_in(places["category"], pa.array(["suburb", "neighbourhood"])))
    geocoder = forward_geocoder(helsinki)
    tried = 0
    for place in boroughs.to_pylist():
        other = [v for k, v in place["names"] or () if k == "sv" and v != place["name"]]
        if not other:
            continue
        best = geocoder.geocode(other[0])[0]
        tried += 1
        assert distance_km(place["lon"], place["lat"], best.lon, best.lat) < 3.0, other[0]
        if tried == 5:
            break
    assert tried == 5


def _places_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("places_eval", EVALS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["places_eval"] = module
    spec.loader.exec_module(module)
    return module


def test_world_places_evaluation_subset(helsinki: Release) -> None:
    """A few queries of each kind of ``evals/places.py`` (seeded): at least 90 % top-1."""
    places = _places_eval()
    sources = places.Sources.load()
    cases = (
        places.city_cases(sources, random.Random(3), 12)
        + places.region_cases(sources, random.Random(4), 12)
        + places.language_cases(sources, random.Random(5), 12)
    )
    hits = places.evaluate(helsinki, cases)
    total = [hit for values in hits.values() for hit in values]
    assert len(total) > 100
    assert sum(total) / len(total) >= 0.9, {k: sum(v) / len(v) for k, v in hits.items()}
