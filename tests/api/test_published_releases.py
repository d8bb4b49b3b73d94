"""With ``GEOBATCH_RELEASES_URL`` (S3 on moto) a server offers what is published there and what
is built here: the release list, one release by id or by name, HERE's data versions, readiness,
and jobs that name a published release which their workers then mirror."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from geobatch.api import create_app
from geobatch.config import Settings
from geobatch.io.mirror import LISTING
from geobatch.jobs import Platform
from geobatch.jobs.releases import publish_release
from geobatch.jobs.runtime import open_platform
from geobatch.jobs.states import JobStatus
from geobatch.reference import Release, ReleaseStore
from tests.api.test_ops_scaleout import serving
from tests.jobs.test_scheduler import create_job, results, wait_for_status

pytest.importorskip("s3fs")
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def cache(tmp_path: Path, andorra: Release) -> Path:
    """The server's releases folder: Andorra built here, nothing mirrored yet."""
    folder = tmp_path / "releases-here"
    folder.mkdir()
    (folder / andorra.manifest.id).symlink_to(andorra.path, target_is_directory=True)
    return folder


@pytest.fixture
def platform(
    settings: Settings,
    s3_url: str,
    session_store: ReleaseStore,
    helsinki: Release,
    cache: Path,
) -> Iterator[Platform]:
    """A server whose object store holds the default (Helsinki) release only."""
    url = f"{s3_url}/releases"
    publish_release(session_store, helsinki.manifest.id, url)
    opened = open_platform(
        settings.model_copy(update={"releases_url": url, "releases_dir": cache, "workers": 1})
    )
    yield opened
    opened.close()


@SQLITE
def test_published_and_local_releases_are_listed_and_named_without_server_paths(
    platform: Platform, helsinki: Release, andorra: Release, cache: Path, s3_url: str
) -> None:
    newest_first = sorted(
        [helsinki.manifest, andorra.manifest], key=lambda m: m.created_at, reverse=True
    )
    with serving(create_app(platform.settings, platform=platform)) as client:
        listed = client.get("/v1/releases")
        assert [r["id"] for r in listed.json()["releases"]] == [m.id for m in newest_first]
        by_name = client.get("/v1/releases/default")
        assert by_name.json()["id"] == helsinki.manifest.id
        assert by_name.json()["counts"] == helsinki.manifest.counts
        assert client.get(f"/v1/releases/{andorra.manifest.id}").status_code == 200
        assert client.get("/v1/releases/osm-nowhere").status_code == 404
        version = client.get("/v7/version").json()
        assert version["dataVersions"] == [{"name": m.name, "version": m.id} for m in newest_first]
        ready = client.get("/readyz").json()
        assert ready["checks"]["releases"] == "ok"
    answers = listed.text + by_name.text + str(version)
    sources = [
        str(Path(source.path).parent)
        for release in (helsinki, andorra)
        for source in release.manifest.sources
    ]
    bucket = s3_url.removeprefix("s3://").split("/")[0]
    for hidden in [str(cache), str(helsinki.path.parent), bucket, *sources]:
        assert hidden not in answers
    assert not (cache / helsinki.manifest.id).exists()  # listing copies nothing


@SQLITE
def test_a_job_names_a_published_release_and_its_worker_mirrors_it(
    platform: Platform, helsinki: Release, cache: Path
) -> None:
    rows = 'recId,searchText\na,"Kaivokatu 1, 00100 Helsinki"\nb,\n'
    job = create_job(platform, rows.encode(), job_type="geocode", options={"release": "default"})
    assert job.options["release"] == helsinki.manifest.id

    done = wait_for_status(platform, job.id, JobStatus.SUCCEEDED)

    assert done.statistics.processed_records == 2
    assert [r["recId"] for r in results(platform, job.id)] == ["a"]
    assert [e["code"] for e in results(platform, job.id, errors=True)] == ["empty_query"]
    assert (cache / helsinki.manifest.id / LISTING).is_file()
