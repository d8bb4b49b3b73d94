"""The audit log: who created, cancelled and deleted which job, kept per tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from geobatch.jobs.database import Database
from geobatch.jobs.store import utcnow
from geobatch.jobs.tables import audit_log


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    id: int
    at: datetime
    tenant: str
    actor: str
    """The key's id (or ``env:`` and a digest prefix for keys from the environment)."""
    action: str
    job_id: str | None


class AuditLog:
    def __init__(self, database: Database) -> None:
        self._db = database

    def record(self, tenant: str, actor: str, action: str, job_id: str | None) -> None:
        with self._db.write_engine.begin() as connection:
            connection.execute(
                audit_log.insert().values(
                    at=utcnow(), tenant=tenant, actor=actor, action=action, job_id=job_id
                )
            )

    def entries(
        self, tenant: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        """The tenant's entries, newest first."""
        query = (
            sa.select(audit_log)
            .where(audit_log.c.tenant == tenant)
            .order_by(audit_log.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        with self._db.read_engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            AuditEntry(
                id=r.id, at=r.at, tenant=r.tenant, actor=r.actor, action=r.action, job_id=r.job_id
            )
            for r in rows
        ]
