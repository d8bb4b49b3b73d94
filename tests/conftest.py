"""Shared fixtures: settings over a fresh database (SQLite and PostgreSQL) and a temp folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from geobatch.config import Settings

POSTGRES_ENV = "GEOBATCH_TEST_POSTGRES_URL"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a test: fresh database, storage in a temp folder, two local workers."""
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        storage_url=str(tmp_path / "storage"),
        workers=2,
        chunk_size=1000,
        lease_seconds=5,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("shared test data folder is absent")
    return SHARED_DATA
