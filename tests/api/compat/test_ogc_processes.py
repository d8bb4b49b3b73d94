"""OGC API - Processes under ``/ogcapi``, with OWSLib as the client."""

from __future__ import annotations

import httpx
import pytest
from owslib.ogcapi.processes import Processes

from geobatch.reference import Release
from tests.api.compat.conftest import KEY, OTHER_KEY, SQLITE_ONLY, poll

pytestmark = pytest.mark.e2e

CORE = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"
RECORDS = [
    {"recId": "station", "lat": "60.1713198", "lon": "24.9414566"},
    {"recId": "far", "lat": "95", "lon": "10"},
]


@pytest.fixture
def owslib(compat_url: str) -> Processes:
    return Processes(f"{compat_url}/ogcapi/", headers={"X-API-Key": KEY})


@SQLITE_ONLY
def test_owslib_discovers_and_runs_processes(owslib: Processes, helsinki: Release) -> None:
    assert CORE in owslib.conformance()["conformsTo"]
    assert {p["id"] for p in owslib.processes()} >= {
        "geocode", "reverse_geocode", "lookup", "road_match",
    }  # fmt: skip
    described = owslib.process("reverse_geocode")
    assert set(described["inputs"]) >= {"records", "release", "truncate_at"}
    assert set(described["outputs"]) == {"results", "errors"}
    assert "async-execute" in described["jobControlOptions"]

    answer = owslib.execute(
        "reverse_geocode", {"records": RECORDS, "release": helsinki.manifest.id}
    )
    [station] = answer["results"]["features"]
    assert station["properties"]["label"] == "Kaivokatu 1, 00100 Helsinki"
    assert [(e["recId"], e["code"]) for e in answer["errors"]] == [("far", "out_of_range")]

    started = owslib.execute(
        "reverse_geocode", {"records": RECORDS, "release": helsinki.manifest.id}, async_=True
    )
    assert started["status"] in ("accepted", "running", "successful")
    location = owslib.response_headers["Location"]
    job_path = location.split("/ogcapi/", 1)[1]
    done = poll(lambda: owslib._request(path=job_path), lambda j: j["status"] == "successful")
    assert done["processID"] == "reverse_geocode"
    assert done["jobID"] == started["jobID"]
    links = owslib._request(path=f"{job_path}/results")
    features = httpx.get(links["results"]["href"], headers={"X-API-Key": KEY}).json()["features"]
    assert [f["properties"]["recId"] for f in features] == ["station"]
    assert started["jobID"] in {j["jobID"] for j in owslib._request(path="jobs")["jobs"]}
    dismissed = owslib._request(method="DELETE", path=job_path)
    assert dismissed["status"] == "dismissed"


def test_exceptions_and_conformance(compat_url: str) -> None:
    base = f"{compat_url}/ogcapi"
    headers = {"X-API-Key": KEY}
    landing = httpx.get(base).json()
    assert {link["rel"] for link in landing["links"]} >= {"self", "service-desc", "conformance"}
    unknown = httpx.get(f"{base}/processes/nothing", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/no-such-process")
    no_job = httpx.get(f"{base}/jobs/00000000-0000-4000-8000-000000000000", headers=headers)
    assert no_job.json()["type"].endswith("/no-such-job")
    job = httpx.post(
        f"{base}/processes/lookup/execution",
        headers={**headers, "Prefer": "respond-async"},
        json={"inputs": {"records": [{"id": "osm:node/25389429"}]}},
    )
    assert job.status_code == 201
    assert job.headers["Preference-Applied"] == "respond-async"
    job_url = job.headers["Location"]
    assert httpx.get(job_url, headers={"X-API-Key": OTHER_KEY}).status_code == 404
    early = httpx.get(f"{job_url}/results", headers=headers)
    if early.status_code == 404:
        assert early.json()["type"].endswith("/result-not-ready")
    listed = httpx.get(f"{base}/jobs", headers=headers, params={"processID": "lookup"}).json()
    assert job.json()["jobID"] in {j["jobID"] for j in listed["jobs"]}
    assert {j["processID"] for j in listed["jobs"]} == {"lookup"}
    none = httpx.get(f"{base}/jobs", headers=headers, params={"processID": "geocode", "limit": 5})
    assert job.json()["jobID"] not in {j["jobID"] for j in none.json()["jobs"]}
    dismissed = httpx.get(f"{base}/jobs", headers=headers, params={"status": "dismissed"})
    assert job.json()["jobID"] not in {j["jobID"] for j in dismissed.json()["jobs"]}
    assert httpx.get(f"{base}/processes").status_code == 401
    assert httpx.delete(job_url, headers=headers).json()["status"] == "dismissed"
    assert httpx.get(job_url, headers=headers).status_code == 404


def test_job_list_filters_and_pages(compat_url: str) -> None:
    base = f"{compat_url}/ogcapi"
    headers = {"X-API-Key": KEY}
    conformance = httpx.get(f"{base}/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list" in conformance
    made = [
        httpx.post(
            f"{base}/processes/lookup/execution",
            headers={**headers, "Prefer": "respond-async"},
            json={"inputs": {"records": [{"id": "osm:node/25389429"}]}},
        ).json()
        for _ in range(3)
    ]
    ids = [job["jobID"] for job in made]
    for job_id in ids:
        poll(
            lambda job_id=job_id: httpx.get(f"{base}/jobs/{job_id}", headers=headers).json(),
            lambda j: j["status"] == "successful",
        )

    def listed(**params: object) -> dict[str, object]:
        answer = httpx.get(f"{base}/jobs", headers=headers, params=params)  # type: ignore[arg-type]
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    since = {"datetime": f"{made[0]['created']}/..", "processID": "lookup"}
    first = listed(**since, limit=2)
    assert [j["jobID"] for j in first["jobs"]] == ids[:0:-1]  # newest first
    [after] = [link["href"] for link in first["links"] if link["rel"] == "next"]
    second = httpx.get(after, headers=headers).json()
    assert [j["jobID"] for j in second["jobs"]] == ids[:1]
    assert "next" not in {link["rel"] for link in second["links"]}

    assert [j["jobID"] for j in listed(datetime=made[1]["created"])["jobs"]] == [ids[1]]
    before_first = listed(datetime=f"../{made[0]['created']}", processID="lookup", limit=10_000)
    assert ids[0] in {j["jobID"] for j in before_first["jobs"]}
    assert not {ids[1], ids[2]} & {j["jobID"] for j in before_first["jobs"]}
    assert {j["jobID"] for j in listed(**since, minDuration=0)["jobs"]} == set(ids)
    assert listed(**since, minDuration=3600)["jobs"] == []
    assert listed(**since, maxDuration=3600, status="accepted")["jobs"] == []
    assert {j["jobID"] for j in listed(**since, type="process")["jobs"]} == set(ids)
    assert listed(**since, type="other")["jobs"] == []
    bad = httpx.get(f"{base}/jobs", headers=headers, params={"datetime": "yesterday"})
    assert bad.status_code == 422
    assert "datetime" in bad.json()["detail"]
