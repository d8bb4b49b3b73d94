"""The jobs search API under ``/immuta``: the seed's four requests over real jobs."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.api.compat.conftest import KEY, OTHER_KEY

pytestmark = pytest.mark.e2e

STATES = {"active", "cancelled", "completed", "created", "expired", "failed", "retry"}
RECORDS = b"recId,lat,lon\n1,60.17,24.94\n2,95,10\n"


def _job(native: httpx.Client, bulk_id: str, *, start: bool) -> str:
    answer = native.post(
        "/v1/jobs",
        params={
            "type": "validate",
            "options": json.dumps({"target_type": "reverse_geocode"}),
            "bulk_id": bulk_id,
            "start": str(start).lower(),
        },
        content=RECORDS,
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_search_summary_and_statuses(native: httpx.Client) -> None:
    bulk_id = f"bulk-{uuid.uuid4().hex[:8]}"
    waiting = _job(native, bulk_id, start=False)
    running = [_job(native, bulk_id, start=True) for _ in range(2)]

    done = native.post("/immuta/jobs/statuses", json={"jobIds": running, "wait": -1}).json()
    assert {item["id"] for item in done} == set(running)
    for item in done:
        assert set(item) == {"id", "state", "output"}
        assert item["state"] == "completed"
        assert item["output"].endswith(f"/v1/jobs/{item['id']}/results")
    quick = native.post(
        "/immuta/jobs/statuses", json={"jobIds": [waiting], "wait": 0, "pollInterval": 1}
    ).json()
    assert quick == [{"id": waiting, "state": "created", "output": None}]

    by_bulk = native.get("/immuta/jobs", params={"bulkId": bulk_id}).json()
    assert {(i["id"], i["state"]) for i in by_bulk} == {
        (waiting, "created"),
        *((job_id, "completed") for job_id in running),
    }

    first = native.get(
        "/immuta/jobs/search", params={"jobType[]": "validate", "state": "completed", "size": 1}
    ).json()
    assert set(first) == {"jobs", "next"}
    assert len(first["jobs"]) == 1
    assert first["jobs"][0]["state"] == "completed"
    assert first["jobs"][0]["jobType"] == "validate"
    assert first["next"] == "1"
    second = native.get(
        "/immuta/jobs/search",
        params={"jobType": "validate", "state": "completed", "size": 1, "offset": first["next"]},
    ).json()
    assert second["jobs"][0]["id"] != first["jobs"][0]["id"]
    created = native.get("/immuta/jobs/search", params={"state": "created", "size": 1000}).json()
    assert waiting in {job["id"] for job in created["jobs"]}
    assert created["next"] is None
    start = first["jobs"][0]["createdAt"]
    later = native.get(
        "/immuta/jobs/search", params={"startDate": "2999-01-01T00:00:00Z", "endDate": start}
    ).json()
    assert later == {"jobs": [], "next": None}
    assert native.get("/immuta/jobs/search", params={"state": "sleeping"}).status_code == 422

    summary = native.get("/immuta/jobs/summary", params={"jobType[]": "validate"}).json()
    [validate] = summary["jobType"]
    assert validate["name"] == "validate"
    assert set(validate["states"]) == STATES
    assert validate["states"]["completed"] >= 2
    assert validate["states"]["created"] >= 1
    assert validate["total"] == sum(validate["states"].values())


def test_another_tenant_sees_nothing(native: httpx.Client, compat_url: str) -> None:
    bulk_id = f"bulk-{uuid.uuid4().hex[:8]}"
    job_id = _job(native, bulk_id, start=False)
    other = {"X-API-Key": OTHER_KEY}
    assert (
        httpx.get(f"{compat_url}/immuta/jobs", params={"bulkId": bulk_id}, headers=other).json()
        == []
    )
    statuses = httpx.post(
        f"{compat_url}/immuta/jobs/statuses", json={"jobIds": [job_id]}, headers=other
    )
    assert statuses.json() == []
    assert httpx.get(f"{compat_url}/immuta/jobs/search").status_code == 401
    assert native.headers["X-API-Key"] == KEY
