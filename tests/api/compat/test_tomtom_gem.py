"""TomTom Orbis GEM under ``/maps/orbis/platform/gem``: the seed's requests, and a road
matching job from a storage with its result written back there."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from geobatch.reference import Release
from tests.api.compat.conftest import KEY, OTHER_KEY, SQLITE_ONLY, poll
from tests.e2e.test_road_match_job import _geojson, _roads

pytestmark = pytest.mark.e2e

GEM = "/maps/orbis/platform/gem"
STATISTICS = {
    "confidence_threshold", "execution_time_sec", "kms_processed", "num_roads_processed",
    "roads_fully_matched_ratio", "roads_matched_ratio", "roads_partially_matched_ratio",
    "roads_unmatched_ratio",
}  # fmt: skip


@pytest.fixture
def gem(compat_url: str) -> Iterator[httpx.Client]:
    headers = {"tomtom-api-key": KEY, "Authorization": f"Bearer {KEY}", "X-Version": "1"}
    with httpx.Client(base_url=compat_url + GEM, headers=headers, timeout=60) as http:
        yield http


@SQLITE_ONLY
def test_a_job_from_a_storage(gem: httpx.Client, helsinki: Release) -> None:
    upload = gem.put(
        "/storages/storage-001/files/test_data.geojson",
        content=_geojson(_roads(helsinki, count=5), bad=False),
    )
    assert upload.status_code == 201, upload.text
    created = gem.post(
        "/jobs",
        json={
            "storageId": "storage-001",
            "inputFileName": "test_data.geojson",
            "matchingType": "road",
            "overtureRelease": helsinki.manifest.id,
        },
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]
    assert isinstance(job_id, int)
    assert created.json()["status"] in ("REQUESTED", "IN_PROGRESS")
    assert created.json()["statistics"] is None
    assert created.json()["result_filename"] is None

    # The result file shows up in the storage as the job succeeds, without reading the job.
    names = poll(
        lambda: {f["fileName"] for f in gem.get("/storages/storage-001/files").json()["files"]},
        lambda found: "test_data.results.geojson" in found,
    )
    assert names == {"test_data.geojson", "test_data.results.geojson"}
    done = gem.get(f"/jobs/{job_id}").json()
    assert done["status"] == "SUCCESS"
    assert set(done) >= {
        "job_type", "overture_release", "input_filename", "job_id", "requested_at",
        "result_filename", "status", "storage_id", "statistics",
    }  # fmt: skip
    assert done["job_type"] == "ROAD_MATCHING"
    assert done["overture_release"] == helsinki.manifest.id
    assert done["input_filename"] == "test_data.geojson"
    assert done["result_filename"] == "test_data.results.geojson"
    assert done["storage_id"] == "storage-001"
    assert set(done["statistics"]) == STATISTICS
    assert done["statistics"]["num_roads_processed"] == 5
    assert done["statistics"]["roads_matched_ratio"] > 0.5

    [listed] = [j for j in gem.get("/jobs").json()["jobs"] if j["storageId"] == "storage-001"]
    assert listed["status"] == "finished"
    assert listed["outputFileName"] == "test_data.results.geojson"
    assert listed["matchingType"] == "road"
    assert set(listed) == {
        "jobRunId", "storageId", "inputFileName", "outputFileName", "matchingType",
        "overtureRelease", "status", "createdAt", "modifiedAt",
    }  # fmt: skip
    assert gem.get(f"/jobs/{listed['jobRunId']}").json()["job_id"] == job_id

    result = gem.get("/storages/storage-001/files/test_data.results.geojson").json()
    assert len({f["properties"]["recId"] for f in result["features"]}) == 5


def test_both_ids_name_the_job(gem: httpx.Client, native: httpx.Client, helsinki: Release) -> None:
    gem.put("/storages/ids/files/roads.geojson", content=_geojson(_roads(helsinki, 2), bad=False))
    created = gem.post("/jobs", json={"storageId": "ids", "inputFileName": "roads.geojson"})
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]
    [listed] = [j for j in gem.get("/jobs").json()["jobs"] if j["storageId"] == "ids"]
    # Cancelled unless it has already finished: either way both lists agree.
    cancel = native.post(f"/v1/jobs/{listed['jobRunId']}/cancel")
    expected = ("FAILED", "cancelled") if cancel.status_code == 200 else ("SUCCESS", "finished")
    by_run_id = gem.get(f"/jobs/{listed['jobRunId']}").json()
    assert by_run_id == gem.get(f"/jobs/{job_id}").json()
    assert by_run_id["job_id"] == job_id
    [after] = [j for j in gem.get("/jobs").json()["jobs"] if j["storageId"] == "ids"]
    assert (by_run_id["status"], after["status"]) == expected
    other = {"tomtom-api-key": OTHER_KEY, "Authorization": ""}
    assert gem.get(f"/jobs/{job_id}", headers=other).status_code == 404


def test_the_seeds_requests_and_errors(gem: httpx.Client, compat_url: str) -> None:
    assert gem.get("/jobs").status_code == 200
    missing = gem.get("/jobs/123456789")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Not Found"
    assert httpx.get(f"{compat_url}{GEM}/jobs").status_code == 401
    wrong = httpx.get(f"{compat_url}{GEM}/jobs", headers={"tomtom-api-key": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "Unauthorized"
    other = gem.get("/jobs", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 403
    assert other.json()["error"] == "Forbidden"
    assert gem.get("/jobs", headers={"X-Version": "2"}).status_code == 400
    assert gem.get("/storages/storage-001/files/nothing.geojson").status_code == 404
    assert gem.put("/storages/s/files/notes.txt", content=b"x").status_code == 422
    unknown_file = gem.post("/jobs", json={"storageId": "empty", "inputFileName": "a.parquet"})
    assert unknown_file.status_code == 422
    lane = gem.post(
        "/jobs", json={"storageId": "s", "inputFileName": "a.parquet", "matchingType": "lane"}
    )
    assert lane.status_code == 422
