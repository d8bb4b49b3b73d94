"""Managed API keys on SQLite and PostgreSQL: hashed at rest, roles, revocation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from geobatch.errors import InvalidInput, NotFound
from geobatch.jobs.audit import AuditLog
from geobatch.jobs.database import Database
from geobatch.jobs.keys import KeyStore, Role, parse_role
from geobatch.jobs.tables import api_keys


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()


def test_a_key_resolves_to_its_tenant_and_role(database: Database) -> None:
    store = KeyStore(database, {})
    assert not store.any_keys()
    record, key = store.create("acme", Role.READ, "dashboard")
    assert key.startswith("gb_")
    assert len(key) > 40
    caller = store.resolve(key)
    assert caller is not None
    assert (caller.tenant, caller.role, caller.actor) == ("acme", Role.READ, record.id)
    assert not caller.can_write
    assert store.resolve(key + "x") is None
    assert KeyStore(database, {}).any_keys()


def test_only_a_digest_is_stored(database: Database) -> None:
    store = KeyStore(database, {})
    _, key = store.create("acme", Role.MEMBER)
    with database.read_engine.connect() as connection:
        (row,) = connection.execute(sa.select(api_keys)).all()
    assert key not in [str(value) for value in row]
    assert row.key_hash != key
    assert row.prefix == key[:10]


def test_revoked_keys_stop_working_and_leave_the_list(database: Database) -> None:
    store = KeyStore(database, {})
    first, first_key = store.create("acme", Role.ADMIN)
    second, second_key = store.create("acme", Role.MEMBER)
    assert store.resolve(first_key) is not None
    store.revoke(first.id)
    store.revoke(second.prefix)
    assert store.resolve(first_key) is None
    assert KeyStore(database, {}).resolve(second_key) is None
    assert store.list() == []
    assert {k.id for k in store.list(include_revoked=True)} == {first.id, second.id}
    with pytest.raises(NotFound):
        store.revoke(first.id)


def test_environment_keys_act_as_admins_of_their_tenant(database: Database) -> None:
    store = KeyStore(database, {"plain-key": "acme"})
    assert store.any_keys()
    caller = store.resolve("plain-key")
    assert caller is not None
    assert (caller.tenant, caller.role) == ("acme", Role.ADMIN)
    assert "plain-key" not in caller.actor


def test_unknown_roles_and_empty_tenants_are_refused(database: Database) -> None:
    with pytest.raises(InvalidInput, match="unknown role"):
        parse_role("owner")
    with pytest.raises(InvalidInput, match="tenant"):
        KeyStore(database, {}).create(" ", Role.READ)


def test_the_audit_log_is_per_tenant_and_newest_first(database: Database) -> None:
    log = AuditLog(database)
    log.record("acme", "key-1", "create", "job-1")
    log.record("other", "key-2", "create", "job-2")
    log.record("acme", "key-1", "delete", "job-1")
    entries = log.entries("acme")
    assert [(e.action, e.job_id) for e in entries] == [("delete", "job-1"), ("create", "job-1")]
    assert [e.action for e in log.entries("acme", before_id=entries[0].id)] == ["create"]
