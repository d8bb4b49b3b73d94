"""``geobatch releases``: import, list, show and delete, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geobatch.jobs.releases import publish_release
from geobatch.reference import Release, ReleaseStore
from geobatch.reference.default import helsinki_pbf
from tests.reference.osm_samples import border_extracts


def geobatch(*args: str, releases: Path, url: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GEOBATCH_RELEASES_DIR": str(releases),
        "GEOBATCH_RELEASES_URL": url,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "geobatch", "releases", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_import_list_show_delete(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    done = geobatch(
        "import", str(helsinki_pbf()), "--name", "helsinki", "--no-gazetteer", releases=releases
    )
    assert done.returncode == 0, done.stderr
    assert "reading" not in done.stderr  # no progress bars when stderr is not a terminal
    release_id = done.stdout.strip()
    assert release_id.startswith("helsinki")
    manifest = ReleaseStore(releases).get(release_id)
    assert manifest.counts["segments"] > 1000
    assert manifest.counts["gazetteer"] == 0

    listed = geobatch("list", releases=releases)
    assert listed.returncode == 0
    assert release_id in listed.stdout

    shown = geobatch("show", release_id, releases=releases)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["counts"] == manifest.counts
    by_name = geobatch("show", "helsinki", releases=releases)
    assert json.loads(by_name.stdout)["id"] == release_id

    assert geobatch("delete", release_id, releases=releases).returncode == 0
    assert ReleaseStore(releases).list() == []
    assert "does not exist" in one_line_error(geobatch("show", release_id, releases=releases))


def test_several_extracts_make_one_release_with_progress(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    west, east = border_extracts(tmp_path)
    done = geobatch(
        "import", str(west), str(east), "--name", "border", "--no-gazetteer", "--progress",
        "--memory-mb", "64", releases=releases,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "border-2024-05-01"
    manifest = ReleaseStore(releases).get("border-2024-05-01")
    assert [Path(source.path) for source in manifest.sources] == [west, east]
    assert manifest.counts["segments"] == 4
    phases = [line.split("━")[0].strip() for line in done.stderr.splitlines()[:6]]
    assert phases == [
        "reading west.osm.pbf (1/2)", "reading east.osm.pbf (2/2)", "junctions", "segments",
        "addresses and places", "streets",
    ]  # fmt: skip
    assert "100%" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"this is not a protocol buffer at all\n" * 20, ""),
    ],
)
def test_a_bad_source_is_one_line_and_leaves_no_release(
    tmp_path: Path, content: bytes, message: str
) -> None:
    releases = tmp_path / "releases"
    source = tmp_path / "broken.osm.pbf"
    source.write_bytes(content)
    line = one_line_error(geobatch("import", str(source), "--no-gazetteer", releases=releases))
    assert message in line.lower()
    assert ReleaseStore(releases).list() == []
    leftovers = [p.name for p in releases.iterdir()] if releases.exists() else []
    assert not [name for name in leftovers if not name.startswith(".")], leftovers


def test_a_truncated_extract_is_refused(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    whole = helsinki_pbf().read_bytes()
    source = tmp_path / "truncated.osm.pbf"
    source.write_bytes(whole[: len(whole) // 2])
    one_line_error(geobatch("import", str(source), "--no-gazetteer", releases=releases))
    assert ReleaseStore(releases).list() == []


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "roads.parquet"
    source.write_bytes(b"PAR1")
    line = one_line_error(
        geobatch("import", str(source), "--format", "shapefile", releases=tmp_path / "r")
    )
    assert "unknown --format" in line


def test_list_and_show_read_the_published_releases_too(
    session_store: ReleaseStore, helsinki: Release, s3_url: str, tmp_path: Path
) -> None:
    url = f"{s3_url}/releases"
    publish_release(session_store, helsinki.manifest.id, url)
    here = tmp_path / "releases"
    here.mkdir()
    done = geobatch(
        "import", str(helsinki_pbf()), "--name", "here", "--no-gazetteer", releases=here, url=url
    )
    assert done.returncode == 0, done.stderr
    built = done.stdout.strip()

    listed = geobatch("list", releases=here, url=url)
    assert listed.returncode == 0, listed.stderr
    cells = [line.strip("│ ").split("│") for line in listed.stdout.splitlines() if "│" in line]
    stored = {row[0].strip(): row[-1].strip() for row in cells}
    assert stored == {helsinki.manifest.id: "published", built: "here"}
    shown = geobatch("show", "default", releases=here, url=url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == helsinki.manifest.id
    assert not (here / helsinki.manifest.id).exists()
