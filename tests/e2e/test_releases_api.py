"""``/v1/releases`` over HTTP: what a user sees of the server's reference data."""

from __future__ import annotations

import httpx
import pytest

from geobatch.reference import Release
from tests.e2e.helpers import assert_problem


@pytest.mark.parametrize("shared_server", ["sqlite"], indirect=True)
def test_releases_are_listed_newest_first_with_their_manifests(
    shared_client: httpx.Client, helsinki: Release
) -> None:
    response = shared_client.get("/v1/releases")
    assert response.status_code == 200
    releases = response.json()["releases"]
    ids = [release["id"] for release in releases]
    assert helsinki.manifest.id in ids
    created = [release["created_at"] for release in releases]
    assert created == sorted(created, reverse=True)

    one = shared_client.get(f"/v1/releases/{helsinki.manifest.id}")
    assert one.status_code == 200
    manifest = one.json()
    assert manifest == releases[ids.index(helsinki.manifest.id)]
    assert manifest["counts"]["segments"] == helsinki.table("segments").num_rows
    assert manifest["schema_version"] >= 1
    (source,) = [s for s in manifest["sources"] if s["kind"] == "osm-pbf"]
    assert len(source["sha256"]) == 64


@pytest.mark.parametrize("shared_server", ["sqlite"], indirect=True)
@pytest.mark.parametrize("release_id", ["no-such-release", "..", "a%2Fb"])
def test_unknown_release_is_a_404_problem(shared_client: httpx.Client, release_id: str) -> None:
    response = shared_client.get(f"/v1/releases/{release_id}")
    assert_problem(response, 404)
