"""Database tables of the job store (SQLAlchemy Core); Alembic migrations must match them."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    # ``pk`` orders jobs by creation for keyset pagination; ``id`` is the public identifier.
    sa.Column(
        "pk",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("tenant", sa.String(200), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bulk_id", sa.String(200)),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("input", sa.JSON, nullable=False),
    sa.Column("error", sa.JSON),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("queued_at", UTCDateTime()),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("expires_at", UTCDateTime()),
    sa.Column("split_done", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("chunk_count", sa.Integer),
    sa.Column("total_records", sa.BigInteger),
    sa.Column("processed_records", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("successful_records", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failed_records", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("no_match_records", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("extra_statistics", sa.JSON, nullable=False),
    sa.Column("last_record_id", sa.String(200)),
    sa.Column("processing_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Index("ix_jobs_tenant_pk", "tenant", "pk"),
    sa.Index("ix_jobs_status", "status"),
    sa.Index("ix_jobs_bulk_id", "bulk_id"),
)

chunks = sa.Table(
    "chunks",
    metadata,
    sa.Column(
        "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", UTCDateTime()),
    sa.Column("committed_at", UTCDateTime()),
    sa.Index("ix_chunks_job_status_seq", "job_id", "status", "seq"),
    sa.Index("ix_chunks_status_lease", "status", "lease_expires_at"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("job_id", sa.String(36)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
