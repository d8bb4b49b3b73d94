"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL.

Autogenerate's comparison of a migrated database with ``geobatch.jobs.tables.metadata`` must
find nothing to change (types, nullability, server defaults, indexes, keys), and migrating an
up-to-date database again must be a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from geobatch.jobs.database import Database
from geobatch.jobs.tables import metadata

# Spellings of the same boolean default: SQLAlchemy renders ``sa.false()`` as ``0`` on SQLite,
# the migration writes ``false`` (reflected as ``(false)``); SQLite 3.23+ reads both as 0.
FALSE_DEFAULTS = {"false", "0"}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def _bare(default: str | None) -> str | None:
    return None if default is None else default.strip().strip("()'\"").strip().lower()


def _compare_server_default(
    context: MigrationContext,
    inspected_column: sa.Column[Any],
    metadata_column: sa.Column[Any],
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Treat ``false`` and ``0`` as the same boolean default; leave the rest to Alembic."""
    if (
        isinstance(metadata_column.type, sa.Boolean)
        and {
            _bare(inspected_default),
            _bare(rendered_metadata_default),
        }
        <= FALSE_DEFAULTS
    ):
        return False
    return None


def schema_differences(database: Database) -> list[Any]:
    with database.write_engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": _compare_server_default,
            },
        )
        return list(compare_metadata(context, metadata))


def test_migrated_schema_matches_the_tables(database: Database) -> None:
    database.migrate()
    assert schema_differences(database) == []


def test_migrating_twice_is_a_no_op(database: Database) -> None:
    database.migrate()
    with database.write_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO idempotency_keys (tenant, key, created_at) "
                "VALUES ('t', 'k', CURRENT_TIMESTAMP)"
            )
        )
    database.migrate()
    assert schema_differences(database) == []
    with database.read_engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        kept = connection.execute(sa.text("SELECT count(*) FROM idempotency_keys")).scalar()
    assert version == [("0003",)]
    assert kept == 1


def test_tables_and_indexes_exist(database: Database) -> None:
    database.migrate()
    inspector = sa.inspect(database.write_engine)
    assert set(inspector.get_table_names()) == {
        "alembic_version",
        "jobs",
        "chunks",
        "idempotency_keys",
        "job_events",
        "webhook_deliveries",
        "delivery_attempts",
        "api_keys",
        "audit_log",
    }
    indexes = {
        table: {index["name"] for index in inspector.get_indexes(table)}
        for table in ("jobs", "chunks")
    }
    assert {"ix_jobs_tenant_pk", "ix_jobs_status", "ix_jobs_bulk_id"} <= indexes["jobs"]
    assert {"ix_chunks_job_status_seq", "ix_chunks_status_lease"} <= indexes["chunks"]
    (foreign_key,) = inspector.get_foreign_keys("chunks")
    assert foreign_key["referred_table"] == "jobs"
    assert foreign_key["options"].get("ondelete", "").upper() == "CASCADE"


def test_server_defaults_fill_omitted_columns(database: Database) -> None:
    """A row inserted with only the required columns gets the declared defaults."""
    database.migrate()
    with database.write_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO jobs (id, tenant, type, status, metadata, options, input, "
                "created_at, updated_at, extra_statistics) VALUES ('j1', 't', 'validate', "
                "'queued', '{}', '{}', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '{}')"
            )
        )
        connection.execute(
            sa.text("INSERT INTO chunks (job_id, seq, status, records) VALUES ('j1', 0, 'p', 5)")
        )
    with database.read_engine.connect() as connection:
        job = connection.execute(
            sa.text(
                "SELECT priority, split_done, processed_records, successful_records, "
                "failed_records, no_match_records, processing_seconds FROM jobs"
            )
        ).one()
        attempts = connection.execute(sa.text("SELECT attempts FROM chunks")).scalar()
    assert tuple(job) == (0, False, 0, 0, 0, 0, 0.0)
    assert attempts == 0
