"""The ``geobatch`` command run as a user would: a real process, real files, exit codes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from geobatch.io.outputs import OutputFormat, read_output
from geobatch.reference import Release


def geobatch(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geobatch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def write_points(path: Path, rows: int, *, bad_every: int = 10) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["recId", "lat", "lon"])
        for i in range(1, rows + 1):
            writer.writerow([f"r{i}", "95" if i % bad_every == 0 else "60.1", "24.9"])


def test_run_writes_results_and_error_report(tmp_path: Path) -> None:
    source = tmp_path / "points.csv"
    write_points(source, 250)
    with source.open("a") as handle:
        handle.write("broken,1,2,3\n")
    done = geobatch(
        "run",
        str(source),
        "--type",
        "validate",
        "-O",
        "target_type=reverse_geocode",
        "-o",
        "out.parquet",
        "--format",
        "parquet",
        "--errors-output",
        "errors.csv",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    results = read_output((tmp_path / "out.parquet").read_bytes(), OutputFormat.PARQUET)
    errors = read_output((tmp_path / "errors.csv").read_bytes(), OutputFormat.CSV)
    assert [row["recId"] for row in results] == [f"r{i}" for i in range(1, 251)]
    assert sum(1 for row in results if not row["valid"]) == 25
    assert [(row["recId"], row["code"]) for row in errors] == [("broken", "malformed_row")]
    assert "251 records" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "nonsense"], "unknown job type 'nonsense'"),
        (["--type", "validate", "-O", "target_type=teleport"], "options.target_type"),
    ],
)
def test_run_refuses_bad_requests_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    source = tmp_path / "points.csv"
    write_points(source, 3)
    done = geobatch("run", str(source), *args, "-o", "out.csv", cwd=tmp_path)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_run_reports_a_wrong_header(tmp_path: Path) -> None:
    source = tmp_path / "points.csv"
    source.write_text("id,latitude,longitude\n1,2,3\n")
    done = geobatch(
        "run",
        str(source),
        "--type",
        "validate",
        "-O",
        "target_type=reverse_geocode",
        "-o",
        "o.csv",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "input has no column lat, lon" in done.stderr
    assert not (tmp_path / "o.csv").exists()


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    done = geobatch("jobs", "list", "--server", "http://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: cannot reach the server")
    assert len(done.stderr.strip().splitlines()) == 1


def test_demo_runs_the_sample_job_over_http(
    tmp_path: Path, releases_root: Path, helsinki: Release
) -> None:
    env = {**os.environ, "GEOBATCH_RELEASES_DIR": str(releases_root)}  # default release built
    done = geobatch(
        "demo", "-o", "demo.csv", "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    results = read_output((tmp_path / "demo.csv").read_bytes(), OutputFormat.CSV)
    errors = read_output((tmp_path / "demo-errors.csv").read_bytes(), OutputFormat.CSV)
    with (Path(__file__).parents[1] / "src/geobatch/samples/points.csv").open() as sample:
        lines = sample.read().splitlines()[1:]
    assert len(results) + len(errors) == len(lines)
    assert "p-broken" in {row["recId"] for row in errors}
    assert {row["code"] for row in errors} == {"malformed_row", "not_a_number", "out_of_range"}
    levels = Counter(row["match_level"] for row in results)
    # The sample lies in the bundled release's area: nearly every point finds a street.
    on_street = levels["houseNumber"] + levels["interpolated"] + levels["street"]
    assert on_street >= 0.95 * len(results), levels
    assert levels["houseNumber"] > len(results) / 2, levels
    assert all(row["lat"] and row["lon"] for row in results if row["match_level"])
