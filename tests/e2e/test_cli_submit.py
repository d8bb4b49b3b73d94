"""``geobatch submit`` and ``geobatch jobs`` against a real server over HTTP."""

from __future__ import annotations

import csv
import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from geobatch.io.outputs import OutputFormat, read_output
from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e


def geobatch(server: ServerProcess, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geobatch", *args, "--server", server.url],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_submit_wait_downloads_results(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "points.csv.gz"
    with gzip.open(source, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lat", "lon"])
        writer.writerows([["60.1", "24.9"]] * 3000 + [["x", "24.9"]])
    done = geobatch(
        server,
        "submit",
        str(source),
        "--type",
        "validate",
        "-O",
        "target_type=reverse_geocode",
        "--wait",
        "-o",
        "out.geojson",
        "--format",
        "geojson",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = read_output((tmp_path / "out.geojson").read_bytes(), OutputFormat.GEOJSON)
    assert len(rows) == 3001
    assert rows[-1]["recId"] == "3001"
    assert rows[-1]["reason"] == "lat is not a number"

    listed = geobatch(server, "jobs", "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert "succeeded" in listed.stdout


def test_submit_without_wait_prints_the_job_id(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "points.csv"
    source.write_text("lat,lon\n1,2\n")
    done = geobatch(
        server,
        "submit",
        str(source),
        "--type",
        "validate",
        "-O",
        "target_type=reverse_geocode",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    shown = geobatch(server, "jobs", "show", job_id, cwd=tmp_path)
    assert shown.returncode == 0
    assert job_id in shown.stdout


def test_server_side_errors_are_one_line(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "empty.csv"
    source.write_bytes(b"")
    done = geobatch(server, "submit", str(source), "--type", "validate", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: The input is empty."
    missing = geobatch(
        server, "jobs", "cancel", "00000000-0000-4000-8000-000000000000", cwd=tmp_path
    )
    assert missing.returncode == 1
    assert "No job exists" in missing.stderr
