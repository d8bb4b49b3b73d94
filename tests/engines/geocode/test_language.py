"""Results in the language a job or a record asks for, from the names the release has."""

from __future__ import annotations

import pyarrow as pa
import pytest
from town import build_town

from geobatch.engines.geocode.language import localized
from geobatch.engines.geocode.lookup import lookup_records
from geobatch.engines.geocode.reverse import ReverseSettings, reverse_records
from geobatch.reference import Release
from geobatch.reference.indexes.names import NameTranslations

COLUMNS = ["recId", "label", "street", "city", "district", "county"]


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return build_town(tmp_path_factory.mktemp("languages"))


def _reverse(
    town: Release, job_lang: str | None, **columns: list[object]
) -> list[dict[str, object]]:
    size = len(next(iter(columns.values())))
    records = pa.table({"_ordinal": list(range(size)), **columns})
    found = localized(reverse_records(records, town, ReverseSettings()), records, job_lang, town)
    return list(found.results.select(COLUMNS).to_pylist())


def test_names_come_in_the_jobs_language(town: Release) -> None:
    [row] = _reverse(town, "en-GB", recId=["a"], lat=[50.0452], lon=[10.044])
    assert row == {
        "recId": "a",
        "label": "Market Lane 1, Sampletown",
        "street": "Market Lane",
        "city": "Sampletown",
        "district": "Old Town",
        "county": "Muster County",
    }


def test_a_records_own_language_wins_and_unknown_languages_keep_the_names(
    town: Release,
) -> None:
    rows = _reverse(
        town,
        "en",
        recId=["own", "job", "unknown"],
        lat=[50.0452] * 3,
        lon=[10.044] * 3,
        lang=["de", None, "xx-YY"],
    )
    assert [row["street"] for row in rows] == ["Marktgasse", "Market Lane", "Marktgasse"]
    assert rows[0]["label"] == "Marktgasse 1, Musterstadt"
    assert rows[2]["county"] == "Landkreis Muster"


def test_without_a_language_nothing_changes(town: Release) -> None:
    [row] = _reverse(town, None, recId=["a"], lat=[50.0452], lon=[10.044])
    assert (row["street"], row["district"]) == ("Marktgasse", "Altstadt")


def test_a_places_own_name_is_translated_in_lookup(town: Release) -> None:
    records = pa.table({"_ordinal": [0], "recId": ["town"], "id": ["osm:node/31"]})
    found = localized(lookup_records(records, town, 1), records, "en", town)
    [row] = found.results.select(COLUMNS).to_pylist()
    assert (row["label"], row["county"]) == ("Sampletown", "Muster County")


def test_the_index_holds_languages_not_name_variants(town: Release) -> None:
    index = NameTranslations.open(town.path)
    assert index.translate("area", ["en", "alt"], ["Altstadt", "Altstadt"]) == ["Old Town", None]
    assert index.translate("street", ["en"], ["Altstadt"]) == [None]
