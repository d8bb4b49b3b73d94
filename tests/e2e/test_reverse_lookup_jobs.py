"""reverse_geocode and lookup over HTTP: jobs with bad records, and the single-shot endpoints."""

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

STATION = ("60.1713198", "24.9414566")  # Kaivokatu 1, Helsinki: an address point


def _job(client: httpx.Client, kind: str, body: bytes, options: dict[str, object]) -> str:
    job = create_job(client, body, params={"type": kind, "options": json.dumps(options)})
    done = wait_for_status(client, job["id"], "succeeded", timeout=120)
    return str(done["id"])


def test_reverse_geocode_job(shared_client: httpx.Client, helsinki: Release) -> None:
    rows = [
        ["recId", "lat", "lon"],
        ["station", *STATION],
        ["ocean", "0", "-30"],
        ["lat91", "91", "24.9"],
        ["lonx", "60.17", "abc"],
        ["blank", "", "24.9"],
        ["street", "60.1700", "24.9450"],
    ]
    options = {"release": helsinki.manifest.id, "truncate_at": 2}
    job_id = _job(shared_client, "reverse_geocode", csv_bytes(rows), options)
    results = download(shared_client, job_id)
    errors = download(shared_client, job_id, errors=True)
    ids = [r[0] for r in rows[1:]]
    check_exactly_once(
        list(dict.fromkeys(r["recId"] for r in results)) + [e["recId"] for e in errors], ids
    )
    assert {e["recId"]: e["code"] for e in errors} == {
        "lat91": "out_of_range",
        "lonx": "not_a_number",
        "blank": "missing_value",
    }
    by_id: dict[str, list[dict[str, object]]] = {}
    for row in results:
        by_id.setdefault(str(row["recId"]), []).append(row)
    station = by_id["station"]
    assert [r["seqNumber"] for r in station] == [1, 2]
    assert station[0]["match_level"] == "houseNumber"
    assert station[0]["label"] == "Kaivokatu 1, 00100 Helsinki"
    assert station[0]["ref_id"] == "osm:node/25389429"
    [ocean] = by_id["ocean"]
    assert ocean["match_level"] is None
    assert ocean["seqLength"] == 0
    stats = shared_client.get(f"/v1/jobs/{job_id}").json()["statistics"]
    assert stats["total_records"] == 6
    assert stats["failed_records"] == 3
    assert stats["successful_records"] == 2
    assert stats["no_match_records"] == 1
    assert stats["houseNumber_records"] >= 1


def test_lookup_job(shared_client: httpx.Client, helsinki: Release) -> None:
    rows = [
        ["recId", "id"],
        ["addr", "osm:node/25389429"],
        ["country", "geonames:660013"],
        ["unknown", "osm:node/0"],
        ["empty", ""],
    ]
    options = {"release": helsinki.manifest.id, "truncate_at": 1}
    job_id = _job(shared_client, "lookup", csv_bytes(rows), options)
    results = download(shared_client, job_id)
    errors = download(shared_client, job_id, errors=True)
    check_exactly_once(
        [r["recId"] for r in results] + [e["recId"] for e in errors], [r[0] for r in rows[1:]]
    )
    assert [(e["recId"], e["code"]) for e in errors] == [("empty", "missing_value")]
    found = {r["recId"]: r for r in results}
    assert found["addr"]["match_level"] == "houseNumber"
    assert found["addr"]["seqLength"] == 1
    assert found["country"]["label"] == "Finland"
    assert found["unknown"]["match_level"] is None


def test_single_shot_reverse_and_lookup(shared_client: httpx.Client, helsinki: Release) -> None:
    release = helsinki.manifest.id
    answer = shared_client.get(
        "/v1/reverse", params={"at": ",".join(STATION), "release": release, "limit": 3}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["release"] == release
    assert [item["seqNumber"] for item in body["items"]] == [1, 2, 3]
    assert body["items"][0]["label"] == "Kaivokatu 1, 00100 Helsinki"
    assert (body["items"][0]["district"], body["items"][0]["county"]) == ("Kluuvi", None)
    assert "_ordinal" not in body["items"][0]
    swedish = shared_client.get(
        "/v1/reverse", params={"at": ",".join(STATION), "release": release, "lang": "sv"}
    ).json()["items"]
    assert [(i["label"], i["street"], i["district"]) for i in swedish] == [
        ("Brunnsgatan 1, 00100 Helsingfors", "Brunnsgatan", "Gloet")
    ]
    ocean = shared_client.get("/v1/reverse", params={"at": "0,-30", "release": release}).json()
    assert [item["match_level"] for item in ocean["items"]] == [None]

    for bad, reason in (
        ("91,24.9", "lat is outside -90..90"),
        ("60.1,abc", "lon is not a number"),
        ("60.1", "expected 'lat,lon'"),
    ):
        problem = assert_problem(
            shared_client.get("/v1/reverse", params={"at": bad}), 422, slug="invalid-input"
        )
        assert problem["detail"].startswith("at: ")
        assert reason in problem["detail"]
        assert problem["field"] == "at"
    assert_problem(shared_client.get("/v1/reverse", params={"at": "1,2", "radius": "-5"}), 422)

    found = shared_client.get(
        "/v1/lookup",
        params=[("id", "geonames:660013"), ("id", "osm:node/0"), ("release", release)],
    )
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert [(i["id"], i["match_level"]) for i in items] == [
        ("geonames:660013", "country"),
        ("osm:node/0", None),
    ]
    [street] = shared_client.get(
        "/v1/lookup",
        params={"id": "street:helsinki:mannerheimintie", "release": release, "lang": "sv"},
    ).json()["items"]
    assert (street["label"], street["city"]) == ("Mannerheimvägen, Helsingfors", "Helsingfors")
    assert_problem(shared_client.get("/v1/reverse", params={"at": "1,2", "lang": "?"}), 422)
    problem = assert_problem(shared_client.get("/v1/lookup", params={"id": " "}), 422)
    assert problem["field"] == "id"
    assert_problem(shared_client.get("/v1/lookup"), 422)
    unknown_release = shared_client.get("/v1/lookup", params={"id": "x", "release": "nope"})
    problem = assert_problem(unknown_release, 422)
    assert problem["field"] == "release"
    assert problem["detail"].startswith("release: reference release 'nope' does not exist")
