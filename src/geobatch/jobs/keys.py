"""API keys and their roles: managed keys live hashed in the job database, simple setups
may still list plain keys in ``GEOBATCH_API_KEYS``.

A key is shown once, when it is created; the database keeps its SHA-256 digest and the first
characters (to tell keys apart in ``keys list``), never the key itself.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from geobatch.errors import InvalidInput, NotFound
from geobatch.jobs.database import Database
from geobatch.jobs.store import utcnow
from geobatch.jobs.tables import api_keys

KEY_PREFIX = "gb_"
_CACHE_SECONDS = 2.0


class Role(StrEnum):
    ADMIN = "admin"
    """Everything a member may do, and reading the tenant's audit log."""
    MEMBER = "member"
    """Create, control, read and delete the tenant's jobs."""
    READ = "read"
    """List and read jobs and download their files; change nothing."""


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who sent a request: the key's tenant and role, and an id safe to log (never the key)."""

    tenant: str
    role: Role
    actor: str

    @property
    def can_write(self) -> bool:
        return self.role is not Role.READ


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    id: str
    prefix: str
    tenant: str
    role: Role
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(
            f"unknown role {value!r}; one of {', '.join(r.value for r in Role)}", field="role"
        ) from None


class KeyStore:
    """Managed keys, and the environment's keys beside them (those act with the admin role).

    Lookups are cached for a couple of seconds: a status poll should not cost a key query,
    and a revoked key stops working within that time on every replica.
    """

    def __init__(self, database: Database, env_keys: Mapping[str, str]) -> None:
        self._db = database
        self._env = {digest(key): tenant for key, tenant in env_keys.items()}
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._any: tuple[float, bool] = (0.0, False)

    def create(self, tenant: str, role: Role, name: str | None = None) -> tuple[ApiKey, str]:
        """A new key for ``tenant``; returns its record and the key (shown this once)."""
        if not tenant.strip():
            raise InvalidInput("the tenant must not be empty", field="tenant")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            id=str(uuid.uuid4()),
            prefix=secret[:10],
            tenant=tenant,
            role=role,
            name=name,
            created_at=utcnow(),
            revoked_at=None,
        )
        with self._db.write_engine.begin() as connection:
            connection.execute(
                api_keys.insert().values(
                    id=record.id,
                    prefix=record.prefix,
                    key_hash=digest(secret),
                    tenant=tenant,
                    role=role.value,
                    name=name,
                    created_at=record.created_at,
                )
            )
        self._any = (0.0, False)
        return record, secret

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self._db.read_engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke by id or by prefix; the key stops working within a few seconds."""
        column = api_keys.c.prefix if key_id.startswith(KEY_PREFIX) else api_keys.c.id
        with self._db.write_engine.begin() as connection:
            rows = connection.execute(
                sa.select(api_keys).where(column == key_id, api_keys.c.revoked_at.is_(None))
            ).all()
            if len(rows) != 1:
                raise NotFound(f"No active API key {key_id!r}.")
            connection.execute(
                api_keys.update().where(api_keys.c.id == rows[0].id).values(revoked_at=utcnow())
            )
        self._cache.clear()
        return _record(rows[0])

    def any_keys(self) -> bool:
        """Whether authentication is on: some key exists, in the environment or the database."""
        if self._env:
            return True
        checked_at, found = self._any
        now = time.monotonic()
        if now - checked_at > _CACHE_SECONDS:
            with self._db.lookup_engine.connect() as connection:
                found = connection.execute(sa.select(api_keys.c.id).limit(1)).first() is not None
            self._any = (now, found)
        return found

    def resolve(self, presented: str) -> Caller | None:
        """The caller a presented key stands for; None if it is unknown or revoked."""
        hashed = digest(presented)
        tenant = self._env.get(hashed)
        if tenant is not None:
            return Caller(tenant=tenant, role=Role.ADMIN, actor=f"env:{hashed[:12]}")
        now = time.monotonic()
        cached = self._cache.get(hashed)
        if cached is not None and now - cached[0] <= _CACHE_SECONDS:
            return cached[1]
        with self._db.lookup_engine.connect() as connection:
            row = connection.execute(
                sa.select(api_keys.c.id, api_keys.c.tenant, api_keys.c.role).where(
                    api_keys.c.key_hash == hashed, api_keys.c.revoked_at.is_(None)
                )
            ).first()
        caller = (
            None if row is None else Caller(tenant=row.tenant, role=Role(row.role), actor=row.id)
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[hashed] = (now, caller)
        return caller


def _record(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=m["id"],
        prefix=m["prefix"],
        tenant=m["tenant"],
        role=Role(m["role"]),
        name=m["name"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )
