"""geocode over HTTP: a job with bad and unmatched records, and the single-shot endpoint."""

from __future__ import annotations

import json

import httpx
import pytest

from geobatch.reference import Release
from tests.e2e.helpers import (
    assert_problem,
    check_exactly_once,
    create_job,
    csv_bytes,
    download,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

STATION = "osm:node/25389429"  # Kaivokatu 1, 00100 Helsinki


def test_geocode_job(shared_client: httpx.Client, helsinki: Release) -> None:
    rows = [
        ["recId", "searchText", "street", "houseNumber", "city"],
        ["text", "Kaivokatu 1, 00100 Helsinki", "", "", ""],
        ["fields", "", "Kaivokatu", "1", "Helsinki"],
        ["typo", "Kaivoaktu 1", "", "", ""],
        ["paris", "Paris, France", "", "", ""],
        ["nothing", "qqxxzzkkww", "", "", ""],
        ["blank", "", "", "", ""],
    ]
    options = {"release": helsinki.manifest.id, "truncate_at": 2}
    job = create_job(
        shared_client,
        csv_bytes(rows),
        params={"type": "geocode", "options": json.dumps(options)},
    )
    done = wait_for_status(shared_client, job["id"], "succeeded", timeout=120)
    results = download(shared_client, done["id"])
    errors = download(shared_client, done["id"], errors=True)
    check_exactly_once(
        list(dict.fromkeys(str(r["recId"]) for r in results)) + [e["recId"] for e in errors],
        [row[0] for row in rows[1:]],
    )
    assert [(e["recId"], e["code"]) for e in errors] == [("blank", "empty_query")]
    best = {r["recId"]: r for r in results if r["seqNumber"] in (0, 1)}
    for rec_id in ("text", "fields", "typo"):
        assert best[rec_id]["ref_id"] == STATION, rec_id
        assert best[rec_id]["match_level"] == "houseNumber"
        assert best[rec_id]["label"] == "Kaivokatu 1, 00100 Helsinki"
    assert best["paris"]["ref_id"] == "geonames:2988507"
    assert best["paris"]["seqLength"] == 2
    assert best["nothing"]["match_level"] is None
    assert best["nothing"]["seqLength"] == 0
    stats = shared_client.get(f"/v1/jobs/{done['id']}").json()["statistics"]
    assert stats["total_records"] == 6
    assert stats["successful_records"] == 4
    assert stats["no_match_records"] == 1
    assert stats["failed_records"] == 1


def test_geocode_options_are_checked(shared_client: httpx.Client, helsinki: Release) -> None:
    body = csv_bytes([["recId", "searchText"], ["1", "Kaivokatu 1"]])
    for options in ({"country": "Finland"}, {"at": "91,24"}, {"truncate_at": 0}):
        response = shared_client.post(
            "/v1/jobs",
            params={"type": "geocode", "options": json.dumps(options)},
            content=body,
            headers={"Content-Type": "text/csv"},
        )
        assert_problem(response, 422)


def test_geocode_endpoint(shared_client: httpx.Client, helsinki: Release) -> None:
    release = helsinki.manifest.id
    answer = shared_client.get(
        "/v1/geocode", params={"q": "Kaivokatu 1, Helsinki", "release": release}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["release"] == release
    [item] = body["items"]
    assert (item["ref_id"], item["match_level"]) == (STATION, "houseNumber")
    assert item["confidence"] >= 90
    assert (item["district"], item["county"]) == ("Kluuvi", None)
    swedish = shared_client.get(
        "/v1/geocode", params={"q": "Kaivokatu 1, Helsinki", "release": release, "lang": "sv"}
    ).json()["items"]
    assert [(i["label"], i["district"], i["ref_id"]) for i in swedish] == [
        ("Brunnsgatan 1, 00100 Helsingfors", "Gloet", STATION)
    ]
    structured = shared_client.get(
        "/v1/geocode",
        params={"city": "Springfield", "state": "IL", "limit": 3, "release": release},
    ).json()["items"]
    assert structured[0]["ref_id"] == "geonames:4250542"
    assert len(structured) <= 3
    nothing = shared_client.get("/v1/geocode", params={"q": "qqxxzzkkww", "release": release})
    assert nothing.json()["items"] == []
    for params in (
        {},
        {"q": " "},
        {"q": "Paris", "at": "91,2"},
        {"q": "Paris", "country": "FRA"},
        {"q": "Paris", "lang": "not a language"},
    ):
        assert_problem(shared_client.get("/v1/geocode", params=params), 422)
