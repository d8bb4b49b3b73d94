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
    sa.Column("callback", sa.JSON),
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

job_events = sa.Table(
    "job_events",
    metadata,
    # The id increases in commit order within a job (its row lock serialises the writers), so
    # it serves as the server-sent event id that a client resumes from.
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column(
        "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_job_events_job_id", "job_id", "id"),
)

# The webhook outbox. Rows outlive their job (no foreign key), so the event of a deleted job
# is still delivered; each row carries the callback it is sent to and the exact body.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False, unique=True),
    sa.Column("callback", sa.JSON, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime()),
    sa.Index("ix_webhook_deliveries_status_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_job_id", "job_id"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column(
        "delivery_id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("attempted_at", UTCDateTime(), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("delivered_at", UTCDateTime()),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Index("ix_delivery_attempts_job_id", "job_id", "id"),
)

# API keys managed with ``geobatch keys``: only a SHA-256 digest of each key is stored (keys
# are 256 random bits, so a fast hash is enough), with a short prefix to tell them apart.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("tenant", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("tenant", sa.String(200), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("job_id", sa.String(36)),
    sa.Index("ix_audit_log_tenant_id", "tenant", "id"),
)
