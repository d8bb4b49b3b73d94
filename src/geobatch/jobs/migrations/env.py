"""Alembic environment: runs on the connection that ``Database.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from geobatch.jobs.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through geobatch.jobs.database.Database.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
