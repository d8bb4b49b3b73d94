"""Initial schema: jobs, chunks and idempotency keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:

    op.create_table(
        "idempotency_keys",
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "key"),
    )
    op.create_table(
        "jobs",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("bulk_id", sa.String(length=200), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("split_done", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=True),
        sa.Column("total_records", sa.BigInteger(), nullable=True),
        sa.Column("processed_records", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("successful_records", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed_records", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("no_match_records", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("extra_statistics", sa.JSON(), nullable=False),
        sa.Column("last_record_id", sa.String(length=200), nullable=True),
        sa.Column("processing_seconds", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("ix_jobs_bulk_id", "jobs", ["bulk_id"], unique=False)
    op.create_index("ix_jobs_status", "jobs", ["status"], unique=False)
    op.create_index("ix_jobs_tenant_pk", "jobs", ["tenant", "pk"], unique=False)
    op.create_table(
        "chunks",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "seq"),
    )
    op.create_index("ix_chunks_job_status_seq", "chunks", ["job_id", "status", "seq"], unique=False)
    op.create_index(
        "ix_chunks_status_lease", "chunks", ["status", "lease_expires_at"], unique=False
    )


def downgrade() -> None:

    op.drop_index("ix_chunks_status_lease", table_name="chunks")
    op.drop_index("ix_chunks_job_status_seq", table_name="chunks")
    op.drop_table("chunks")
    op.drop_index("ix_jobs_tenant_pk", table_name="jobs")
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_index("ix_jobs_bulk_id", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("idempotency_keys")
